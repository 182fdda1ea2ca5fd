--TEST--
fleet.locking = merge with both serialize handlers, nested arrays, objects (__serialize), binary data and 1 MB; sessions that cannot be cut (a reference across variables, a Serializable object, another serialize handler) merge whole, byte for byte
--INI--
error_reporting = E_ALL & ~E_DEPRECATED
memory_limit = 256M
--FILE--
<?php
require __DIR__ . '/fleet.inc';
class Point { public $x = 1; public $y = 2;
    function __serialize(): array { return ['x' => $this->x, 'y' => $this->y]; }
    function __unserialize(array $d): void { [$this->x, $this->y] = [$d['x'], $d['y']]; } }
class Legacy implements Serializable { public $v = 'old';
    function serialize() { return $this->v; } function unserialize($d) { $this->v = $d; } }
$classes = 'error_reporting(E_ALL & ~E_DEPRECATED); if (!class_exists("Point")) { eval(' . var_export('class Point { public $x = 1; public $y = 2;
    function __serialize(): array { return ["x" => $this->x, "y" => $this->y]; }
    function __unserialize(array $d): void { [$this->x, $this->y] = [$d["x"], $d["y"]]; } }
  class Legacy implements Serializable { public $v = "old";
    function serialize() { return $this->v; } function unserialize($d) { $this->v = $d; } }', true) . '); }';

foreach (['php', 'php_serialize'] as $handler) {
    $setup = $classes . ' ini_set("session.serialize_handler", "' . $handler . '");';
    $id = fleet_new_id('mfm');
    // The stored session, written by this handler.
    eval($setup);
    fleet_use();
    session_id($id);
    session_start();
    $_SESSION = ['tree' => ['a' => ['b' => [1, 2]]], 'p' => new Point, 'n' => 0];
    session_write_close();
    $blob = random_bytes(1 << 20);
    echo fleet_merge_race($id, $setup,
        '$_SESSION["tree"]["a"]["c"] = "deep"; $_SESSION["p"]->x = 5; $_SESSION["blob"] = ' . var_export($blob, true) . ';',
        '$_SESSION["n"] = 1; $_SESSION["bin"] = "\0\xff|;\"}";');
    session_id($id);
    session_start();
    echo "$handler: ", json_encode([$_SESSION['tree'], $_SESSION['p']->x, $_SESSION['n'],
        $_SESSION['blob'] === $blob, bin2hex($_SESSION['bin'])]), "\n";
    session_write_close();
}

// A reference across variables: the session is merged whole, so both sides changing it is one
// conflict ('*'), and the stored bytes are exactly this request's.
$id = fleet_new_id('mfr');
ini_set('session.serialize_handler', 'php');
fleet_use();
session_id($id);
session_start();
$_SESSION['a'] = ['x'];
$_SESSION['b'] = &$_SESSION['a'];
session_write_close();
echo fleet_merge_race($id, '', '$_SESSION["c"] = 1; $GLOBALS["mine"] = session_encode();', '$_SESSION["d"] = 2;');
var_dump(fleet_get($id) === $mine, strpos($mine, 'R:') !== false);

// A Serializable object (C:): its payload may hold references numbered among the values
// around it, so the session is merged whole too.
$id = fleet_new_id('mfc');
eval($classes);
fleet_use();
session_id($id);
session_start();
$_SESSION['l'] = new Legacy;
session_write_close();
echo fleet_merge_race($id, $classes, '$_SESSION["c"] = 1; $GLOBALS["mine"] = session_encode();', '$_SESSION["d"] = 2;');
var_dump(fleet_get($id) === $mine, strpos($mine, 'C:6:"Legacy"') !== false);

// Another serialize handler (php_binary): merged whole; a side that did not change it
// leaves the other side's bytes exactly.
$id = fleet_new_id('mfb');
$setup = 'ini_set("session.serialize_handler", "php_binary");';
eval($setup);
fleet_use();
session_id($id);
session_start();
$_SESSION['k'] = 'v';
session_write_close();
$before = fleet_get($id);
echo fleet_merge_race($id, $setup, '', '$_SESSION["k2"] = "theirs";');
$theirs = fleet_get($id);
var_dump($theirs !== $before, str_contains($theirs, 'theirs'));
echo fleet_merge_race($id, $setup, '$_SESSION["k3"] = "ours";', '$_SESSION["k4"] = "theirs";');
var_dump(str_contains(fleet_get($id), 'ours'), str_contains(fleet_get($id), 'k4'));
?>
--EXPECTF--
php: [{"a":{"b":[1,2],"c":"deep"}},5,1,true,"00ff7c3b227d"]
php_serialize: [{"a":{"b":[1,2],"c":"deep"}},5,1,true,"00ff7c3b227d"]

Notice: session_write_close(): Fleet: session mfr%s: another request changed the whole session (it cannot be merged per variable: another serialize handler, references between variables, a Serializable object, or a value Fleet's reader does not take, such as an enum) differently since this request read it; kept this request's value (fleet.merge_conflict = ours) in %s on line %d
bool(true)
bool(true)

Notice: session_write_close(): Fleet: session mfc%s: another request changed the whole session (it cannot be merged per variable: another serialize handler, references between variables, a Serializable object, or a value Fleet's reader does not take, such as an enum) differently since this request read it; kept this request's value (fleet.merge_conflict = ours) in %s on line %d
bool(true)
bool(true)
bool(true)
bool(true)

Notice: session_write_close(): Fleet: session mfb%s: another request changed the whole session (it cannot be merged per variable: another serialize handler, references between variables, a Serializable object, or a value Fleet's reader does not take, such as an enum) differently since this request read it; kept this request's value (fleet.merge_conflict = ours) in %s on line %d
bool(true)
bool(false)
