--TEST--
A write after the session's lock ran out (renewal off, a lock TTL shorter than the request) is refused with a warning that names the settings, and the session as stored is kept
--SKIPIF--
<?php require __DIR__ . '/fleet.inc'; fleet_only('redis', 'cluster'); // a MySQL lock lives as long as its connection ?>
--INI--
fleet.lock_renewal=0
fleet.lock_ttl=0.3
--FILE--
<?php
require __DIR__ . '/fleet.inc';
fleet_use();
$id = fleet_new_id('lost');
fleet_put($id, 'n|i:1;');
session_id($id);
session_start();
$_SESSION['n'] = 2;
// Longer than the lock's TTL: the lock is gone when the session is written.
usleep(600000);
session_write_close();
var_dump(fleet_get($id));
?>
--EXPECTF--
Warning: session_write_close(): Fleet: this request's session lock was gone when it wrote or destroyed the session: it held the lock for %f s, and it was not renewed (fleet.lock_renewal=0), so it ended when its TTL of 0.3 s (fleet.lock_ttl) ran out. Turn renewal on, or raise fleet.lock_ttl above your slowest request. Another request may have changed the session, so this request's changes (or its session_destroy()) were not saved in %s on line %d
%A
string(6) "n|i:1;"
