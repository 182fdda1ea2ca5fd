--TEST--
session_destroy() deletes the data and releases the lock
--FILE--
<?php
require __DIR__ . '/fleet.inc';
fleet_use();
$id = fleet_new_id('des');
session_id($id);
session_start();
$_SESSION['x'] = 1;
session_write_close();
session_id($id);
session_start();
var_dump(fleet_locked($id));
var_dump(session_destroy());
var_dump(fleet_raw_exists($id));
var_dump(fleet_locked($id));
?>
--EXPECT--
int(1)
bool(true)
int(0)
int(0)
