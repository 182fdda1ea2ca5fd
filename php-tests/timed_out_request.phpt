--TEST--
A request stopped by max_execution_time still saves its session at shutdown, as files and phpredis do, and the next request is not blocked
--FILE--
<?php
require __DIR__ . '/fleet.inc';
$id = fleet_new_id('timedout');
// The snippet from the bug report, in a PHP process of its own: it changes its session,
// then spins until max_execution_time (1 s of CPU) stops it with a fatal error.
$out = fleet_wait_child(fleet_spawn('
fleet_use();
set_time_limit(1);
session_id("' . $id . '");
session_start();
$_SESSION["a"] = 1;
while (true) {}
'));
var_dump(str_contains($out, 'Maximum execution time of 1 second exceeded'));
var_dump(str_contains($out, 'Failed to write session data'), str_contains($out, 'Fleet:'));
// The shutdown write released the lock: no lock is left for the next request to wait
// out (a condition, not a time: the child has exited, so nothing else can hold it).
var_dump(fleet_locked($id));
fleet_use();
session_id($id);
var_dump(session_start());
var_dump($_SESSION['a'] ?? null);
session_write_close();
?>
--EXPECT--
bool(true)
bool(false)
bool(false)
int(0)
bool(true)
int(1)
