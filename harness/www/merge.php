<?php
// Merge mode's page (fleet.locking = merge): increments $_SESSION[k] (default n), holding the
// session open for hold_ms between the read and the write, and says how the write went:
// "clean", "conflict" (another request changed that variable too) or "gone" (the session
// was destroyed meanwhile), from the notice Fleet gives. destroy=1 logs out;
// regenerate=1 logs in again under a new id (session_regenerate_id(true)).
header('Content-Type: text/plain');
header('X-Fleet-Worker: ' . getenv('FLEET_WORKER'));
session_start();
if (isset($_GET['ready_file'])) { file_put_contents($_GET['ready_file'], getmypid()); }
if (isset($_GET['destroy'])) { session_destroy(); echo "destroyed\n"; exit; }
if (isset($_GET['regenerate'])) {
    session_regenerate_id(true);
    $_SESSION['user'] = 'ann';
    session_write_close();
    echo session_id(), "\n";
    exit;
}
$k = $_GET['k'] ?? 'n';
$_SESSION[$k] = ($_SESSION[$k] ?? 0) + 1;
$value = $_SESSION[$k];
if (isset($_GET['hold_ms'])) { usleep((int) $_GET['hold_ms'] * 1000); }
error_clear_last();
session_write_close();
$notice = error_get_last()['message'] ?? '';
$how = str_contains($notice, 'changed variable') ? 'conflict' : (str_contains($notice, 'destroyed') ? 'gone' : 'clean');
echo $value, ' ', $how, "\n";
