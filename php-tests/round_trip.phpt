--TEST--
Round trip: data written by one session_start() is read back by the next
--FILE--
<?php
require __DIR__ . '/fleet.inc';
fleet_use();
$id = fleet_new_id('rt');
session_id($id);
var_dump(session_start());
$_SESSION['user'] = 'alice';
$_SESSION['cart'] = [1, 2, 3];
var_dump(session_write_close());
var_dump(fleet_get($id));
var_dump(fleet_locked($id));
$_SESSION = [];
session_id($id);
session_start();
var_dump($_SESSION);
session_write_close();
?>
--EXPECT--
bool(true)
bool(true)
string(52) "user|s:5:"alice";cart|a:3:{i:0;i:1;i:1;i:2;i:2;i:3;}"
int(0)
array(2) {
  ["user"]=>
  string(5) "alice"
  ["cart"]=>
  array(3) {
    [0]=>
    int(1)
    [1]=>
    int(2)
    [2]=>
    int(3)
  }
}
