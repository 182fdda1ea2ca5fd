--TEST--
A session id over 256 bytes never reaches the backend: a warning, no session
--FILE--
<?php
require __DIR__ . '/fleet.inc';
fleet_use();
$long = str_repeat('a', 300);
session_id($long);
var_dump(session_start());
var_dump(fleet_ids_like('aaaa'));
?>
--EXPECTF--
Warning: session_start(): Fleet: session id rejected: the id is 300 bytes long; at most 256 are allowed in %s on line %d

Warning: session_start(): Failed to read session data: fleet (path: %s) in %s on line %d
bool(false)
array(0) {
}
