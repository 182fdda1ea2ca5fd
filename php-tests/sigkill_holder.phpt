--TEST--
MySQL: a PHP process holding a session is killed with SIGKILL; the server frees the lock at once (advisory and row)
--SKIPIF--
<?php require __DIR__ . '/fleet.inc'; fleet_only('mysql'); ?>
--FILE--
<?php
require __DIR__ . '/fleet.inc';
foreach (['advisory', 'row'] as $mode) {
    $id = fleet_new_id("kill$mode");
    fleet_put($id, 'n|i:1;');
    $child = fleet_spawn('
fleet_use("lock=' . $mode . '");
session_id("' . $id . '");
session_start();
$_SESSION["n"] = 1000;
fwrite(STDOUT, "locked\n");
sleep(60);
');
    [$proc, $pipes, $file] = $child;
    fgets($pipes[1]);                               // the child holds the session now
    $held = $mode === 'row' ? fleet_row_locked($id) : fleet_locked($id);
    proc_terminate($proc, 9);                       // SIGKILL: no close, no release
    proc_close($proc);
    unlink($file);
    fleet_use("lock=$mode&timeout=5");
    session_id($id);
    $t = microtime(true);
    $ok = session_start();
    $waited = microtime(true) - $t;
    echo "$mode: held=$held started=", var_export($ok, true), " n=", $_SESSION['n'], " at once=", var_export($waited < 2.0, true), "\n";
    session_write_close();
    $_SESSION = [];
}
?>
--EXPECT--
advisory: held=1 started=true n=1 at once=true
row: held=1 started=true n=1 at once=true
