--TEST--
Binary data with NUL bytes and a 1 MB session survive a round trip
--FILE--
<?php
require __DIR__ . '/fleet.inc';
fleet_use();
$id = fleet_new_id('bin');
$blob = random_bytes(1024 * 1024) . "\0end\0";
session_id($id);
session_start();
$_SESSION['blob'] = $blob;
session_write_close();
$_SESSION = [];
session_id($id);
session_start();
var_dump(strlen($_SESSION['blob']), $_SESSION['blob'] === $blob);
session_write_close();
?>
--EXPECT--
int(1048581)
bool(true)
