//! The Lua scripts of the Redis store, and how one is sent.
//!
//! Every locked step is one script on the keys of one session (which the Cluster form puts
//! in one slot), so each is one round trip and atomic. A script is sent as `EVALSHA`; a
//! server that does not know it yet (restarted, failed over) answers
//! `NOSCRIPT`, which nothing was executed for, and is sent `SCRIPT LOAD` and the call again.
//!
//! With `wait_replicas`, a step that changes the session, and the taking or renewal of a
//! named lease, is followed by `WAIT` in the same pipeline, so the acknowledgement costs no
//! extra round trip.

use ::redis::{
    ConnectionLike, ErrorKind, FromRedisValue, Pipeline, RedisError, RedisResult, Script,
    ServerErrorKind, Value,
};

/// How long a wake-up token and the waiters flag live. A waiter re-raises the flag on every
/// attempt, at least once per `MAX_WAIT_SLICE`, so it stays up while anyone waits; a token
/// only has to bridge a waiter's failed attempt and its `BLPOP`, and the next successful
/// acquire deletes it anyway.
pub(super) const WAIT_KEYS_TTL_MS: u64 = 5_000;

/// Lua: whether lock value `v` is the holder's whose token is ARGV[1]. A session lock's value
/// is `<token>|<since ms>|<holder>` (who took it, for the messages of requests that wait); a
/// named lease's is the bare token.
macro_rules! ours_lua {
    () => {
        "local function ours(v) return v == ARGV[1] or (v and string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. '|') end
"
    };
}

/// Lua that releases the lock in KEYS[2] if ARGV[1] holds it and, if the flag in KEYS[4] says
/// someone waits, wakes one waiter on KEYS[3]. Returns 1 if released, 0 if not ours.
macro_rules! release_lua {
    () => {
        "if not ours(redis.call('GET', KEYS[2])) then return 0 end
redis.call('DEL', KEYS[2])
if redis.call('EXISTS', KEYS[4]) == 1 then
  if redis.call('LLEN', KEYS[3]) == 0 then redis.call('RPUSH', KEYS[3], '1') end
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
return 1
"
    };
}

/// KEYS: data, lock, wake, waiters. ARGV: token, ttl ms, waiters flag ttl ms, holder.
/// Takes the lock as `<token>|<server time ms>|<holder>`. Returns {1, data-or-nil} when the
/// lock is ours (also when a retry finds it already ours), else raises the waiters flag and
/// returns {0, PTTL of the holder's lock, the holder's lock value, server time ms}.
const ACQUIRE_AND_READ: &str = concat!(
    ours_lua!(),
    "local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local taken = redis.call('SET', KEYS[2], ARGV[1] .. '|' .. now .. '|' .. ARGV[4], 'NX', 'PX', ARGV[2])
if not taken then
  local v = redis.call('GET', KEYS[2])
  if not ours(v) then
    redis.call('SET', KEYS[4], '1', 'PX', ARGV[3])
    return {0, redis.call('PTTL', KEYS[2]), v or '', now}
  end
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
redis.call('DEL', KEYS[3])
return {1, redis.call('GET', KEYS[1])}
"
);

/// KEYS: data, lock, wake, waiters. ARGV: token, wake ttl ms, data, lifetime s.
/// Writes only while holding the lock, so a request whose lock expired cannot overwrite a
/// newer session.
const WRITE_AND_RELEASE: &str = concat!(
    ours_lua!(),
    "if not ours(redis.call('GET', KEYS[2])) then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
",
    release_lua!()
);

/// KEYS: data, lock, wake, waiters. ARGV: token, wake ttl ms, lifetime s.
/// Refreshing the lifetime is harmless even if the lock was lost, so it always happens.
const TOUCH_AND_RELEASE: &str = concat!(
    ours_lua!(),
    "redis.call('EXPIRE', KEYS[1], ARGV[3])\n",
    release_lua!()
);

/// KEYS: data, lock, wake, waiters. ARGV: token, wake ttl ms.
/// Deletes only while holding the lock, exactly as a write: a request whose lock expired
/// must not delete the session another request now holds (its write would bring it back,
/// or a logout would be undone by the holder's write). Returns 0 when the lock was lost.
const DESTROY_AND_RELEASE: &str = concat!(
    ours_lua!(),
    "if not ours(redis.call('GET', KEYS[2])) then return 0 end
redis.call('DEL', KEYS[1])
",
    release_lua!()
);

