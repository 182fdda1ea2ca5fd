--TEST--
fleet.locking = merge with lazy_write: a request that changes nothing rewrites nothing, and the session's lifetime is refreshed (on Redis by the read itself)
--INI--
fleet.locking = merge
session.gc_maxlifetime = 1000
--FILE--
<?php
require __DIR__ . '/fleet.inc';
$id = fleet_new_id('mlz');
fleet_put($id, 'n|i:5;', 100);
fleet_use();
session_id($id);
session_start();
echo $_SESSION['n'], "\n";
session_write_close();
$ttl = fleet_ttl($id);
var_dump($ttl > 900 && $ttl <= 1000, fleet_get($id));
var_dump(fleet_stats()['merge_writes']);
?>
--EXPECT--
5
bool(true)
string(6) "n|i:5;"
int(0)
