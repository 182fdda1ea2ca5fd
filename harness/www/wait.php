<?php
// Opens the session with fleet.lock_wait_timeout = `timeout` and fleet.slow_lock_wait =
// `slow` (both seconds), and prints what PHP reported: for the lock-holder tests.
header('Content-Type: text/plain');
header('X-Fleet-Worker: ' . getenv('FLEET_WORKER'));
ini_set('fleet.lock_wait_timeout', $_GET['timeout'] ?? '10');
ini_set('fleet.slow_lock_wait', $_GET['slow'] ?? '0');
$messages = [];
set_error_handler(function ($level, $message) use (&$messages) {
    $messages[] = ($level === E_NOTICE ? 'notice: ' : 'warning: ') . $message;
    return true;
});
$started = session_start();
echo $started ? "session\n" : "no session\n";
echo implode("\n", $messages), "\n";
