<?php
// Increments a per-session counter and answers 200 only once the session is saved, so a
// client knows which increments were acknowledged. session_write_close() returns true even
// when the handler's write failed (PHP only warns), so PHP's warning is what tells. A
// write saved on the master only (wait_replicas not met) is saved, and says so in
// X-Fleet-Replicated: no.
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
$replicated = true;
set_error_handler(function (int $no, string $message) use (&$saved, &$replicated) {
    if (str_contains($message, 'Failed to write session data')) { $saved = false; }
    if (str_contains($message, 'wait_replicas')) { $replicated = false; }
    return false; // and log it as usual
});
session_write_close();
restore_error_handler();
if (!$saved) {
    http_response_code(503);
    echo "not saved\n";
    exit;
}
header('X-Fleet-Replicated: ' . ($replicated ? 'yes' : 'no'));
echo $n, "\n";
