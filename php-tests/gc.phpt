--TEST--
session_gc() succeeds; Redis expires sessions itself, so nothing is swept
--FILE--
<?php
require __DIR__ . '/fleet.inc';
fleet_use();
session_id(fleet_new_id('gc'));
session_start();
var_dump(session_gc());
session_write_close();
?>
--EXPECT--
int(0)
