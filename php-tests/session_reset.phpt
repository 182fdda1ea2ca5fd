--TEST--
session_reset(): the data is read again as stored, the lock of the session opened before is released (PHP opens again without closing), and no other request waits for it
--INI--
session.save_handler=fleet
fleet.lock_wait_timeout=2
--FILE--
<?php
require __DIR__ . '/fleet.inc';
fleet_use();
$id = fleet_new_id('reset');
session_id($id);
session_start();
$_SESSION['n'] = 1;
session_write_close();

session_id($id);
session_start();
$_SESSION['n'] = 2;
// PHP calls open and read again, without close, and keeps the session active.
var_dump(session_reset());
var_dump($_SESSION['n']);
$_SESSION['n'] = 3;
session_write_close();
var_dump(fleet_get($id));

// Another process gets the session at once: no lock of this one is left behind.
$child = fleet_spawn('
fleet_use();
ini_set("fleet.lock_wait_timeout", "2");
session_id("' . $id . '");
var_dump(session_start());
echo $_SESSION["n"] ?? "none", "\n";
session_write_close();
');
echo fleet_wait_child($child);
// The same in this process, several resets in a row.
session_id($id);
session_start();
session_reset();
session_reset();
$_SESSION['n']++;
session_write_close();
var_dump(fleet_get($id));
?>
--EXPECT--
bool(true)
int(1)
string(6) "n|i:3;"
bool(true)
3
string(6) "n|i:4;"
