--TEST--
open_basedir: a store kept from a request with a wider open_basedir is not reused by one whose open_basedir refuses its password_file
--INI--
session.save_handler=fleet
fleet.connect_timeout=1
fleet.read_timeout=1
fleet.locking=0
--FILE--
<?php
require __DIR__ . '/fleet.inc';
// A server that accepts any password and stores nothing (fleet.locking=0 reads with GET).
$ready = tempnam(sys_get_temp_dir(), 'fleet-fake-');
unlink($ready);
$server = fleet_spawn('
$listener = stream_socket_server("tcp://127.0.0.1:0");
// Written under another name and renamed, so the port is never seen half written.
file_put_contents("' . $ready . '.part", substr(strrchr(stream_socket_get_name($listener, false), ":"), 1));
rename("' . $ready . '.part", "' . $ready . '");
// It serves until the test is done (the stop file), however slow the machine; 120 s only
// keeps a test that died from leaving it behind.
$until = microtime(true) + 120;
$conns = [];
while (!file_exists("' . $ready . '.stop") && microtime(true) < $until) {
    $read = array_merge([$listener], $conns);
    $w = $e = null;
    if (!stream_select($read, $w, $e, 0, 50000)) { continue; }
    foreach ($read as $s) {
        if ($s === $listener) { $conns[] = stream_socket_accept($listener); continue; }
        $data = fread($s, 65536);
        if ($data === "" || $data === false) { $conns = array_filter($conns, fn($c) => $c !== $s); continue; }
        echo preg_match("/AUTH/", $data) ? "AUTH\n" : "";
        // One command at a time (Fleet does not pipeline these): no session stored, else OK.
        fwrite($s, preg_match("/^GET\r$/m", $data) ? "$-1\r\n" : "+OK\r\n");
    }
}
');
// PHP caches the last stat: without clearstatcache() a file seen while still empty stays
// empty to filesize(), and the loop spun until run-tests.php's timeout (seen in CI).
while (!file_exists($ready)) { usleep(5000); clearstatcache(); }
$port = (int) file_get_contents($ready);
unlink($ready);
ini_set('session.save_path', "redis://127.0.0.1:$port?password_file=/etc/hostname");
// No open_basedir: the file is read, the connection made, and the store kept for the next
// request.
var_dump(session_start());
session_write_close();
// As a request of another site in the same worker, with an open_basedir of its own.
ini_set('open_basedir', __DIR__ . ':/tmp');
var_dump(session_start());
touch($ready . '.stop');
echo fleet_wait_child($server);
unlink($ready . '.stop');
?>
--EXPECTF--
bool(true)

Warning: session_start(): Fleet: %spassword_file "/etc/hostname"%sopen_basedir%s in %s on line %d

Warning: session_start(): Failed to initialize storage module: fleet (path: %s) in %s on line %d
bool(false)
AUTH
