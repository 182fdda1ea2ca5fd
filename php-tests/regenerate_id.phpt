--TEST--
session_regenerate_id(): data moves to the new id; with true the old session is deleted
--FILE--
<?php
require __DIR__ . '/fleet.inc';
fleet_use();
$old = fleet_new_id('reg');
session_id($old);
session_start();
$_SESSION['k'] = 'v';
var_dump(session_regenerate_id(false));
$mid = session_id();
var_dump($mid !== $old);
var_dump(session_regenerate_id(true));
$new = session_id();
session_write_close();
var_dump(fleet_get($old));      // kept by regenerate(false)
var_dump(fleet_exists($mid));   // deleted by regenerate(true)
var_dump(fleet_get($new));
foreach ([$old, $mid, $new] as $id) {
    var_dump(fleet_locked($id));
}
?>
--EXPECT--
bool(true)
bool(true)
bool(true)
string(10) "k|s:1:"v";"
int(0)
string(10) "k|s:1:"v";"
int(0)
int(0)
int(0)
