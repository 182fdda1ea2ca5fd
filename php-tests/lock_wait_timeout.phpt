--TEST--
Lock wait timeout: a clear warning and no session, never an unlocked write
--INI--
fleet.lock_wait_timeout=0.3
--FILE--
<?php
require __DIR__ . '/fleet.inc';
$id = fleet_new_id('lwt');
fleet_put($id, 'v|s:4:"kept";');
$child = fleet_spawn('
fleet_use();
session_id("' . $id . '");
session_start();
sleep(2);
session_write_close();
');
fleet_wait_locked($id);
fleet_use();
session_id($id);
var_dump(session_start());
var_dump(session_status() === PHP_SESSION_ACTIVE);
fleet_wait_child($child);
var_dump(fleet_get($id));
?>
--EXPECTF--
Warning: session_start(): Fleet: session lwt%s held %s: it did not finish within 300ms (fleet.lock_wait_timeout), so this request has no session. Raise fleet.lock_wait_timeout if requests on one session really take that long in %s on line %d

Warning: session_start(): Failed to read session data: fleet (path: %s) in %s on line %d
bool(false)
bool(false)
string(13) "v|s:4:"kept";"
