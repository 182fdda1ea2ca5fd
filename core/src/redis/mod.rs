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

use ::redis::{FromRedisValue, RedisError, Script, Value};

use crate::config::{ConnectionTerms, RedisConfig, RedisEndpoint, Timeouts};
use crate::error::{cause, StoreError};
use crate::id::SessionId;
use crate::keeper::{Keeper, Retry};
use crate::lease::{wait_slice, Holder, LeaseTerms, LeaseToken, RenewFn, RenewalReport, Renewer};
use crate::store::{HeldLock, LockPolicy, ReadOutcome, SessionStore};

mod cluster;
mod connect;
mod inventory;
mod lease;
mod merge;
mod replies;
mod scripts;

use connect::{Link, RedisConnector};
use replies::{lock_lost, parse_acquire, Acquire};
use scripts::{eval, send, Acked, ReplicaWait, Scripts, WAIT_KEYS_TTL_MS};

/// The keys of one session.
struct SessionKeys {
    data: Vec<u8>,
    lock: Vec<u8>,
    wake: Vec<u8>,
    waiters: Vec<u8>,
    /// Merge mode's tombstone of a destroyed session.
    gone: Vec<u8>,
}

impl SessionKeys {
    /// The keys every script takes, in its KEYS order.
    fn all(&self) -> [&[u8]; 4] {
        [&self.data, &self.lock, &self.wake, &self.waiters]
    }

    /// With `tagged` (Cluster), the id is a hash tag: `<prefix>{<id>}`, so every key of the
    /// session hashes to the id's slot.
    fn new(prefix: &str, id: &SessionId, tagged: bool) -> SessionKeys {
        // Each key is allocated once at its final size: they are built on every step.
        let key = |suffix: &[u8]| {
            let mut key = Vec::with_capacity(prefix.len() + id.as_str().len() + 2 + suffix.len());
            key.extend_from_slice(prefix.as_bytes());
            if tagged {
                key.push(b'{');
            }
            key.extend_from_slice(id.as_str().as_bytes());
            if tagged {
                key.push(b'}');
            }
            key.extend_from_slice(suffix);
            key
        };
        let (data, lock) = (key(b""), key(b"_LOCK"));
        let (wake, waiters) = (key(b"_LOCK_WAKE"), key(b"_LOCK_WAITERS"));
        let gone = key(b"_GONE");
        SessionKeys {
            data,
            lock,
            wake,
            waiters,
            gone,
        }
    }
}

/// A session store on Redis, holding one connection that it reuses across requests and
/// re-opens after a failure (see `keeper`), to a fixed server or to the master the
/// sentinels name.
pub struct RedisStore {
    keeper: Keeper<RedisConnector>,
    prefix: String,
    /// Whether the id in each key is a hash tag (Cluster), so a session's keys share a slot.
    tagged: bool,
    scripts: Scripts,
    /// `wait_replicas`: `WAIT` after each change.
    wait: Option<ReplicaWait>,
    /// What went wrong without failing the step (fewer replicas acknowledged than asked).
    notice: Option<String>,
    /// Renews held locks on a helper thread with its own connection (started on first use).
    renewer: Option<Renewer>,
    /// Who takes this worker's locks (`set_holder`), recorded in the lock's value.
    holder: String,
    /// What the renewer's connection is opened with.
    config: RedisConfig,
    timeouts: Timeouts,
}

impl RedisStore {
    /// Prepares a store; connects lazily on first use.
    pub fn new(config: &RedisConfig, terms: ConnectionTerms) -> Result<RedisStore, StoreError> {
        let timeouts = terms.timeouts;
        let connector = RedisConnector::new(config, timeouts)?;
        let wait = (config.wait_replicas > 0).then(|| ReplicaWait {
            replicas: config.wait_replicas,
            timeout_ms: duration_ms(config.wait_timeout),
        });
        Ok(RedisStore {
            keeper: Keeper::new(connector, terms.max_age),
            prefix: config.prefix.clone(),
            tagged: matches!(config.endpoint, RedisEndpoint::Cluster { .. }),
            scripts: Scripts::new(),
            wait,
            notice: None,
            renewer: None,
            holder: String::new(),
            config: config.clone(),
            timeouts,
        })
    }

