//! The Redis backend.
//!
//! Keys, compatible with phpredis so a site can switch handlers without logging anyone out:
//!
//! | key                      | holds                                   |
//! |--------------------------|-----------------------------------------|
//! | `<prefix><id>`           | the session data, with `EX` lifetime     |
//! | `<prefix><id>_LOCK`      | the lock: a random token, with `PX` TTL  |
//! | `<prefix><id>_LOCK_WAKE` | wake-up list a releaser pushes to        |
//! | `<prefix><id>_LOCK_WAITERS` | flag: someone is waiting (short TTL)  |
//!
//! Round trips per request with locking on: one script takes the lock and reads the data;
//! one script writes (or touches) and releases. A waiter that finds the lock held raises the
//! waiters flag and blocks in `BLPOP` on the wake-up list; a release pushes one element when
//! the flag is up, and Redis hands it to the longest-blocked client, so waiters run in
//! arrival order and start as soon as the holder releases. Uncontended sessions never get
//! the two extra keys.

use std::time::{Duration, Instant};

use ::redis::{
    Client, Connection, ConnectionAddr, ErrorKind, IntoConnectionInfo, RedisConnectionInfo,
    RedisError, Script, ServerErrorKind, Value,
};

use crate::config::{RedisConfig, RedisEndpoint, Timeouts};
use crate::error::StoreError;
use crate::id::SessionId;
use crate::lease::{wait_slice, LeaseTerms, LeaseToken};
use crate::store::{HeldLock, LockPolicy, ReadOutcome, SessionStore};

/// How long a wake-up token and the waiters flag live. A waiter re-raises the flag on every
/// attempt, at least once per `MAX_WAIT_SLICE`, so it stays up while anyone waits; a token
/// only has to bridge a waiter's failed attempt and its `BLPOP`, and the next successful
/// acquire deletes it anyway.
const WAIT_KEYS_TTL_MS: u64 = 5_000;

/// Lua that releases the lock in KEYS[2] if ARGV[1] holds it and, if the flag in KEYS[4] says
/// someone waits, wakes one waiter on KEYS[3]. Returns 1 if released, 0 if not ours.
macro_rules! release_lua {
    () => {
        "if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
if redis.call('EXISTS', KEYS[4]) == 1 then
  if redis.call('LLEN', KEYS[3]) == 0 then redis.call('RPUSH', KEYS[3], '1') end
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
return 1
"
    };
}

/// KEYS: data, lock, wake, waiters. ARGV: token, ttl ms, waiters flag ttl ms.
/// Returns {1, data-or-nil} when the lock is ours (also when a retry finds it already ours),
/// else raises the waiters flag and returns {0, PTTL of the holder's lock}.
const ACQUIRE_AND_READ: &str = "
local taken = redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2])
if not taken then
  if redis.call('GET', KEYS[2]) ~= ARGV[1] then
    redis.call('SET', KEYS[4], '1', 'PX', ARGV[3])
    return {0, redis.call('PTTL', KEYS[2])}
  end
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
redis.call('DEL', KEYS[3])
return {1, redis.call('GET', KEYS[1])}
";

/// KEYS: data, lock, wake, waiters. ARGV: token, wake ttl ms, data, lifetime s.
/// Writes only while holding the lock, so a request whose lock expired cannot overwrite a
/// newer session.
const WRITE_AND_RELEASE: &str = concat!(
    "if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
",
    release_lua!()
);

/// KEYS: data, lock, wake, waiters. ARGV: token, wake ttl ms, lifetime s.
/// Refreshing the lifetime is harmless even if the lock was lost, so it always happens.
const TOUCH_AND_RELEASE: &str = concat!("redis.call('EXPIRE', KEYS[1], ARGV[3])\n", release_lua!());

/// KEYS: data, lock, wake, waiters. ARGV: token, wake ttl ms.
const DESTROY_AND_RELEASE: &str = concat!("redis.call('DEL', KEYS[1])\n", release_lua!());

/// KEYS: data, lock, wake, waiters. ARGV: token, wake ttl ms.
const RELEASE: &str = release_lua!();

struct Scripts {
    acquire_and_read: Script,
    write_and_release: Script,
    touch_and_release: Script,
    destroy_and_release: Script,
    release: Script,
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            acquire_and_read: Script::new(ACQUIRE_AND_READ),
            write_and_release: Script::new(WRITE_AND_RELEASE),
            touch_and_release: Script::new(TOUCH_AND_RELEASE),
            destroy_and_release: Script::new(DESTROY_AND_RELEASE),
            release: Script::new(RELEASE),
        }
    }
}

/// The keys of one session.
struct SessionKeys {
    data: Vec<u8>,
    lock: Vec<u8>,
    wake: Vec<u8>,
    waiters: Vec<u8>,
}

