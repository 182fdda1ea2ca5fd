--TEST--
compression=lz4|zstd: large sessions stored in a frame, read back whatever the option says now; a damaged frame warns and is left as it is
--FILE--
<?php
require __DIR__ . '/fleet.inc';

function cart(int $items): array {
    $cart = [];
    for ($i = 0; $i < $items; $i++) {
        $cart[] = ['sku' => sprintf('SKU-%05d', $i), 'qty' => $i % 4 + 1, 'price' => 9.99 + $i % 50, 'title' => "Product number $i"];
    }
    return $cart;
}

function save(string $id, string $options, array $vars): void {
    fleet_use($options);
    session_id($id);
    session_start();
    $_SESSION = $vars;
    session_write_close();
}

function load(string $id, string $options): array|false {
    fleet_use($options);
    session_id($id);
    if (!@session_start()) { return false; }
    $vars = $_SESSION;
    session_write_close();
    return $vars;
}

$big = ['user' => 42, 'cart' => cart(200), 'bin' => random_bytes(64)];
$small = ['user' => 7];
foreach (['lz4', 'zstd'] as $algorithm) {
    $options = "compression=$algorithm&compression_min_size=1024";
    $id = fleet_new_id("cmp$algorithm");
    save($id, $options, $big);
    $stored = fleet_get($id);
    echo "$algorithm: framed ", var_export(substr($stored, 0, 4) === "\0FLC", true),
         ", stored ", strlen($stored) < 10000 ? 'small' : 'large', "\n";
    // Read back with the option on, off, and the other algorithm: the same session.
    var_dump(load($id, $options) === $big, load($id, '') === $big, load($id, 'compression=zstd') === $big);
    // Below the threshold: stored as it is.
    $sid = fleet_new_id("cms$algorithm");
    save($sid, $options, $small);
    var_dump(fleet_get($sid) === 'user|i:7;');
}

// Switching the option on for sessions stored without it, and off again: nobody is
// logged out, and each write follows the option in force.
$id = fleet_new_id('switch');
save($id, '', $big);
var_dump(substr(fleet_get($id), 0, 4) === "\0FLC");
$vars = load($id, 'compression=lz4');
$vars['user'] = 43;
save($id, 'compression=lz4', $vars);
var_dump(substr(fleet_get($id), 0, 4) === "\0FLC");
$vars = load($id, '');
var_dump($vars['user'], $vars['cart'] === $big['cart']);
$vars['user'] = 44;   // changed, so written (lazy_write skips an unchanged session)
save($id, '', $vars);
var_dump(substr(fleet_get($id), 0, 4) === "\0FLC");

// A damaged frame: a warning naming the problem, no session, the data left as it was,
// and the session not left locked.
$id = fleet_new_id('dmg');
$damaged = "\0FLC\x01" . pack('V', 5000) . 'not lz4 at all';
fleet_put($id, $damaged);
fleet_use('compression=lz4');
session_id($id);
var_dump(session_start());
var_dump(fleet_get($id) === $damaged);
var_dump(load($id, '') === false);
echo "still running\n";
?>
--EXPECTF--
lz4: framed true, stored small
bool(true)
bool(true)
bool(true)
bool(true)
zstd: framed true, stored small
bool(true)
bool(true)
bool(true)
bool(true)
bool(false)
bool(true)
int(43)
bool(true)
bool(false)

Warning: session_start(): Fleet: %s: session dmg%s: the stored data is a damaged compressed frame (lz4: %s); it was left as it is and this request has no session. Delete it (fleetctl sessions destroy) if it stays unreadable in %s on line %d

Warning: session_start(): Failed to read session data: fleet (path: %s) in %s on line %d
bool(false)
bool(true)
bool(true)
still running
