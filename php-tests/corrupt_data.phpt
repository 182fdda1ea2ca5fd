--TEST--
Stored bytes that are not session data go to PHP's decoder as they are; no crash
--FILE--
<?php
require __DIR__ . '/fleet.inc';
fleet_use();
$id = fleet_new_id('bad');
fleet_put($id, "\xff\x00garbage|not-serialized");
session_id($id);
var_dump(session_start());
echo "still running\n";
?>
--EXPECTF--
Warning: session_start(): Failed to decode session object. Session has been destroyed in %s on line %d
bool(false)
still running
