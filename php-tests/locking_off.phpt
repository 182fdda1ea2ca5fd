--TEST--
fleet.locking=0: no lock is ever taken (last writer wins, as phpredis's default)
--INI--
fleet.locking=0
--FILE--
<?php
require __DIR__ . '/fleet.inc';
fleet_use();
$id = fleet_new_id('nolock');
session_id($id);
session_start();
var_dump(fleet_locked($id));
$_SESSION['x'] = 1;
session_write_close();
var_dump(fleet_get($id));
?>
--EXPECT--
int(0)
string(6) "x|i:1;"
