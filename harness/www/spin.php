<?php
// Changes the session, then spins until max_execution_time stops the request with a fatal
// error; PHP still writes the session at shutdown.
header('X-Fleet-Worker: ' . getenv('FLEET_WORKER'));
session_start();
$_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
while (true) {}
