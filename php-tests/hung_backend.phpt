--TEST--
A backend that accepts but never answers is bounded by fleet.read_timeout
--INI--
fleet.read_timeout=0.3
--FILE--
<?php
require __DIR__ . '/fleet.inc';
// The kernel accepts connections into this socket's backlog; nobody ever answers.
$hole = stream_socket_server('tcp://127.0.0.1:0');
$port = (int) substr(strrchr(stream_socket_get_name($hole, false), ':'), 1);
ini_set('session.save_handler', 'fleet');
ini_set('session.save_path', fleet_save_path_at($port));
session_id('hung1');
// The warning below says the read timeout ended the wait; a hang would be caught by
// run-tests' own timeout. No elapsed time is asserted (a tolerance is a flaky test).
var_dump(session_start());
echo "still running\n";
?>
--EXPECTF--
Warning: session_start(): Fleet: %s://127.0.0.1:%d%S did not answer within 300ms. Raise fleet.read_timeout (or timeout= in session.save_path) if the server is only slow in %s on line %d

Warning: session_start(): Failed to %s: fleet (path: %s://127.0.0.1:%d%S) in %s on line %d
bool(false)
still running
