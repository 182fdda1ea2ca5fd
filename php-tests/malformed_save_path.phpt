--TEST--
Malformed session.save_path: a warning quoting the bad part, no crash
--FILE--
<?php
ini_set('session.save_handler', 'fleet');
foreach ([
    'redis://127.0.0.1:notaport',
    'redis://127.0.0.1:6379/db?prefix=x',
    'redis://127.0.0.1?timeout=soon',
    'redis://127.0.0.1?colour=blue',
    'mysql://127.0.0.1',
    'mysql://127.0.0.1/app?table=sessions;drop',
    'mysql://127.0.0.1/app?lock=sometimes',
    'memcached://127.0.0.1',
    '127.0.0.1:6379',
    '',
] as $path) {
    ini_set('session.save_path', $path);
    set_error_handler(function ($no, $msg) { if (str_starts_with($msg, 'session_start(): Fleet')) echo $msg, "\n"; return true; });
    var_dump(session_start());
    restore_error_handler();
}
echo "still running\n";
?>
--EXPECT--
session_start(): Fleet: session.save_path: "notaport": the port must be a number from 1 to 65535
bool(false)
session_start(): Fleet: session.save_path: "db": the database must be a non-negative number, e.g. /0
bool(false)
session_start(): Fleet: session.save_path: "timeout=soon": expected a number of seconds greater than 0 and at most 3600, e.g. 1.5
bool(false)
session_start(): Fleet: session.save_path: unknown option "colour"; known options are prefix, database, connect_timeout, timeout, read_timeout, auth, user, password_file, password_env, tls_verify, tls_ca_file, wait_replicas, wait_timeout, max_connection_age, sentinel_user, sentinel_password_file, sentinel_password_env, first_lifetime, bot_lifetime, bot_first_lifetime, bot_pattern, compression, compression_min_size, locking, encryption_key_file, hash_ids, hash_key_file, require_encryption
bool(false)
session_start(): Fleet: session.save_path: "mysql://127.0.0.1": the database is missing; write mysql://user@host/database
bool(false)
session_start(): Fleet: session.save_path: "table=sessions;drop": a table name may only hold letters, digits and _ (at most 64)
bool(false)
session_start(): Fleet: session.save_path: "lock=sometimes": expected lock=advisory (the default), lock=row or lock=none
bool(false)
session_start(): Fleet: session.save_path scheme "memcached://" is not supported; use redis://, rediss://, unix://, redis+sentinel://, rediss+sentinel://, redis+cluster://, rediss+cluster:// or mysql://
bool(false)
session_start(): Fleet: session.save_path "127.0.0.1:6379" has no scheme; write it as redis://host:port, rediss://host:port, unix:///path/to/redis.sock, redis+sentinel://s1:26379,s2:26379/mymaster, redis+cluster://n1:7000,n2:7001 or mysql://user@host/database
bool(false)
session_start(): Fleet: session.save_path is empty; set it to e.g. "redis://127.0.0.1:6379"
bool(false)
still running
