--TEST--
session_gc(): expired sessions are gone (Redis expires keys itself; MySQL rows are deleted), live ones stay
--FILE--
<?php
require __DIR__ . '/fleet.inc';
// On MySQL a table of its own, without Fleet's automatic gc: the other tests, run in
// parallel, start PHP processes whose automatic gc (gc_interval) sweeps the shared table
// and could delete this test's expired row before its session_gc() does.
$table = 'fleet_gc_test';
fleet_use(fleet_is_mysql() ? "table=$table&gc_interval=0" : '');
session_id(fleet_new_id('gc'));
session_start(); // creates the table on MySQL
$expired = fleet_new_id('gcold');
$live = fleet_new_id('gclive');
fleet_put($expired, 'a|i:1;', 1, $table);
fleet_put($live, 'b|i:2;', 1000, $table);
sleep(2);
var_dump(fleet_exists($expired, $table), fleet_exists($live, $table));
$removed = session_gc();
var_dump(fleet_is_mysql() ? $removed >= 1 : $removed === 0);
session_write_close();
var_dump(fleet_raw_exists($expired, $table), fleet_raw_exists($live, $table));
?>
--EXPECT--
int(0)
int(1)
bool(true)
int(0)
int(1)
