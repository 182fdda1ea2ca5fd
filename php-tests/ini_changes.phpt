--TEST--
fleet.* values changed at run time (ini_set, ini_restore) apply to the next session_start() of the same request, though Fleet keeps its parse between changes
--INI--
fleet.lock_wait_timeout=soon
--FILE--
<?php
require __DIR__ . '/fleet.inc';
fleet_use();
$id = fleet_new_id('inichg');
session_id($id);
session_start();
session_write_close();
echo "again, unchanged\n";
session_start();
session_write_close();
echo "changed\n";
ini_set('fleet.lock_wait_timeout', 'later');
session_start();
session_write_close();
echo "fixed\n";
ini_set('fleet.lock_wait_timeout', '2');
var_dump(session_start());
session_write_close();
echo "restored\n";
ini_restore('fleet.lock_wait_timeout');
session_start();
session_write_close();
?>
--EXPECTF--
Warning: session_start(): Fleet: fleet.lock_wait_timeout="soon" is not a number of seconds from 0 to 3600; using 10 in %s on line %d
again, unchanged

Warning: session_start(): Fleet: fleet.lock_wait_timeout="soon" is not a number of seconds from 0 to 3600; using 10 in %s on line %d
changed

Warning: session_start(): Fleet: fleet.lock_wait_timeout="later" is not a number of seconds from 0 to 3600; using 10 in %s on line %d
fixed
bool(true)
restored

Warning: session_start(): Fleet: fleet.lock_wait_timeout="soon" is not a number of seconds from 0 to 3600; using 10 in %s on line %d