/// KEYS: data, lock, wake, waiters. ARGV: token, wake ttl ms.
const RELEASE: &str = concat!(ours_lua!(), release_lua!());

/// The version of what is stored, as merge mode's scripts compute it (`cur`: the data or
/// false, `g`: the tombstone's stamp or false): the data's SHA-1, followed by `@<stamp>` if a
/// logout's tombstone is there too (a session created again after a logout); `gone:<stamp>`
/// for no data but a tombstone; '' for neither.
macro_rules! version_lua {
    () => {
        "local function version(cur, g)
  if cur then
    if g then return redis.sha1hex(cur) .. '@' .. g end
    return redis.sha1hex(cur)
  end
  if g then return 'gone:' .. g end
  return ''
end
"
    };
}

/// KEYS: data, gone; ARGV: the lifetime to give a stored session, in seconds (optional: the
/// refresh lazy_write would send after a request that changes nothing, made here instead).
/// Merge mode's read, without a lock: {data, version} when there is a session; {0, version}
/// when there is none (the version says whether a logout's tombstone is there, so that a new
/// session on the same id, a login after a logout with `session.use_strict_mode` off, can be
/// written by a request that read after it, and by none that read before).
const READ_VERSIONED: &str = concat!(
    version_lua!(),
    "local v = redis.call('GET', KEYS[1])
local g = redis.call('GET', KEYS[2])
if v then
  if ARGV[1] then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
  return {v, version(v, g)}
end
return {0, version(false, g)}
"
);

/// KEYS: data, gone, lock. ARGV: version read, data, lifetime s. Writes only if the session
/// is still as it was read, returning {1}; else {0, data, version} (what is stored now, in
/// the same round trip); {2} when a logout happened since the read (a tombstone other than
/// the one read, even if a new session was created after it) or the session read is gone
/// (destroyed or expired), never reviving it; and {3} while a request holds the lock (the
/// last resort of a merge that kept conflicting, or a request with locking on).
const WRITE_IF_UNCHANGED: &str = concat!(
    version_lua!(),
    "if redis.call('EXISTS', KEYS[3]) == 1 then return {3} end
local base = ARGV[1]
local g = redis.call('GET', KEYS[2])
local seen = false
if string.sub(base, 1, 5) == 'gone:' then
  seen = string.sub(base, 6)
else
  local at = string.find(base, '@', 1, true)
  if at then seen = string.sub(base, at + 1) end
end
if g and g ~= seen then return {2} end
local cur = redis.call('GET', KEYS[1])
if not cur then
  if base ~= '' and string.sub(base, 1, 5) ~= 'gone:' then return {2} end
else
  local v = version(cur, g)
  if v ~= base then return {0, cur, v} end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return {1}
"
);

/// KEYS: data, gone, lock. ARGV: tombstone lifetime s. Merge mode's destroy: the session is
/// deleted and a tombstone left, stamped with the server's time, so that no request that
/// read it before writes it back. Returns 0 without deleting while a request holds the lock
/// (the fallback of a merge, which writes unconditionally): the destroy comes after it.
const DESTROY_FOR_GOOD: &str = "if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
local t = redis.call('TIME')
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], t[1] .. '.' .. t[2], 'EX', ARGV[1])
return 1
";

/// KEYS: lease, fence counter, slot mark. ARGV: token, ttl ms, slot keep ms ('' for no slot).
/// Returns {0, fence} when taken, {1, 0} when held by someone, {2, 0} when the slot is done.
pub(super) const TAKE_LEASE: &str = "
if ARGV[3] ~= '' and redis.call('EXISTS', KEYS[3]) == 1 then return {2, 0} end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, 0} end
local fence = redis.call('INCR', KEYS[2])
if ARGV[3] ~= '' then redis.call('SET', KEYS[3], fence, 'PX', ARGV[3]) end
return {0, fence}
";

