--TEST--
Backend down: session_start() fails with a warning naming the endpoint and setting; the script goes on
--FILE--
<?php
require __DIR__ . '/fleet.inc';
// A port nobody listens on.
$probe = stream_socket_server('tcp://127.0.0.1:0');
$port = (int) substr(strrchr(stream_socket_get_name($probe, false), ':'), 1);
fclose($probe);
ini_set('session.save_handler', 'fleet');
ini_set('session.save_path', fleet_save_path_at($port));
var_dump(session_start());
var_dump(session_status() === PHP_SESSION_NONE);
// The next attempt retries and fails the same way, without a crash.
var_dump(@session_start());
echo "still running\n";
?>
--EXPECTF--
Warning: session_start(): Fleet: cannot connect to %s://127.0.0.1:%d%S: %SConnection refused (os error 111)%S. Check that the server runs and session.save_path points at it; raise fleet.connect_timeout (or connect_timeout= in session.save_path) if it is only slow to accept in %s on line %d

Warning: session_start(): Failed to initialize storage module: fleet (path: %s://127.0.0.1:%d%S) in %s on line %d
bool(false)
bool(true)
bool(false)
still running
