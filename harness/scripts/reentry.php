<?php
// Error handlers that re-enter the session module while Fleet reports a problem: run under
// valgrind by harness/tests/valgrind.rs, which expects the lines this prints and no memory
// error (a handler that closes the session frees what the reporting hook was using).
ini_set('session.save_handler', 'fleet');
ini_set('session.save_path', getenv('FLEET_SAVE_PATH'));
ini_set('display_errors', '0');

function handle(callable $then): void {
    set_error_handler(function (int $no, string $msg) use ($then): bool {
        $at = strpos($msg, 'Fleet: ');
        if ($at !== false) {
            // The message's first words: which problem it was, without ids.
            echo "handled: ", implode(' ', array_slice(explode(' ', substr($msg, $at + 7)), 0, 3)), "\n";
            $then();
        }
        return true;
    });
}

// A read that fails: the handler aborts, or starts the session again.
handle(fn() => session_abort());
session_id('a*b');
session_start();
handle(function () { session_abort(); session_id('vgok1'); session_start(); });
session_id('a*b');
session_start();
@session_write_close();
restore_error_handler();

// A read that succeeds after waiting for the lock: the handler closes or destroys the
// session before PHP has decoded it.
$marker = tempnam(sys_get_temp_dir(), 'fleet-vg-');
unlink($marker);
foreach ([fn() => session_write_close(), fn() => session_destroy()] as $i => $then) {
    $holder = proc_open([PHP_BINARY, '-n', '-d', 'extension=' . getenv('FLEET_EXT'), '-d', 'session.use_cookies=0', '-d', 'session.cache_limiter=', '-r',
        'ini_set("session.save_handler","fleet"); ini_set("session.save_path", getenv("FLEET_SAVE_PATH"));
         session_id("vgheld"); session_start(); touch(getenv("MARKER")); usleep(300000); session_write_close();'],
        [], $pipes, null, ['FLEET_SAVE_PATH' => getenv('FLEET_SAVE_PATH'), 'MARKER' => $marker]);
    while (!file_exists($marker)) { usleep(5000); }
    unlink($marker);
    ini_set('fleet.slow_lock_wait', '0.01');
    handle($then);
    session_id('vgheld');
    session_start();
    restore_error_handler();
    @session_write_close();
    proc_close($holder);
    ini_set('fleet.slow_lock_wait', '0');
}

// A store that is not there: session_start() warns from the open hook; the handler tries
// again from inside it.
ini_set('session.save_path', 'redis://127.0.0.1:1');
handle(fn() => @session_start());
session_start();
restore_error_handler();
echo "done\n";
