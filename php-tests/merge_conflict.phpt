--TEST--
fleet.locking = merge: a variable both requests changed is a conflict, settled by fleet.merge_conflict, counted and named in a notice; the same value from both is no conflict (and one increment is lost, as documented)
--FILE--
<?php
require __DIR__ . '/fleet.inc';
// Request A reads; request B (a child process) reads, changes and writes; then A writes.
function race(string $policy, string $a_sets, string $b_sets, string $save_path_options = 'locking=merge'): string {
    $id = fleet_new_id('mcf');
    fleet_put($id, 'n|i:1;user|s:3:"ann";');
    fleet_use($save_path_options);
    ini_set('fleet.merge_conflict', $policy);
    session_id($id);
    session_start();
    eval($a_sets);
    $child = fleet_spawn('
fleet_use("' . $save_path_options . '");
session_id("' . $id . '");
session_start();
' . $b_sets . '
session_write_close();
');
    echo fleet_wait_child($child);
    session_write_close();
    return fleet_get($id);
}
$before = fleet_stats()['merge_conflicts'];
// Both change n: ours (the default) keeps this request's value, theirs the stored one.
var_dump(race('ours', '$_SESSION["n"] = 10;', '$_SESSION["n"] = 20;'));
var_dump(race('theirs', '$_SESSION["n"] = 10;', '$_SESSION["n"] = 20;'));
var_dump(fleet_stats()['merge_conflicts'] - $before);
// Both increment n from 1: both write 2, which merge cannot tell from agreement.
var_dump(race('ours', '$_SESSION["n"]++;', '$_SESSION["n"]++;'));
var_dump(fleet_stats()['merge_conflicts'] - $before);
// One removes a variable the other changed: a conflict too (removal is a change).
var_dump(race('ours', 'unset($_SESSION["user"]);', '$_SESSION["user"] = "bob";'));
?>
--EXPECTF--
Notice: session_write_close(): Fleet: session mcf%s: another request changed variable 'n' differently since this request read it; kept this request's value (fleet.merge_conflict = ours) in %s on line %d
string(22) "n|i:10;user|s:3:"ann";"

Notice: session_write_close(): Fleet: session mcf%s: another request changed variable 'n' differently since this request read it; kept the value the other request stored (fleet.merge_conflict = theirs) in %s on line %d
string(22) "n|i:20;user|s:3:"ann";"
int(2)
string(21) "n|i:2;user|s:3:"ann";"
int(2)

Notice: session_write_close(): Fleet: session mcf%s: another request changed variable 'user' differently since this request read it; kept this request's value (fleet.merge_conflict = ours) in %s on line %d
string(6) "n|i:1;"
