--TEST--
A session larger (inflated) than memory_limit leaves room for: a warning naming the size and memory_limit, no fatal error inside Fleet, and the stored session kept
--INI--
memory_limit=256M
--FILE--
<?php
require __DIR__ . '/fleet.inc';
$options = 'compression=zstd&compression_min_size=1024';
$id = fleet_new_id('mem');
fleet_use($options);
session_id($id);
session_start();
$_SESSION['blob'] = str_repeat('x', 40 << 20);
session_write_close();
$_SESSION = [];
$stored = strlen(fleet_get($id));
echo "stored in a frame of ", $stored < (1 << 20) ? 'under' : 'over', " 1 MB\n";
var_dump(ini_set('memory_limit', '24M') !== false);
session_id($id);
var_dump(session_start());
var_dump(session_status() === PHP_SESSION_ACTIVE);
echo "still running\n";
// The same limit written as PHP also accepts it, in hex: the enforced limit counts.
var_dump(ini_set('memory_limit', '0x1800000') !== false);
session_id($id);
var_dump(session_start());
ini_set('memory_limit', '256M');
session_id($id);
var_dump(session_start());
var_dump(strlen($_SESSION['blob']));
session_write_close();
?>
--EXPECTF--
stored in a frame of under 1 MB
bool(true)

Warning: session_start(): Fleet: %s: session mem%s is 41943%d bytes once read (inflated), more than the %d bytes this process can take now; it was left as it is and this request has no session. PHP needs about twice a session's size to read and decode it, and memory_limit leaves %d bytes free (memory_limit = 25165824 bytes, %d in use): raise memory_limit, or make the session smaller in %s on line %d

Warning: session_start(): Failed to read session data: fleet (path: %s) in %s on line %d
bool(false)
bool(false)
still running
bool(true)

Warning: session_start(): Fleet: %s: session mem%s is 41943%d bytes once read (inflated), more than the %d bytes this process can take now; it was left as it is and this request has no session. PHP needs about twice a session's size to read and decode it, and memory_limit leaves %d bytes free (memory_limit = 25165824 bytes, %d in use): raise memory_limit, or make the session smaller in %s on line %d

Warning: session_start(): Failed to read session data: fleet (path: %s) in %s on line %d
bool(false)
bool(true)
int(41943040)
