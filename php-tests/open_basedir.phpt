--TEST--
open_basedir: Fleet reads no file named in a setting (password_file=, sentinel_password_file=, tls_ca_file=, in session.save_path or fleet.lease_store) outside it, and sends nothing to the server
--INI--
open_basedir={PWD}:/tmp
session.save_handler=fleet
session.save_path="redis://127.0.0.1:1?password_file=/etc/hostname"
fleet.connect_timeout=0.3
fleet.read_timeout=0.3
--FILE--
<?php
require __DIR__ . '/fleet.inc';
// A listener that would receive whatever Fleet sends (AUTH <the file's contents>).
$listener = stream_socket_server('tcp://127.0.0.1:0', $errno, $errstr);
$port = (int) substr(strrchr(stream_socket_get_name($listener, false), ':'), 1);
stream_set_blocking($listener, false);
var_dump(session_start());
// fleet.lease_store is Fleet's own setting: PHP checks nothing in it.
foreach ([
    "redis://127.0.0.1:$port?password_file=/etc/hostname",
    "redis+sentinel://127.0.0.1:$port/mymaster?sentinel_password_file=/etc/hostname",
    "rediss://127.0.0.1:$port?tls_ca_file=/etc/hostname",
    "mysql://fleet@127.0.0.1:$port/fleet?password_file=/etc/hostname",
] as $store) {
    ini_set('fleet.lease_store', $store);
    var_dump(fleet_lease_acquire('job', 10));
}
$conn = @stream_socket_accept($listener, 0.2);
echo $conn === false ? "nothing was sent\n" : "received: " . fread($conn, 200) . "\n";
// Inside open_basedir the file is read as before.
$inside = tempnam('/tmp', 'fleet-pw-');
file_put_contents($inside, "not-the-password\n");
ini_set('fleet.lease_store', "redis://127.0.0.1:$port?password_file=$inside");
var_dump(fleet_lease_acquire('job', 10));
$conn = @stream_socket_accept($listener, 0.2);
echo $conn === false ? "nothing was sent\n" : "sent: " . str_replace("\r\n", " ", fread($conn, 200)) . "\n";
unlink($inside);
?>
--EXPECTF--
Warning: session_start(): Fleet: %spassword_file "/etc/hostname"%sopen_basedir%s in %s on line %d

Warning: session_start(): Failed to initialize storage module: fleet (path: %s) in %s on line %d
bool(false)

Warning: fleet_lease_acquire(): Fleet: %spassword_file "/etc/hostname"%sopen_basedir%s in %s on line %d
bool(false)

Warning: fleet_lease_acquire(): Fleet: %ssentinel_password_file "/etc/hostname"%sopen_basedir%s in %s on line %d
bool(false)

Warning: fleet_lease_acquire(): Fleet: %stls_ca_file "/etc/hostname"%sopen_basedir%s in %s on line %d
bool(false)

Warning: fleet_lease_acquire(): Fleet: %spassword_file "/etc/hostname"%sopen_basedir%s in %s on line %d
bool(false)
nothing was sent

Warning: fleet_lease_acquire(): Fleet: %s did not answer within 300ms%s in %s on line %d
bool(false)
sent: *2 $4 AUTH $16 not-the-password 
