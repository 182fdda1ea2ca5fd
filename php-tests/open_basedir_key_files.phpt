--TEST--
open_basedir: Fleet reads no key file (encryption_key_file=, hash_key_file=) outside it: session_start() and fleet.lease_store fail with a warning naming the option, and nothing is sent to the server
--INI--
open_basedir={PWD}:/tmp
session.save_handler=fleet
session.save_path="redis://127.0.0.1:1?encryption_key_file=/etc/hostname"
fleet.connect_timeout=0.3
fleet.read_timeout=0.3
--FILE--
<?php
require __DIR__ . '/fleet.inc';
$listener = stream_socket_server('tcp://127.0.0.1:0', $errno, $errstr);
$port = (int) substr(strrchr(stream_socket_get_name($listener, false), ':'), 1);
stream_set_blocking($listener, false);
var_dump(session_start());
foreach ([
    "redis://127.0.0.1:$port?hash_ids=1&hash_key_file=/etc/hostname",
    "mysql://fleet@127.0.0.1:$port/fleet?encryption_key_file=/etc/hostname",
] as $store) {
    ini_set('fleet.lease_store', $store);
    var_dump(fleet_lease_acquire('job', 10));
}
$conn = @stream_socket_accept($listener, 0.2);
echo $conn === false ? "nothing was sent\n" : "received: " . fread($conn, 200) . "\n";
?>
--EXPECTF--
Warning: session_start(): Fleet: session.save_path: encryption_key_file "/etc/hostname" is not within open_basedir%s in %s on line %d

Warning: session_start(): Failed to initialize storage module: fleet (path: %s) in %s on line %d
bool(false)

Warning: fleet_lease_acquire(): Fleet: fleet.lease_store: session.save_path: hash_key_file "/etc/hostname" is not within open_basedir%s in %s on line %d
bool(false)

Warning: fleet_lease_acquire(): Fleet: fleet.lease_store: session.save_path: encryption_key_file "/etc/hostname" is not within open_basedir%s in %s on line %d
bool(false)
nothing was sent
