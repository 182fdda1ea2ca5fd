--TEST--
Two PHP processes on one session: the second waits for the first and sees its write
--FILE--
<?php
require __DIR__ . '/fleet.inc';
$id = fleet_new_id('conc');
$child = fleet_spawn('
fleet_use();
session_id("' . $id . '");
session_start();
usleep(500000);
$_SESSION["by"] = "child";
session_write_close();
echo "child done\n";
');
fleet_wait_locked($id);
fleet_use();
session_id($id);
var_dump(session_start());          // blocks until the child releases
var_dump($_SESSION);                // so it sees the child's write
$_SESSION['by'] .= '+parent';
session_write_close();
echo fleet_wait_child($child);
var_dump(fleet_get($id));
?>
--EXPECT--
bool(true)
array(1) {
  ["by"]=>
  string(5) "child"
}
child done
string(23) "by|s:12:"child+parent";"
