<?php
// Reads the session without changing it: with lazy_write, the handler only refreshes the
// session's lifetime (update_timestamp) instead of rewriting it.
header('Content-Type: text/plain');
if (!session_start()) {
    http_response_code(503);
    echo "no session\n";
    exit;
}
echo $_SESSION['n'] ?? 0, "\n";
