--TEST--
fleet.locking = merge with compression: versions are the stored (compressed) bytes', merges see the inflated session, and what is written is compressed again
--FILE--
<?php
require __DIR__ . '/fleet.inc';
$id = fleet_new_id('mcz');
$big = str_repeat('fleet ', 200);
fleet_use('locking=merge&compression=lz4&compression_min_size=64');
session_id($id);
session_start();
$_SESSION['a'] = $big;
session_write_close();
var_dump(substr(fleet_get($id), 0, 4) === "\0FLC");
echo fleet_merge_race($id, '', '$_SESSION["b"] = 1;', '$_SESSION["c"] = 2;',
    'locking=merge&compression=lz4&compression_min_size=64');
var_dump(substr(fleet_get($id), 0, 4) === "\0FLC");
fleet_use('compression=lz4&compression_min_size=64');
session_id($id);
session_start();
var_dump($_SESSION['a'] === $big, $_SESSION['b'], $_SESSION['c']);
session_write_close();
?>
--EXPECT--
bool(true)
bool(true)
bool(true)
int(1)
int(2)