impl SessionKeys {
    fn new(prefix: &str, id: &SessionId) -> SessionKeys {
        let mut data = Vec::with_capacity(prefix.len() + id.as_str().len());
        data.extend_from_slice(prefix.as_bytes());
        data.extend_from_slice(id.as_str().as_bytes());
        let mut lock = data.clone();
        lock.extend_from_slice(b"_LOCK");
        let mut wake = lock.clone();
        wake.extend_from_slice(b"_WAKE");
        let mut waiters = lock.clone();
        waiters.extend_from_slice(b"_WAITERS");
        SessionKeys {
            data,
            lock,
            wake,
            waiters,
        }
    }
}

/// A session store on one Redis server, holding one connection that it reuses across
/// requests and re-opens after a failure.
pub struct RedisStore {
    client: Client,
    endpoint: String,
    prefix: String,
    timeouts: Timeouts,
    connection: Option<Connection>,
    scripts: Scripts,
}

enum Acquire {
    Held(Option<Vec<u8>>),
    Busy { holder_ttl_left: Option<Duration> },
}

impl RedisStore {
    /// Prepares a store; connects lazily on first use.
    pub fn new(config: &RedisConfig, default_timeouts: Timeouts) -> Result<RedisStore, StoreError> {
        let endpoint = config.endpoint.to_string();
        let client = build_client(config).map_err(|e| StoreError::Connect {
            endpoint: endpoint.clone(),
            cause: e.to_string(),
        })?;
        Ok(RedisStore {
            client,
            endpoint,
            prefix: config.prefix.clone(),
            timeouts: config.timeouts(default_timeouts),
            connection: None,
            scripts: Scripts::new(),
        })
    }

    fn open_connection(&self) -> Result<Connection, StoreError> {
        let connect = self.timeouts.connect;
        let connection = self
            .client
            .get_connection_with_timeout(connect)
            .map_err(|e| self.classify(e, connect, true))?;
        connection
            .set_read_timeout(Some(self.timeouts.command))
            .and_then(|_| connection.set_write_timeout(Some(self.timeouts.command)))
            .map_err(|e| self.classify(e, connect, true))?;
        Ok(connection)
    }

    /// Runs `op` on the connection. On a failure that leaves the connection in an unknown
    /// state, drops it so the next call reconnects. If `retry` and the connection was an old
    /// one that turned out dead (server restarted since the last request), retries once on a
    /// fresh one; only operations that are safe to repeat pass `retry`.
    fn run<T>(
        &mut self,
        retry: bool,
        mut op: impl FnMut(&mut Connection, &Scripts) -> Result<T, RedisError>,
    ) -> Result<T, StoreError> {
        let reused = self.connection.is_some();
        match self.run_once(&mut op) {
            Err(e) if retry && reused && e.is_connection_failure() => self.run_once(&mut op),
            other => other,
        }
    }

    fn run_once<T>(
        &mut self,
        op: &mut impl FnMut(&mut Connection, &Scripts) -> Result<T, RedisError>,
    ) -> Result<T, StoreError> {
        let mut connection = match self.connection.take() {
            Some(connection) => connection,
            None => self.open_connection()?,
        };
        match op(&mut connection, &self.scripts) {
            Ok(v) => {
                self.connection = Some(connection);
                Ok(v)
            }
            Err(e) => {
                // A server's error reply leaves the connection usable; anything else (I/O
                // error, timeout mid-reply) leaves it in an unknown state.
                if matches!(e.kind(), ErrorKind::Server(_)) && !e.is_unrecoverable_error() {
                    self.connection = Some(connection);
                }
                Err(self.classify(e, self.timeouts.command, false))
            }
        }
    }

    fn classify(&self, e: RedisError, waited: Duration, connecting: bool) -> StoreError {
        let endpoint = self.endpoint.clone();
        let cause = e.to_string();
        let auth_failure = matches!(e.kind(), ErrorKind::AuthenticationFailed)
            || matches!(e.kind(), ErrorKind::Server(ServerErrorKind::NoPerm))
            || cause.contains("NOAUTH")
            || cause.contains("WRONGPASS");
        if auth_failure {
            StoreError::Auth { endpoint, cause }
        } else if connecting && (cause.contains("SSL") || cause.contains("certificate")) {
            StoreError::Tls { endpoint, cause }
        } else if e.is_timeout() {
            StoreError::TimedOut { endpoint, waited }
        } else if connecting {
            StoreError::Connect { endpoint, cause }
        } else if matches!(e.kind(), ErrorKind::Server(_)) {
            StoreError::Server { endpoint, cause }
        } else {
            StoreError::ConnectionLost { endpoint, cause }
        }
    }

