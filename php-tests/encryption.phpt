--TEST--
Sessions at rest: encryption_key_file seals what is stored (no plaintext in the store), keys rotate, a server with another key sees the session empty with a warning and leaves it as it was, hash_ids=1 keeps ids out of the store, and a missing key file stops session_start() naming the option (open_basedir: open_basedir_key_files.phpt)
--FILE--
<?php
require __DIR__ . '/fleet.inc';
$dir = sys_get_temp_dir() . '/fleet-keys-' . getmypid();
@mkdir($dir);
$a = base64_encode(random_bytes(32));
$b = base64_encode(random_bytes(32));
file_put_contents("$dir/a", "$a\n");
file_put_contents("$dir/b", "$b\n");
file_put_contents("$dir/ba", "# rotated\n$b\n$a\n");

echo "-- sealed\n";
$id = fleet_new_id('enc');
fleet_use("encryption_key_file=$dir/a");
session_id($id);
session_start();
$_SESSION['card'] = 'visa-4111-1111';
$_SESSION['blob'] = str_repeat("\0\xff", 100);
session_write_close();
$raw = fleet_get($id);
var_dump(str_contains($raw, 'visa-4111'), str_contains($raw, 'card'), str_starts_with($raw, "\0FLE"));
session_id($id);
session_start();
var_dump($_SESSION['card'], $_SESSION['blob'] === str_repeat("\0\xff", 100));
session_write_close();

echo "-- rotated: the file holds b, then a\n";
fleet_use("encryption_key_file=$dir/ba");
session_id($id);
session_start();
var_dump($_SESSION['card']);
session_abort();

echo "-- another key: empty, with a warning; nothing new written, so left as it was\n";
ini_set('session.lazy_write', '0');
fleet_use("encryption_key_file=$dir/b");
session_id($id);
var_dump(session_start(), $_SESSION);
session_write_close();
var_dump(fleet_get($id) === $raw);
ini_set('session.lazy_write', '1');

echo "-- no key at all: the same\n";
fleet_use();
session_id($id);
session_start();
var_dump($_SESSION);
session_write_close();
var_dump(fleet_get($id) === $raw);

echo "-- hash_ids=1: the id is not in the store, the session is\n";
$hid = fleet_new_id('hid');
fleet_use("encryption_key_file=$dir/a&hash_ids=1&hash_key_file=$dir/b");
session_id($hid);
session_start();
$_SESSION['x'] = 'y';
session_write_close();
var_dump(fleet_exists($hid), count(fleet_ids_like('hid')) === 0 || !in_array($hid, fleet_ids_like('hid')));
session_id($hid);
session_start();
var_dump($_SESSION['x']);
session_destroy();

echo "-- a missing key file\n";
fleet_use("encryption_key_file=$dir/missing");
session_id($id);
var_dump(session_start());

fleet_use("encryption_key_file=$dir/a");
session_id($id);
session_start();
session_destroy();
foreach (['a', 'b', 'ba'] as $f) { unlink("$dir/$f"); }
rmdir($dir);
?>
--EXPECTF--
-- sealed
bool(false)
bool(false)
bool(true)
string(14) "visa-4111-1111"
bool(true)
-- rotated: the file holds b, then a
string(14) "visa-4111-1111"
-- another key: empty, with a warning; nothing new written, so left as it was

Warning: session_start(): Fleet: %s: session enc%s: it is encrypted with key %x, which is not in encryption_key_file; this request sees the session empty, and it is left as it is unless the request stores new data.%s in %s on line %d
bool(true)
array(0) {
}
bool(true)
-- no key at all: the same

Warning: session_start(): Fleet: %s: session enc%s: it is encrypted (key %x), and session.save_path has no encryption_key_file; %s in %s on line %d
array(0) {
}
bool(true)
-- hash_ids=1: the id is not in the store, the session is
int(0)
bool(true)
string(1) "y"
-- a missing key file

Warning: session_start(): Fleet: session.save_path: cannot use encryption_key_file "%s/missing": No such file or directory%s in %s on line %d

Warning: session_start(): Failed to initialize storage module: fleet (path: %s) in %s on line %d
bool(false)
