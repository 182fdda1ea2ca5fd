--TEST--
lazy_write: an unchanged session is not rewritten, only its lifetime refreshed (update_timestamp)
--INI--
session.lazy_write=1
--FILE--
<?php
require __DIR__ . '/fleet.inc';
fleet_use();
$id = fleet_new_id('lazy');
ini_set('session.gc_maxlifetime', '100');
session_id($id);
session_start();
$_SESSION['v'] = 1;
session_write_close();
var_dump(fleet_ttl($id) <= 100);

ini_set('session.gc_maxlifetime', '5000');
session_id($id);
session_start();                      // unchanged: update_timestamp, not write
// Change the stored bytes behind the request's back: a rewrite would put back "v|i:1;",
// a lifetime refresh leaves them.
fleet_put($id, 'v|i:1;w|i:2;', 100);
session_write_close();
var_dump(fleet_get($id), fleet_ttl($id) > 4000, fleet_locked($id));

session_id($id);
session_start();
$_SESSION['v'] = 2;                   // changed: written
session_write_close();
var_dump(fleet_get($id));
?>
--EXPECT--
bool(true)
string(12) "v|i:1;w|i:2;"
bool(true)
int(0)
string(12) "v|i:2;w|i:2;"