/// KEYS: lease, slot mark. ARGV: token, fence. Undoes a `TAKE_LEASE` that the replicas did
/// not acknowledge: deletes the lease if it is still `token`'s and the slot's mark if this
/// taking set it (its value is the fence). The fence counter stays where it is: it only has
/// to grow.
pub(super) const UNDO_LEASE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
return 1
";

/// KEYS: lease. ARGV: token. Deletes it if it is the holder's; returns 1 if it was.
pub(super) const RELEASE_LEASE: &str = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
";

/// KEYS: lock. ARGV: token, ttl ms. Extends the lock (or lease) only while it is still the
/// holder's. Returns 1 if extended, 0 if not ours (any more).
pub(super) const RENEW: &str = concat!(
    ours_lua!(),
    "if not ours(redis.call('GET', KEYS[1])) then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"
);

pub(super) struct Scripts {
    pub acquire_and_read: Script,
    pub write_and_release: Script,
    pub touch_and_release: Script,
    pub destroy_and_release: Script,
    pub release: Script,
    pub read_versioned: Script,
    pub write_if_unchanged: Script,
    pub destroy_for_good: Script,
}

impl Scripts {
    pub fn new() -> Scripts {
        Scripts {
            acquire_and_read: Script::new(ACQUIRE_AND_READ),
            write_and_release: Script::new(WRITE_AND_RELEASE),
            touch_and_release: Script::new(TOUCH_AND_RELEASE),
            destroy_and_release: Script::new(DESTROY_AND_RELEASE),
            release: Script::new(RELEASE),
            read_versioned: Script::new(READ_VERSIONED),
            write_if_unchanged: Script::new(WRITE_IF_UNCHANGED),
            destroy_for_good: Script::new(DESTROY_FOR_GOOD),
        }
    }
}

/// `WAIT numreplicas timeout` after a change: how many replicas must have it.
#[derive(Clone, Copy, Debug)]
pub(super) struct ReplicaWait {
    pub replicas: u32,
    pub timeout_ms: u64,
}

/// The reply of a step, and how many replicas acknowledged it when it was followed by
/// `WAIT`.
pub(super) struct Acked<T> {
    pub reply: T,
    pub replicas: Option<i64>,
}

/// Runs `script` with `keys` and `args`, followed by `WAIT` if `wait`, in one round trip.
pub(super) fn eval<T: FromRedisValue>(
    con: &mut dyn ConnectionLike,
    script: &Script,
    keys: &[&[u8]],
    args: &[&[u8]],
    wait: Option<ReplicaWait>,
) -> RedisResult<Acked<T>> {
    // Sized up front: growing the command's buffer argument by argument cost more than
    // everything else Fleet does to build a request's two scripts.
    let hash = script.get_hash();
    let bytes =
        "EVALSHA".len() + hash.len() + 4 + keys.iter().chain(args).map(|a| a.len()).sum::<usize>();
    let mut call = ::redis::Cmd::with_capacity(3 + keys.len() + args.len(), bytes);
    call.arg("EVALSHA").arg(hash).arg(keys.len());
    for k in keys {
        call.arg(*k);
    }
    for a in args {
        call.arg(*a);
    }
    match send(con, &call, wait) {
        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            script.load(con)?;
            send(con, &call, wait)
        }
        other => other,
    }
}

/// Runs one command, followed by `WAIT` if `wait`, in one round trip.
pub(super) fn send<T: FromRedisValue>(
    con: &mut dyn ConnectionLike,
    command: &::redis::Cmd,
    wait: Option<ReplicaWait>,
) -> RedisResult<Acked<T>> {
    let Some(wait) = wait else {
        return Ok(Acked {
            reply: command.query(con)?,
            replicas: None,
        });
    };
    let mut pipe = Pipeline::with_capacity(2);
    pipe.add_command(command.clone());
    pipe.cmd("WAIT").arg(wait.replicas).arg(wait.timeout_ms);
    let replies: Vec<Value> = pipe.query(con)?;
    let mut replies = replies.into_iter();
    let (Some(reply), Some(acked)) = (replies.next(), replies.next()) else {
        return Err(RedisError::from((
            ErrorKind::UnexpectedReturnType,
            "the pipeline with WAIT did not answer twice",
        )));
    };
    Ok(Acked {
        reply: T::from_redis_value(reply)?,
        replicas: i64::from_redis_value(acked).ok(),
    })
}