    fn try_acquire(
        &mut self,
        keys: &SessionKeys,
        token: &LeaseToken,
        ttl: Duration,
    ) -> Result<Acquire, StoreError> {
        let ttl_ms = duration_ms(ttl);
        let reply: Value = self.run(true, |c, s| {
            s.acquire_and_read
                .key(&keys.data)
                .key(&keys.lock)
                .key(&keys.wake)
                .key(&keys.waiters)
                .arg(token.as_str())
                .arg(ttl_ms)
                .arg(WAIT_KEYS_TTL_MS)
                .invoke(c)
        })?;
        parse_acquire(reply).ok_or_else(|| StoreError::Server {
            endpoint: self.endpoint.clone(),
            cause: "unexpected reply to the lock script".into(),
        })
    }

    /// Blocks until a holder releases (a wake-up is pushed) or `slice` passes.
    fn wait_for_release(&mut self, keys: &SessionKeys, slice: Duration) -> Result<(), StoreError> {
        let command_timeout = self.timeouts.command;
        self.run(false, |c, _| {
            c.set_read_timeout(Some(slice + command_timeout))?;
            let reply: Result<Value, RedisError> = ::redis::cmd("BLPOP")
                .arg(&keys.wake)
                .arg(format!("{:.3}", slice.as_secs_f64()))
                .query(c);
            c.set_read_timeout(Some(command_timeout))?;
            reply.map(|_| ())
        })
    }

    fn lock_and_read_locked(
        &mut self,
        keys: &SessionKeys,
        terms: LeaseTerms,
    ) -> Result<ReadOutcome, StoreError> {
        let token = LeaseToken::generate()?;
        let deadline = Instant::now() + terms.wait_timeout;
        loop {
            match self.try_acquire(keys, &token, terms.ttl)? {
                Acquire::Held(data) => {
                    return Ok(ReadOutcome {
                        data,
                        lock: Some(HeldLock::Lease {
                            token,
                            ttl: terms.ttl,
                        }),
                    })
                }
                Acquire::Busy { holder_ttl_left } => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(StoreError::LockWaitTimeout {
                            waited: terms.wait_timeout,
                        });
                    }
                    self.wait_for_release(keys, wait_slice(holder_ttl_left, deadline - now))?;
                }
            }
        }
    }

    fn release_script(
        &mut self,
        script: fn(&Scripts) -> &Script,
        keys: &SessionKeys,
        token: &LeaseToken,
        extra: &[&[u8]],
    ) -> Result<bool, StoreError> {
        let released: i64 = self.run(false, |c, s| {
            let mut invocation = script(s).prepare_invoke();
            invocation
                .key(&keys.data)
                .key(&keys.lock)
                .key(&keys.wake)
                .key(&keys.waiters)
                .arg(token.as_str())
                .arg(WAIT_KEYS_TTL_MS);
            for arg in extra {
                invocation.arg(*arg);
            }
            invocation.invoke(c)
        })?;
        Ok(released == 1)
    }
}

impl SessionStore for RedisStore {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn connect(&mut self) -> Result<(), StoreError> {
        if self.connection.is_none() {
            self.connection = Some(self.open_connection()?);
        }
        Ok(())
    }

    fn is_connected(&self) -> bool {
        self.connection.is_some()
    }

    fn lock_and_read(
        &mut self,
        id: &SessionId,
        policy: LockPolicy,
    ) -> Result<ReadOutcome, StoreError> {
        let keys = SessionKeys::new(&self.prefix, id);
        match policy.lease {
            Some(terms) => self.lock_and_read_locked(&keys, terms),
            None => {
                let data: Option<Vec<u8>> =
                    self.run(true, |c, _| ::redis::cmd("GET").arg(&keys.data).query(c))?;
                Ok(ReadOutcome { data, lock: None })
            }
        }
    }

    fn write_and_unlock(
        &mut self,
        id: &SessionId,
        data: &[u8],
        lifetime: Duration,
        lock: Option<&HeldLock>,
    ) -> Result<(), StoreError> {
        let keys = SessionKeys::new(&self.prefix, id);
        let lifetime = lifetime_secs(lifetime).to_string();
        match lock {
            Some(lock) => {
                let (token, ttl) = lease(lock, &self.endpoint)?;
                let written = self.release_script(
                    |s| &s.write_and_release,
                    &keys,
                    token,
                    &[data, lifetime.as_bytes()],
                )?;
                if written {
                    Ok(())
                } else {
                    Err(StoreError::LockLost { ttl })
                }
            }
            None => self.run(false, |c, _| {
                ::redis::cmd("SET")
                    .arg(&keys.data)
                    .arg(data)
                    .arg("EX")
                    .arg(&lifetime)
                    .query(c)
            }),
        }
    }

