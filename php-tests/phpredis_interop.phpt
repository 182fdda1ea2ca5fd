--TEST--
phpredis interoperability: a session written by phpredis is read by Fleet and the other way round
--SKIPIF--
<?php require __DIR__ . '/fleet.inc'; fleet_only('redis');
if (!extension_loaded('redis')) die('skip phpredis (Debian: php-redis) not loaded'); ?>
--EXTENSIONS--
igbinary
redis
--INI--
redis.session.locking_enabled=1
--FILE--
<?php
require __DIR__ . '/fleet.inc';
$id = fleet_new_id('interop');

// phpredis writes ...
ini_set('session.save_handler', 'redis');
ini_set('session.save_path', 'tcp://127.0.0.1:' . fleet_port());
session_id($id);
session_start();
// phpredis's lock has the name Fleet uses, so the two exclude each other during a migration.
var_dump(fleet_redis('EXISTS', "PHPREDIS_SESSION:{$id}_LOCK"));
$_SESSION['written_by'] = 'phpredis';
session_write_close();

// ... Fleet reads and writes ...
ini_set('session.save_handler', 'fleet');
ini_set('session.save_path', 'tcp://127.0.0.1:' . fleet_port());   // phpredis spelling works as is
$_SESSION = [];
session_id($id);
session_start();
var_dump($_SESSION);
$_SESSION['written_by'] .= '+fleet';
session_write_close();

// ... and phpredis reads Fleet's write.
ini_set('session.save_handler', 'redis');
$_SESSION = [];
session_id($id);
session_start();
var_dump($_SESSION);
session_write_close();
?>
--EXPECT--
int(1)
array(1) {
  ["written_by"]=>
  string(8) "phpredis"
}
array(1) {
  ["written_by"]=>
  string(14) "phpredis+fleet"
}