    /// The renewer, started now if this process has none running.
    fn renewer(&mut self) -> Result<&mut Renewer, StoreError> {
        if !self.renewer.as_ref().is_some_and(Renewer::in_this_process) {
            self.renewer = Some(Renewer::start(renew_fn(&self.config, self.timeouts)?)?);
        }
        self.renewer.as_mut().ok_or_else(|| {
            StoreError::system("the lock renewal thread did not start", cause("no renewer"))
        })
    }

    /// Stops renewing `lock`, before it is released, and says how its renewal went.
    fn end_renewal(&mut self, lock: &HeldLock) -> Option<RenewalReport> {
        let HeldLock::Lease {
            renewal: Some(id), ..
        } = lock
        else {
            return None;
        };
        self.renewer.as_mut()?.release(*id)
    }

    fn endpoint_name(&self) -> &str {
        &self.keeper.connector.endpoint
    }

    fn keys(&self, id: &SessionId) -> SessionKeys {
        SessionKeys::new(&self.prefix, id, self.tagged)
    }

    /// Runs `op` on the node of session `keys`, and again on a fresh connection where
    /// `retry` allows; see [`Keeper::run`].
    fn run<T>(
        &mut self,
        keys: &SessionKeys,
        retry: Retry,
        mut op: impl FnMut(&mut Link, &Scripts) -> Result<T, RedisError>,
    ) -> Result<T, StoreError> {
        let scripts = &self.scripts;
        self.keeper.run(retry, |link| {
            link.route(&keys.data);
            op(link, scripts)
        })
    }

    /// Notes a change that fewer replicas acknowledged than `wait_replicas` asks.
    fn check_acks<T>(&mut self, acked: Acked<T>) -> T {
        if let (Some(wait), Some(replicas)) = (self.wait, acked.replicas) {
            if replicas < i64::from(wait.replicas) {
                self.notice = Some(format!(
                    "{}: only {replicas} of the {} replicas asked for (wait_replicas) acknowledged the session write within {} ms (wait_timeout); it is stored on the master only, and a failover now could lose it",
                    self.keeper.connector.endpoint, wait.replicas, wait.timeout_ms
                ));
            }
        }
        acked.reply
    }

    fn try_acquire(
        &mut self,
        keys: &SessionKeys,
        token: &LeaseToken,
        ttl: Duration,
    ) -> Result<Acquire, StoreError> {
        let ttl_ms = duration_ms(ttl).to_string();
        let wake_ttl = WAIT_KEYS_TTL_MS.to_string();
        let holder = std::mem::take(&mut self.holder);
        let reply: Result<Acked<Value>, StoreError> = self.run(keys, Retry::Idempotent, |c, s| {
            eval(
                c,
                &s.acquire_and_read,
                &keys.all(),
                &[
                    token.as_str().as_bytes(),
                    ttl_ms.as_bytes(),
                    wake_ttl.as_bytes(),
                    holder.as_bytes(),
                ],
                None,
            )
        });
        self.holder = holder;
        let reply = reply?;
        parse_acquire(reply.reply).ok_or_else(|| {
            StoreError::server(
                self.endpoint_name(),
                cause("unexpected reply to the lock script"),
            )
        })
    }

    /// Blocks until a holder releases (a wake-up is pushed) or `slice` passes.
    fn wait_for_release(&mut self, keys: &SessionKeys, slice: Duration) -> Result<(), StoreError> {
        let base = self.keeper.connector.base_read_timeout;
        let command_timeout = self.keeper.connector.command_timeout();
        self.run(keys, Retry::Never, |c, _| {
            c.set_read_timeout(slice + command_timeout)?;
            let reply: Result<Value, RedisError> = ::redis::cmd("BLPOP")
                .arg(&keys.wake)
                .arg(format!("{:.3}", slice.as_secs_f64()))
                .query(c);
            c.set_read_timeout(base)?;
            match reply {
                // The node stopped being the master while we waited (a failover, a slot
                // migration): wake up and try the lock again, which finds the new owner.
                Err(e) if e.code() == Some("UNBLOCKED") => Ok(()),
                other => other.map(|_| ()),
            }
        })
    }

