--TEST--
Bad fleet.* values: a warning naming the entry, the default is used, the session works
--INI--
fleet.lock_wait_timeout=soon
fleet.locking=maybe
--FILE--
<?php
require __DIR__ . '/fleet.inc';
fleet_use();
session_id(fleet_new_id('ini'));
var_dump(session_start());
session_write_close();
?>
--EXPECTF--
Warning: session_start(): Fleet: fleet.locking="maybe" is not 1, 0 or merge; using 1 (locking on) in %s on line %d

Warning: session_start(): Fleet: fleet.lock_wait_timeout="soon" is not a number of seconds from 0 to 3600; using 10 in %s on line %d
bool(true)
