--TEST--
session_gc(): expired sessions are gone (Redis expires keys itself; MySQL rows are deleted), live ones stay
--FILE--
<?php
require __DIR__ . '/fleet.inc';
fleet_use();
$expired = fleet_new_id('gcold');
$live = fleet_new_id('gclive');
fleet_put($expired, 'a|i:1;', 1);
fleet_put($live, 'b|i:2;', 1000);
sleep(2);
var_dump(fleet_exists($expired), fleet_exists($live));
session_id(fleet_new_id('gc'));
session_start();
$removed = session_gc();
var_dump(fleet_is_mysql() ? $removed >= 1 : $removed === 0);
session_write_close();
var_dump(fleet_raw_exists($expired), fleet_raw_exists($live));
?>
--EXPECT--
int(0)
int(1)
bool(true)
int(0)
int(1)
