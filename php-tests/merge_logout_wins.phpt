--TEST--
fleet.locking = merge: a logout wins: a request that read the session before session_destroy() or session_regenerate_id(true) does not write it back, and a new login on the id after the logout is kept
--INI--
fleet.locking = merge
--FILE--
<?php
require __DIR__ . '/fleet.inc';
function in_flight(string $id): array {
    // A request that read the session and writes once told to.
    $go = tempnam(sys_get_temp_dir(), 'fleet-go-');
    $ready = "$go.ready";
    unlink($go);
    $child = fleet_spawn('
ini_set("fleet.locking", "merge");
fleet_use();
session_id("' . $id . '");
session_start();
$_SESSION["cart"] = "full";
touch("' . $ready . '");
while (!file_exists("' . $go . '")) { usleep(2000); }
session_write_close();
echo "in flight: ", json_encode(error_get_last() === null ? "no notice" : "notice"), "\n";
');
    while (!file_exists($ready)) { usleep(2000); }
    unlink($ready);
    return [$child, $go];
}
function land(array $flight): void {
    [$child, $go] = $flight;
    touch($go);
    echo preg_replace('/session \w+/', 'session ID', fleet_wait_child($child));
    unlink($go);
}

// session_destroy()
$id = fleet_new_id('mlo');
fleet_put($id, 'user|s:3:"ann";');
$flight = in_flight($id);
fleet_use();
session_id($id);
session_start();
session_destroy();
land($flight);
var_dump(fleet_get($id));

// session_regenerate_id(true): the old id stays gone, the new one holds the login
$id = fleet_new_id('mlr');
fleet_put($id, 'user|s:3:"ann";');
$flight = in_flight($id);
session_id($id);
session_start();
session_regenerate_id(true);
$new = session_id();
session_write_close();
land($flight);
var_dump(fleet_get($id), fleet_get($new));

// A request that read before a logout does not write into the session a new login made on
// the same id after it (use_strict_mode off keeps the id).
$id = fleet_new_id('mln');
fleet_put($id, 'user|s:3:"ann";');
$flight = in_flight($id);
session_id($id);
session_start();
session_destroy();
session_id($id);
session_start();
$_SESSION['user'] = 'bob';
session_write_close();
land($flight);
var_dump(fleet_get($id));

// A login after the logout, on the same id (use_strict_mode off keeps it), is kept.
$id = fleet_new_id('mll');
fleet_put($id, 'user|s:3:"ann";');
session_id($id);
session_start();
session_destroy();
session_id($id);
session_start();
$_SESSION['user'] = 'bob';
session_write_close();
var_dump(fleet_get($id));
var_dump(fleet_stats()['sessions_destroyed']);
?>
--EXPECTF--
Notice: session_write_close(): Fleet: session ID%s was destroyed or expired after this request read it (fleet.locking = merge: a logout wins), so this request's changes to it were not written in %s on line %d
in flight: "notice"
NULL

Notice: session_write_close(): Fleet: session ID%s was destroyed or expired after this request read it (fleet.locking = merge: a logout wins), so this request's changes to it were not written in %s on line %d
in flight: "notice"
NULL
string(15) "user|s:3:"ann";"

Notice: session_write_close(): Fleet: session ID%s was destroyed or expired after this request read it (fleet.locking = merge: a logout wins), so this request's changes to it were not written in %s on line %d
in flight: "notice"
string(15) "user|s:3:"bob";"
string(15) "user|s:3:"bob";"
int(4)
