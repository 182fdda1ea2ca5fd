<?php
// Holds the session `ms` milliseconds, then saves it: a slow page other requests wait for.
header('Content-Type: text/plain');
header('X-Fleet-Worker: ' . getenv('FLEET_WORKER'));
session_start();
if (isset($_GET['pid_file'])) {
    file_put_contents($_GET['pid_file'], getmypid());
}
$_SESSION['held'] = ($_SESSION['held'] ?? 0) + 1;
usleep((int) ($_GET['ms'] ?? 1000) * 1000);
echo getmypid(), "\n";
