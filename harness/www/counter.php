<?php
// Increments a per-session counter; reports which app server (FPM pool) served it.
header('X-Fleet-Worker: ' . getenv('FLEET_WORKER'));
header('Content-Type: text/plain');
if (!session_start()) {
    // Keep a status Fleet set (fleet.busy_status), else 503.
    if (http_response_code() === 200) { http_response_code(503); }
    echo "no session\n";
    exit;
}
$_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
if (isset($_GET['hold_ms'])) {
    usleep((int)$_GET['hold_ms'] * 1000);
}
echo $_SESSION['n'], "\n";
