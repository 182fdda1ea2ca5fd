--TEST--
lazy_write: an unchanged session is not rewritten, only its lifetime refreshed (update_timestamp)
--INI--
session.lazy_write=1
--FILE--
<?php
require __DIR__ . '/fleet.inc';
fleet_use();
$id = fleet_new_id('lazy');
$key = "PHPREDIS_SESSION:$id";
ini_set('session.gc_maxlifetime', '100');
session_id($id);
session_start();
$_SESSION['v'] = 1;
session_write_close();
var_dump(fleet_redis('TTL', $key) <= 100);
// APPEND turns a short string's encoding from embstr into raw; only a SET (a rewrite) makes
// it embstr again. So the encoding tells whether Fleet rewrote the data.
fleet_redis('APPEND', $key, 'w|i:2;');
var_dump(fleet_redis('OBJECT', 'ENCODING', $key));

ini_set('session.gc_maxlifetime', '5000');
session_id($id);
session_start();                      // unchanged: update_timestamp, not write
session_write_close();
var_dump(fleet_redis('OBJECT', 'ENCODING', $key), fleet_redis('TTL', $key) > 4000);
var_dump(fleet_redis('EXISTS', "{$key}_LOCK"));

session_id($id);
session_start();
$_SESSION['v'] = 2;                   // changed: written
session_write_close();
var_dump(fleet_redis('OBJECT', 'ENCODING', $key), fleet_redis('GET', $key));
?>
--EXPECT--
bool(true)
string(3) "raw"
string(3) "raw"
bool(true)
int(0)
string(6) "embstr"
string(12) "v|i:2;w|i:2;"
