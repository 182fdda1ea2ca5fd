<?php
// A "do this once across the cluster" action under a Fleet lease (no session): the request
// that wins lease `name` appends "<asked> <got> <token>" to the log file `log` (microtime
// before and after fleet_lease_acquire) and says "did";
// the others say "skipped". With `release=<token>` it releases the lease instead.
header('X-Fleet-Worker: ' . getenv('FLEET_WORKER'));
header('Content-Type: text/plain');
$name = $_GET['name'] ?? 'once';
if (isset($_GET['release'])) {
    var_export(fleet_lease_release($name, $_GET['release']));
    exit;
}
$asked = microtime(true);
$token = fleet_lease_acquire($name, (float) ($_GET['ttl'] ?? 30));
$got = microtime(true);
if ($token === false) {
    echo "skipped\n";
    exit;
}
file_put_contents($_GET['log'], sprintf("%.6f %.6f %s\n", $asked, $got, $token), FILE_APPEND | LOCK_EX);
usleep(20000);
echo "did $token\n";