    fn touch_and_unlock(
        &mut self,
        id: &SessionId,
        lifetime: Duration,
        lock: Option<&HeldLock>,
    ) -> Result<(), StoreError> {
        let keys = SessionKeys::new(&self.prefix, id);
        let lifetime = lifetime_secs(lifetime).to_string();
        match lock {
            Some(lock) => self
                .release_script(
                    |s| &s.touch_and_release,
                    &keys,
                    lease(lock, &self.endpoint)?.0,
                    &[lifetime.as_bytes()],
                )
                .map(|_| ()),
            None => self.run(false, |c, _| {
                ::redis::cmd("EXPIRE")
                    .arg(&keys.data)
                    .arg(&lifetime)
                    .query::<i64>(c)
                    .map(|_| ())
            }),
        }
    }

    fn unlock(&mut self, id: &SessionId, lock: &HeldLock) -> Result<(), StoreError> {
        let keys = SessionKeys::new(&self.prefix, id);
        self.release_script(|s| &s.release, &keys, lease(lock, &self.endpoint)?.0, &[])
            .map(|_| ())
    }

    fn destroy(&mut self, id: &SessionId, lock: Option<&HeldLock>) -> Result<(), StoreError> {
        let keys = SessionKeys::new(&self.prefix, id);
        match lock {
            Some(lock) => self
                .release_script(
                    |s| &s.destroy_and_release,
                    &keys,
                    lease(lock, &self.endpoint)?.0,
                    &[],
                )
                .map(|_| ()),
            None => self.run(false, |c, _| {
                ::redis::cmd("DEL")
                    .arg(&keys.data)
                    .query::<i64>(c)
                    .map(|_| ())
            }),
        }
    }

    fn exists(&mut self, id: &SessionId) -> Result<bool, StoreError> {
        let keys = SessionKeys::new(&self.prefix, id);
        self.run(true, |c, _| {
            ::redis::cmd("EXISTS")
                .arg(&keys.data)
                .query::<i64>(c)
                .map(|n| n == 1)
        })
    }

    /// Redis expires sessions itself (every write sets `EX`), so there is nothing to sweep.
    fn gc(&mut self, _lifetime: Duration) -> Result<u64, StoreError> {
        Ok(0)
    }
}

/// The token and TTL of a Redis lease. Any other kind of lock was not taken here, so this
/// request cannot prove it holds the session.
fn lease<'a>(lock: &'a HeldLock, endpoint: &str) -> Result<(&'a LeaseToken, Duration), StoreError> {
    match lock {
        HeldLock::Lease { token, ttl } => Ok((token, *ttl)),
        HeldLock::Connection { .. } => Err(StoreError::ForeignLock {
            endpoint: endpoint.to_owned(),
        }),
    }
}

fn build_client(config: &RedisConfig) -> Result<Client, RedisError> {
    let addr = match &config.endpoint {
        RedisEndpoint::Tcp { host, port } => ConnectionAddr::Tcp(host.clone(), *port),
        RedisEndpoint::Tls {
            host, port, verify, ..
        } => ConnectionAddr::TcpTls {
            host: host.clone(),
            port: *port,
            insecure: !verify,
            tls_params: None,
        },
        RedisEndpoint::Unix { path } => ConnectionAddr::Unix(path.clone()),
    };
    // No CLIENT SETINFO: it would cost a round trip on every new connection.
    let mut settings = RedisConnectionInfo::default()
        .set_db(config.db)
        .set_skip_set_lib_name();
    if let Some(user) = &config.username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &config.password {
        settings = settings.set_password(password.expose());
    }
    let info = addr.into_connection_info()?.set_redis_settings(settings);
    match &config.endpoint {
        RedisEndpoint::Tls {
            ca_file: Some(ca_file),
            ..
        } => {
            let root_cert = std::fs::read(ca_file).map_err(|e| {
                RedisError::from(std::io::Error::new(
                    e.kind(),
                    format!("cannot read tls_ca_file {}: {e}", ca_file.display()),
                ))
            })?;
            Client::build_with_tls(
                info,
                ::redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                },
            )
        }
        _ => Client::open(info),
    }
}

fn parse_acquire(reply: Value) -> Option<Acquire> {
    let Value::Array(items) = reply else {
        return None;
    };
    let mut items = items.into_iter();
    let (Some(Value::Int(flag)), Some(second)) = (items.next(), items.next()) else {
        return None;
    };
    match (flag, second) {
        (1, Value::Nil) => Some(Acquire::Held(None)),
        (1, Value::BulkString(data)) => Some(Acquire::Held(Some(data))),
        (0, Value::Int(pttl)) => Some(Acquire::Busy {
            holder_ttl_left: u64::try_from(pttl).ok().map(Duration::from_millis),
        }),
        _ => None,
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Redis rejects `EX 0`; a session always lives at least a second.
fn lifetime_secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}
