<?php
// Merge mode's paths under valgrind (harness/tests/valgrind.rs): conditional writes refused
// and merged (per variable and whole, with their conflict notices), a write dropped because
// the session was destroyed after it was read, destroys, and lazy_write's refresh. "The other
// request" is a child PHP process (not under valgrind) that writes between this request's
// read and its write.
ini_set('session.save_handler', 'fleet');
ini_set('session.save_path', getenv('FLEET_SAVE_PATH'));
ini_set('display_errors', '0');
ini_set('fleet.locking', 'merge');

function other_request(string $id, string $code): void {
    $script = tempnam(sys_get_temp_dir(), 'fleet-vg-');
    file_put_contents($script, '<?php ini_set("session.save_handler", "fleet");
ini_set("session.save_path", getenv("FLEET_SAVE_PATH")); ini_set("fleet.locking", "merge");
session_id("' . $id . '"); session_start(); ' . $code . ' session_write_close();');
    $proc = proc_open([PHP_BINARY, '-n', '-d', 'extension=' . getenv('FLEET_EXT'), '-d',
        'session.use_cookies=0', $script], [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes);
    stream_get_contents($pipes[1]);
    stream_get_contents($pipes[2]);
    proc_close($proc);
    unlink($script);
}

for ($i = 0; $i < 6; $i++) {
    $id = "vgmerge$i";
    other_request($id, '$_SESSION = ["a" => 0, "n" => 0, "blob" => str_repeat("y\0", 500)];');
    session_id($id);
    session_start();
    $_SESSION['a'] = $i;
    $_SESSION['n'] = -1;
    other_request($id, '$_SESSION["b"] = 1; $_SESSION["n"] = 5;');
    session_write_close(); // refused, merged: 'b' kept, a conflict on 'n'
    if ($i % 3 == 0) {
        session_id($id);
        session_start();
        session_destroy();
    }
}
// A reference across variables: merged whole.
other_request('vgmergeref', '$_SESSION["a"] = [1]; $_SESSION["r"] = &$_SESSION["a"];');
session_id('vgmergeref');
session_start();
$_SESSION['c'] = 1;
other_request('vgmergeref', '$_SESSION["d"] = 2;');
session_write_close();
// Unchanged sessions: the read refreshes the lifetime, nothing is written.
for ($i = 1; $i < 4; $i++) {
    session_id("vgmerge$i");
    session_start();
    session_write_close();
}
// Destroyed after the read: the write is dropped, with a notice.
other_request('vgmergegone', '$_SESSION["x"] = 1;');
session_id('vgmergegone');
session_start();
$_SESSION['x'] = 2;
other_request('vgmergegone', 'session_destroy(); return;');
session_write_close();
echo "done\n";
