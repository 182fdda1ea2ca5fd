--TEST--
unix:// save_path with options
--FILE--
<?php
require __DIR__ . '/fleet.inc';
ini_set('session.save_handler', 'fleet');
ini_set('session.save_path', 'unix://' . getenv('FLEET_REDIS_SOCKET') . '?prefix=sock:&database=3');
$id = fleet_new_id('unix');
session_id($id);
var_dump(session_start());
$_SESSION['via'] = 'socket';
session_write_close();
var_dump(fleet_redis('EXISTS', "sock:$id"));        // database 0: not there
$_SESSION = [];
session_id($id);
session_start();
var_dump($_SESSION['via']);
session_write_close();
?>
--EXPECT--
bool(true)
int(0)
string(6) "socket"
