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
    // Started at all means the server freed the lock: one it kept for the dead process
    // would outlast this request's wait (fleet.lock_wait_timeout, 10 s, or the 5 s read
    // timeout; GET_LOCK and a row lock never end by themselves). How soon is not asserted
    // (a tolerance is a flaky test).
    fleet_use("lock=$mode&timeout=5");
    session_id($id);
    $ok = session_start();
    echo "$mode: held=$held started=", var_export($ok, true), " n=", $_SESSION['n'], "\n";
    session_write_close();
    $_SESSION = [];
}
?>
--EXPECT--
advisory: held=1 started=true n=1
row: held=1 started=true n=1
