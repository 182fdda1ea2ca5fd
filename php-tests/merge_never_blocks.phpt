--TEST--
fleet.locking = merge: a request never waits for another on its session, and changes to different variables both land
--INI--
fleet.locking = merge
--FILE--
<?php
require __DIR__ . '/fleet.inc';
$id = fleet_new_id('mrg');
fleet_put($id, 'cart|a:1:{i:0;s:3:"tea";}visits|i:1;');
$ready = tempnam(sys_get_temp_dir(), 'fleet-ready-');
$go = tempnam(sys_get_temp_dir(), 'fleet-go-');
unlink($ready); unlink($go);
// The child reads the session and keeps it open until the parent has read and written it:
// with a lock, the parent's session_start() would wait for the child, and the child for
// the parent's file, for ever.
$child = fleet_spawn('
ini_set("fleet.locking", "merge");
fleet_use();
session_id("' . $id . '");
session_start();
$_SESSION["cart"][] = "milk";
touch("' . $ready . '");
while (!file_exists("' . $go . '")) { usleep(2000); }
session_write_close();
$stats = fleet_stats();
echo "child wrote after {$stats["merge_retries"]} retry, {$stats["merge_conflicts"]} conflicts\n";
');
while (!file_exists($ready)) { usleep(2000); }
var_dump(fleet_locked($id));        // merge mode takes no lock
fleet_use();
session_id($id);
var_dump(session_start());
$_SESSION['visits']++;
$_SESSION['theme'] = 'dark';
session_write_close();
touch($go);
echo fleet_wait_child($child);
unlink($ready); unlink($go);
var_dump(fleet_get($id));
$stats = fleet_stats();
var_dump($stats['merge_writes'], $stats['merge_retries']);
?>
--EXPECT--
int(0)
bool(true)
child wrote after 1 retry, 0 conflicts
string(68) "cart|a:2:{i:0;s:3:"tea";i:1;s:4:"milk";}visits|i:2;theme|s:4:"dark";"
int(1)
int(0)
