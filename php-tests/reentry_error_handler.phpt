--TEST--
Error handlers that call session functions while Fleet reports a problem: no use of freed state, and a write before $_SESSION was decoded is refused (the stored session is kept)
--FILE--
<?php
require __DIR__ . '/fleet.inc';

// A read fails (an id Fleet rejects); the handler aborts the session, which closes it.
set_error_handler(function (int $no, string $msg): bool {
    echo "handler: ", str_contains($msg, 'session id rejected') ? 'id rejected' : $msg, "\n";
    session_abort();
    return true;
});
fleet_use();
session_id('a*b');
var_dump(session_start());
restore_error_handler();

// A read succeeds after waiting for the lock, and fleet.slow_lock_wait reports it; the
// handler closes the session before PHP has decoded the data into $_SESSION.
$id = fleet_new_id('reent');
fleet_put($id, 'v|s:4:"kept";');
$child = fleet_spawn('
fleet_use();
session_id("' . $id . '");
session_start();
usleep(400000);
session_write_close();
');
fleet_wait_locked($id);
ini_set('fleet.slow_lock_wait', '0.05');
set_error_handler(function (int $no, string $msg): bool {
    echo "handler: ", str_contains($msg, 'fleet.slow_lock_wait') ? 'slow lock wait' : $msg, "\n";
    session_write_close();
    return true;
});
fleet_use();
session_id($id);
var_dump(session_start());
restore_error_handler();
fleet_wait_child($child);
var_dump(fleet_get($id));
echo "done\n";
?>
--EXPECTF--
handler: id rejected
handler: session_start(): Failed to read session data: fleet (path: %s)
bool(false)
handler: slow lock wait

Warning: session_write_close(): Fleet: the session was not written: session_write_close() (or a write) ran in an error handler while session_start() was still reading the session, before PHP had put the data into $_SESSION. The session is kept as stored in %s on line %d

Warning: session_write_close(): Failed to write session data %s in %s on line %d
bool(false)
string(13) "v|s:4:"kept";"
done
