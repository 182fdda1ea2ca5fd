--TEST--
PHP leases: one holder at a time, fencing tokens grow, the TTL ends a forgotten lease, bad input warns
--FILE--
<?php
require __DIR__ . '/fleet.inc';
ini_set('fleet.lease_store', fleet_save_path());
$name = 'phpt.' . bin2hex(random_bytes(4));

$first = fleet_lease_acquire($name, 0.5);
var_dump(is_string($first) && (int) $first >= 1);
// Held: a second taker gets false at once, and after waiting less than the TTL.
var_dump(fleet_lease_acquire($name, 5));
var_dump(fleet_lease_acquire($name, 5, 0.1));
// Only the holder's token renews or releases it.
$forged = ((int) $first) . '-' . str_repeat('0', 32);
var_dump(fleet_lease_release($name, $forged));
var_dump(fleet_lease_renew($name, $first, 0.5));
// Left unreleased, it ends by its TTL: a waiter gets it then, with a larger fence.
$second = fleet_lease_acquire($name, 5, 3);
var_dump(is_string($second) && (int) $second > (int) $first);
var_dump(fleet_lease_renew($name, $first, 1));
var_dump(fleet_lease_release($name, $first));
var_dump(fleet_lease_release($name, $second));
var_dump(fleet_lease_release($name, $second));
// Released: free at once.
$third = fleet_lease_acquire($name, 5);
var_dump((int) $third > (int) $second);
fleet_lease_release($name, $third);

// Bad input: a warning naming the problem, false, and the script goes on.
var_dump(fleet_lease_acquire('no spaces allowed', 1));
var_dump(fleet_lease_acquire($name, 0));
var_dump(fleet_lease_acquire($name, NAN));
// A huge TTL counts as the 7-day cap: no overflow, no panic.
$capped = fleet_lease_acquire($name, 1e20);
var_dump(is_string($capped), fleet_lease_release($name, $capped));
var_dump(fleet_lease_renew($name, 'not-a-token', 1));
// No store configured and Fleet not the session handler.
ini_set('fleet.lease_store', '');
var_dump(fleet_lease_acquire($name, 1));
echo "done\n";
?>
--EXPECTF--
bool(true)
bool(false)
bool(false)
bool(false)
bool(true)
bool(true)
bool(false)
bool(false)
bool(true)
bool(false)
bool(true)

Warning: fleet_lease_acquire(): Fleet: lease name "no spaces allowed" is not allowed: use 1 to 128 characters of a-z A-Z 0-9 . _ : / @ - in %s on line %d
bool(false)

Warning: fleet_lease_acquire(): Fleet: $ttl must be a number of more than 0 seconds (values above 604800 count as 604800), 0 given in %s on line %d
bool(false)

Warning: fleet_lease_acquire(): Fleet: $ttl must be a number of more than 0 seconds (values above 604800 count as 604800), NaN given in %s on line %d
bool(false)
bool(true)
bool(true)

Warning: fleet_lease_renew(): Fleet: $token is not a lease token (pass the string fleet_lease_acquire() returned) in %s on line %d
bool(false)

Warning: fleet_lease_acquire(): Fleet: no store for leases: set fleet.lease_store to a store URL written as session.save_path (e.g. "redis://10.0.0.5:6379?prefix=app:"), or use session.save_handler = fleet in %s on line %d
bool(false)
done
