--TEST--
Passwords: Fleet never prints one; password_file keeps it out of save_path and phpinfo() entirely
--FILE--
<?php
require __DIR__ . '/fleet.inc';
$secret = 'hunter2-' . bin2hex(random_bytes(4));
$file = tempnam(sys_get_temp_dir(), 'fleet-pw-');
file_put_contents($file, "$secret\n");

// 1. With password_file, the password appears nowhere: not in phpinfo(), not in warnings.
ini_set('session.save_handler', 'fleet');
ini_set('session.save_path', fleet_save_path("password_file=$file", false));
$warnings = [];
set_error_handler(function ($no, $msg) use (&$warnings) { $warnings[] = $msg; return true; });
session_start();   // a password the server refuses (Redis has none; MySQL's user has another)
restore_error_handler();
ob_start();
phpinfo();
$info = ob_get_clean();
var_dump(str_contains($info, 'Fleet session handler'));
var_dump(str_contains($info, $secret), str_contains(implode("\n", $warnings), $secret));

// 2. With the password in the URL, PHP's own messages print save_path (which is why
// password_file exists), but Fleet's warnings and Fleet's phpinfo() block never do.
ini_set('session.save_path', fleet_save_path_at(1, "app:$secret"));
$warnings = [];
set_error_handler(function ($no, $msg) use (&$warnings) { $warnings[] = $msg; return true; });
session_start();
restore_error_handler();
$fleet = array_values(array_filter($warnings, fn ($w) => str_contains($w, 'Fleet:')));
var_dump(count($fleet) > 0, str_contains(implode("\n", $fleet), $secret));
ob_start();
phpinfo(INFO_MODULES);
$info = ob_get_clean();
$start = strpos($info, "\nfleet\n");
$end = strpos($info, "\n\n", strpos($info, 'fleet.read_timeout'));
$block = substr($info, $start, $end - $start);
var_dump(str_contains($block, 'fleet.lock_wait_timeout'), str_contains($block, $secret));
unlink($file);
?>
--EXPECT--
bool(true)
bool(false)
bool(false)
bool(true)
bool(false)
bool(true)
bool(false)
