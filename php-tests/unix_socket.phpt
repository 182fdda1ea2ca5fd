--TEST--
The backend's unix socket, with options that store sessions apart from the default
--SKIPIF--
<?php require __DIR__ . '/fleet.inc';
if (!fleet_is_cluster() && !getenv('FLEET_SOCKET')) die('skip FLEET_SOCKET (the server\'s unix socket) not set'); ?>
--FILE--
<?php
require __DIR__ . '/fleet.inc';
ini_set('session.save_handler', 'fleet');
ini_set('session.save_path', fleet_socket_save_path());
$id = fleet_new_id('unix');
session_id($id);
var_dump(session_start());
$_SESSION['via'] = 'socket';
session_write_close();
var_dump(fleet_exists($id));        // not in the default namespace
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
