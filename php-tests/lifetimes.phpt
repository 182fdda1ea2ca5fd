--TEST--
first_lifetime, bot_first_lifetime: a one-hit session is short-lived; a login's session_regenerate_id() keeps the normal lifetime
--FILE--
<?php
require __DIR__ . '/fleet.inc';
// A TTL read back is the lifetime less the time since the write, which this measures
// (never a fixed tolerance): at least the lifetime less the whole seconds elapsed since just
// before the write, less one for the backends' whole-second rounding, and at most the lifetime.
function lifetime_kept(int $ttl, int $lifetime, float $before): bool {
    $elapsed = (int) ceil(microtime(true) - $before);
    return $ttl >= $lifetime - $elapsed - 1 && $ttl <= $lifetime;
}
$options = 'first_lifetime=60&bot_lifetime=120&bot_first_lifetime=30';
ini_set('session.gc_maxlifetime', '1440');
fleet_use($options);
$id = fleet_new_id('life');
$before = microtime(true);
session_id($id);
session_start();
$_SESSION['visits'] = 1;
session_write_close();
var_dump(lifetime_kept(fleet_ttl($id), 60, $before));       // new: first_lifetime
// The visitor comes back and logs in: the regenerated session is a returning visitor's.
$before = microtime(true);
session_id($id);
session_start();
session_regenerate_id(true);
$new = session_id();
$_SESSION['user'] = 'alice';
session_write_close();
var_dump(lifetime_kept(fleet_ttl($new), 1440, $before));    // normal lifetime
// A crawler's first visit, in a process of its own (a request of its own).
putenv('HTTP_USER_AGENT=Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)');
$bot = fleet_new_id('bot');
$before = microtime(true);
echo fleet_wait_child(fleet_spawn('
ini_set("session.gc_maxlifetime", "1440");
fleet_use("' . $options . '");
session_id("' . $bot . '");
session_start();
$_SESSION["crawled"] = 1;
session_write_close();
'));
var_dump(lifetime_kept(fleet_ttl($bot), 30, $before));      // bot_first_lifetime
?>
--EXPECT--
bool(true)
bool(true)
bool(true)
