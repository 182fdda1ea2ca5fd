<?php
// Increments a per-session counter and answers 200 only once the session is saved, so a
// client knows which increments were acknowledged. session_write_close() returns true even
// when the handler's write failed (PHP only warns), so the warning is what tells.
header('X-Fleet-Worker: ' . getenv('FLEET_WORKER'));
header('Content-Type: text/plain');
if (!session_start()) {
    http_response_code(503);
    echo "no session\n";
    exit;
}
$n = ($_SESSION['n'] ?? 0) + 1;
$_SESSION['n'] = $n;
$saved = true;
set_error_handler(function (int $no, string $message) use (&$saved) {
    $saved = false;
    return false; // and log it as usual
});
session_write_close();
restore_error_handler();
if (!$saved) {
    http_response_code(503);
    echo "not saved\n";
    exit;
}
echo $n, "\n";