    fn lock_and_read_locked(
        &mut self,
        keys: &SessionKeys,
        id: &SessionId,
        terms: LeaseTerms,
    ) -> Result<ReadOutcome, StoreError> {
        let token = LeaseToken::generate()?;
        let started = Instant::now();
        // Saturating: the wait timeout is a user's number (core does not bound it).
        let deadline = crate::lease::later(started, terms.wait_timeout);
        // The holder last seen, and when: how long it has held the lock is what it had then
        // plus the time since.
        let mut last_holder: Option<(Holder, Instant)> = None;
        let aged = |seen: Option<(Holder, Instant)>| {
            seen.map(|(h, at)| Holder {
                held_for: h.held_for.map(|d| d + at.elapsed()),
                ..h
            })
        };
        loop {
            let attempt = Instant::now();
            match self.try_acquire(keys, &token, terms.ttl)? {
                Acquire::Held(data) => {
                    let renewal = match terms.renew_for {
                        Some(max) => Some(
                            self.renewer()?
                                .hold(&keys.lock, &token, terms.ttl, max, attempt),
                        ),
                        None => None,
                    };
                    return Ok(ReadOutcome {
                        data,
                        lock: Some(HeldLock::Lease {
                            token,
                            ttl: terms.ttl,
                            taken: attempt,
                            renewal,
                        }),
                        waited: if last_holder.is_some() {
                            started.elapsed()
                        } else {
                            Duration::ZERO
                        },
                        holder: aged(last_holder),
                    });
                }
                Acquire::Busy {
                    holder_ttl_left,
                    holder,
                } => {
                    if let Some(h) = holder {
                        last_holder = Some((h, Instant::now()));
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(StoreError::lock_wait_timeout(
                            &id.abbreviated(),
                            aged(last_holder).as_ref(),
                            terms.wait_timeout,
                        ));
                    }
                    self.wait_for_release(keys, wait_slice(holder_ttl_left, deadline - now))?;
                }
            }
        }
    }

    /// Runs one of the release scripts (which check the token, so they may be repeated
    /// after a refusal), with `WAIT` if `changes` and `wait_replicas` is set.
    fn release_script(
        &mut self,
        script: fn(&Scripts) -> &Script,
        keys: &SessionKeys,
        token: &LeaseToken,
        extra: &[&[u8]],
        changes: bool,
    ) -> Result<bool, StoreError> {
        let wake_ttl = WAIT_KEYS_TTL_MS.to_string();
        let mut args: Vec<&[u8]> = vec![token.as_str().as_bytes(), wake_ttl.as_bytes()];
        args.extend_from_slice(extra);
        let wait = self.wait.filter(|_| changes);
        let released: Acked<i64> = self.run(keys, Retry::IfRefused, |c, s| {
            eval(c, script(s), &keys.all(), &args, wait)
        })?;
        Ok(self.check_acks(released) == 1)
    }

    /// Runs an unlocked change (locking off), with `WAIT` if `wait_replicas` is set. A plain
    /// write's outcome may be unknown after a failure, so it is not repeated.
    fn unlocked_change<T: FromRedisValue>(
        &mut self,
        keys: &SessionKeys,
        command: ::redis::Cmd,
    ) -> Result<T, StoreError> {
        let wait = self.wait;
        let acked = self.run(keys, Retry::IfRefused, |c, _| send(c, &command, wait))?;
        Ok(self.check_acks(acked))
    }
}

impl SessionStore for RedisStore {
    fn endpoint(&self) -> &str {
        &self.keeper.connector.endpoint
    }

    fn connect(&mut self) -> Result<(), StoreError> {
        self.keeper.connect()
    }

    fn is_connected(&self) -> bool {
        self.keeper.is_connected()
    }

    fn take_notice(&mut self) -> Option<String> {
        self.notice.take()
    }

    fn take_events(&mut self) -> crate::store::StoreEvents {
        self.keeper.take_events()
    }

    fn set_holder(&mut self, holder: &str) {
        if self.holder != holder {
            self.holder = holder.to_owned();
        }
    }

    fn as_merge(&mut self) -> Option<&mut dyn crate::store::MergeStore> {
        Some(self)
    }

