--TEST--
session.use_strict_mode: an unknown id is replaced, a stored one is accepted (validate_sid)
--INI--
session.use_strict_mode=1
--FILE--
<?php
require __DIR__ . '/fleet.inc';
fleet_use();
$unknown = fleet_new_id('strict');
session_id($unknown);
session_start();
$issued = session_id();
var_dump($issued !== $unknown);
$_SESSION['a'] = 1;
session_write_close();
var_dump(fleet_exists($unknown));
$_SESSION = [];
session_id($issued);
session_start();
var_dump(session_id() === $issued, $_SESSION);
session_write_close();
?>
--EXPECT--
bool(true)
int(0)
bool(true)
array(1) {
  ["a"]=>
  int(1)
}
