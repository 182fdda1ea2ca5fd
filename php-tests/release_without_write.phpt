--TEST--
read_and_close and session_abort() release the lock without writing
--FILE--
<?php
require __DIR__ . '/fleet.inc';
fleet_use();
$id = fleet_new_id('rel');
session_id($id);
session_start();
$_SESSION['n'] = 1;
session_write_close();

session_id($id);
var_dump(session_start(['read_and_close' => true]), $_SESSION['n']);
var_dump(fleet_locked($id));

session_id($id);
session_start();
var_dump(fleet_locked($id));
$_SESSION['n'] = 99;
session_abort();
var_dump(fleet_locked($id));
var_dump(fleet_get($id));
?>
--EXPECT--
bool(true)
int(1)
int(0)
int(1)
int(0)
string(6) "n|i:1;"