    fn lock_and_read(
        &mut self,
        id: &SessionId,
        policy: LockPolicy,
    ) -> Result<ReadOutcome, StoreError> {
        let keys = self.keys(id);
        match policy.lease {
            Some(terms) => self.lock_and_read_locked(&keys, id, terms),
            None => {
                let data: Option<Vec<u8>> = self.run(&keys, Retry::Idempotent, |c, _| {
                    ::redis::cmd("GET").arg(&keys.data).query(c)
                })?;
                Ok(ReadOutcome {
                    data,
                    lock: None,
                    waited: Duration::ZERO,
                    holder: None,
                })
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
        let keys = self.keys(id);
        let lifetime = lifetime_secs(lifetime).to_string();
        match lock {
            Some(lock) => {
                let token = lease(lock, self.endpoint())?;
                let renewal = self.end_renewal(lock);
                let written = self.release_script(
                    |s| &s.write_and_release,
                    &keys,
                    token,
                    &[data, lifetime.as_bytes()],
                    true,
                )?;
                if written {
                    Ok(())
                } else {
                    Err(lock_lost(lock, renewal))
                }
            }
            None => {
                let mut set = ::redis::cmd("SET");
                set.arg(&keys.data).arg(data).arg("EX").arg(&lifetime);
                self.unlocked_change::<()>(&keys, set)
            }
        }
    }

    fn touch_and_unlock(
        &mut self,
        id: &SessionId,
        lifetime: Duration,
        lock: Option<&HeldLock>,
    ) -> Result<(), StoreError> {
        let keys = self.keys(id);
        let lifetime = lifetime_secs(lifetime).to_string();
        match lock {
            Some(lock) => {
                let token = lease(lock, self.endpoint())?;
                self.end_renewal(lock);
                self.release_script(
                    |s| &s.touch_and_release,
                    &keys,
                    token,
                    &[lifetime.as_bytes()],
                    true,
                )
                .map(|_| ())
            }
            None => {
                let mut expire = ::redis::cmd("EXPIRE");
                expire.arg(&keys.data).arg(&lifetime);
                self.unlocked_change::<i64>(&keys, expire).map(|_| ())
            }
        }
    }

    fn unlock(&mut self, id: &SessionId, lock: &HeldLock) -> Result<(), StoreError> {
        let keys = self.keys(id);
        let token = lease(lock, self.endpoint())?;
        self.end_renewal(lock);
        self.release_script(|s| &s.release, &keys, token, &[], false)
            .map(|_| ())
    }

    fn destroy(&mut self, id: &SessionId, lock: Option<&HeldLock>) -> Result<(), StoreError> {
        let keys = self.keys(id);
        match lock {
            Some(lock) => {
                let token = lease(lock, self.endpoint())?;
                let renewal = self.end_renewal(lock);
                // Refused like a write when the lock is no longer ours, so a stale request's
                // destroy cannot delete the session another request holds now.
                let destroyed =
                    self.release_script(|s| &s.destroy_and_release, &keys, token, &[], true)?;
                if destroyed {
                    Ok(())
                } else {
                    Err(lock_lost(lock, renewal))
                }
            }
            None => {
                let mut del = ::redis::cmd("DEL");
                del.arg(&keys.data);
                self.unlocked_change::<i64>(&keys, del).map(|_| ())
            }
        }
    }

    fn exists(&mut self, id: &SessionId) -> Result<bool, StoreError> {
        let keys = self.keys(id);
        self.run(&keys, Retry::Idempotent, |c, _| {
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

/// The token of a Redis lease. Any other kind of lock was not taken here, so this request
/// cannot prove it holds the session.
fn lease<'a>(lock: &'a HeldLock, endpoint: &str) -> Result<&'a LeaseToken, StoreError> {
    match lock {
        HeldLock::Lease { token, .. } => Ok(token),
        HeldLock::Connection { .. } => Err(StoreError::foreign_lock(endpoint)),
    }
}

/// The renewal of this store's locks, on the renewer's thread with a connection of its own.
fn renew_fn(config: &RedisConfig, timeouts: Timeouts) -> Result<RenewFn, StoreError> {
    let mut keeper = Keeper::new(RedisConnector::new(config, timeouts)?, None);
    let script = Script::new(scripts::RENEW);
    Ok(Box::new(move |key, token, ttl| {
        let ttl_ms = duration_ms(ttl).to_string();
        keeper
            .run(Retry::Idempotent, |link| {
                link.route(key);
                eval::<i64>(
                    link,
                    &script,
                    &[key],
                    &[token.as_bytes(), ttl_ms.as_bytes()],
                    None,
                )
            })
            .map(|renewed| renewed.reply == 1)
    }))
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Redis rejects `EX 0`; a session always lives at least a second.
fn lifetime_secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}
