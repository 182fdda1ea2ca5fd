--TEST--
pcntl_fork() with a session open: the child never uses the parent's connection or lock; each process reads its own sessions, and the parent's session is written once, by the parent
--SKIPIF--
<?php if (!function_exists('pcntl_fork')) { die('skip pcntl'); } ?>
--FILE--
<?php
require __DIR__ . '/fleet.inc';

// Reads session `$id` `$rounds` times, writing a counter; says whether every read saw its
// own session's data.
function hammer(string $id, int $rounds): string {
    for ($i = 0; $i < $rounds; $i++) {
        session_id($id);
        if (!session_start()) { return "session_start failed at round $i"; }
        if (($_SESSION['who'] ?? $id) !== $id || ($_SESSION['n'] ?? 0) !== $i) {
            return "round $i read " . json_encode($_SESSION);
        }
        $_SESSION['who'] = $id;
        $_SESSION['n'] = $i + 1;
        session_write_close();
    }
    return "ok";
}

fleet_use();
$shared = fleet_new_id('forkp');
session_id($shared);
session_start();
$_SESSION['by'] = 'parent';
$report = tempnam(sys_get_temp_dir(), 'fleet-fork-');
$pid = pcntl_fork();
if ($pid === 0) {
    // The child: the open session is the parent's.
    ob_start();
    $_SESSION['by'] = 'child';
    session_write_close();
    $warning = ob_get_clean();
    $result = hammer(fleet_new_id('forkc'), 200);
    file_put_contents($report, (str_contains($warning, 'before pcntl_fork()') ? "child refused the parent's session\n" : "child: $warning\n") . "child: $result\n");
    exit(0);
}
session_write_close();
echo "parent: ", hammer(fleet_new_id('forkq'), 200), "\n";
pcntl_waitpid($pid, $status);
echo file_get_contents($report);
unlink($report);
var_dump(fleet_get($shared));
?>
--EXPECT--
parent: ok
child refused the parent's session
child: ok
string(16) "by|s:6:"parent";"
