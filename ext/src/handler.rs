//! What each session hook does, in safe Rust. `ffi` converts PHP's arguments, calls these,
//! and turns an `Err` into a PHP warning.
//!
//! A worker keeps its stores (each with its open connection) between requests in a small
//! per-thread cache, so one FPM worker has one connection per save_path it uses.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use fleet_core::config::Lifetimes;
use fleet_core::{
    open_store, parse_save_path, ErrorKind, HeldLock, SessionId, SessionStore, StoreError,
};

use crate::advice;
use crate::busy;
use crate::metrics::{self, Counter};
use crate::settings::Settings;

mod merge;

/// Stores kept per worker thread; more distinct save_paths than this in one worker is
/// unusual, and the oldest is closed.
const MAX_IDLE_STORES: usize = 4;

/// A kept store is found by its save_path, its timeouts, and the `open_basedir` it was
/// parsed under: the files its settings named (password_file=, …) passed that check, and a
/// request under another open_basedir (another vhost in the same pool) must pass its own.
type StoreKey = (String, fleet_core::Timeouts, String);

/// A worker's store for one save_path, and that save_path's lifetime options.
struct Kept {
    store: Box<dyn SessionStore>,
    lifetimes: Lifetimes,
    /// The save_path's `locking=`, which overrides `fleet.locking`.
    locking: Option<fleet_core::Locking>,
}

thread_local! {
    static IDLE_STORES: RefCell<Vec<(StoreKey, Kept)>> = const { RefCell::new(Vec::new()) };
    /// Whether this request has read a session that existed: then a session it creates
    /// (session_regenerate_id() at login) belongs to a returning visitor, not a one-hit one.
    static READ_AN_EXISTING_SESSION: Cell<bool> = const { Cell::new(false) };
}

/// RINIT: forget what the previous request read.
pub fn request_starts() {
    READ_AN_EXISTING_SESSION.with(|c| c.set(false));
    busy::request_starts();
}

/// RSHUTDOWN: this worker has served a request (for `fleet.max_waiters`' view of who else is
/// being served).
pub fn request_ends() {
    busy::request_ends();
}

/// How much session data PHP can take in this request: half of what `memory_limit` leaves,
/// since PHP holds the string and decodes a copy of its contents into `$_SESSION`. A copy
/// past the limit would not fail: PHP would end the request with a fatal error from inside
/// Fleet's hook (a longjmp through Rust frames) and then write an empty session over the
/// stored one at shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRoom {
    /// The largest session data (inflated) a read may return.
    pub limit: usize,
    memory_limit: Option<u64>,
    in_use: usize,
}

impl MemoryRoom {
    /// From the `memory_limit` PHP enforces, in bytes (`PG(memory_limit)`: negative for no
    /// limit), and the bytes PHP's allocator holds now. The enforced number rather than the
    /// INI text, which PHP also accepts as 0x…, 0o…, 0b… or with a sign.
    pub fn new(memory_limit: i64, in_use: usize) -> MemoryRoom {
        let memory_limit = u64::try_from(memory_limit).ok();
        let limit = match memory_limit {
            Some(bytes) => {
                let free = bytes.saturating_sub(in_use as u64) / 2;
                usize::try_from(free).unwrap_or(usize::MAX)
            }
            None => usize::MAX,
        };
        MemoryRoom {
            limit,
            memory_limit,
            in_use,
        }
    }

    fn describe(&self) -> String {
        match self.memory_limit {
            Some(bytes) => format!(
                "{} bytes free (memory_limit = {bytes} bytes, {} in use)",
                bytes.saturating_sub(self.in_use as u64),
                self.in_use
            ),
            None => "no limit".to_owned(),
        }
    }
}

/// A message for PHP, already worded for the admin.
pub type Problem = String;

/// State of one open session, owned by PHP's `mod_data` from open to close.
pub struct OpenSession {
    key: StoreKey,
    store: Box<dyn SessionStore>,
    lifetimes: Lifetimes,
    locking: Option<fleet_core::Locking>,
    user_agent: Option<String>,
    settings: Settings,
    held: Option<(SessionId, HeldLock)>,
    /// The id read in this request that did not exist (a new session).
    new_id: Option<SessionId>,
    /// Merge mode: the session this request read, and its version, to write against.
    merge_base: Option<(SessionId, fleet_core::VersionedRead)>,
    /// Merge mode: when the session in `merge_base` was read.
    merge_read_at: Option<std::time::Instant>,
    /// Merge mode: the session whose read also set its lifetime, and to what.
    touched_at_read: Option<(SessionId, std::time::Duration)>,
    /// Merge mode: the notice of the last write (a conflict, or a session gone).
    merge_notice: Option<Problem>,
    /// Whether the last read was refused because too many requests wait for the session.
    refused_busy: bool,
    /// The `fleet.slow_lock_wait` notice of the last read, if it waited that long.
    slow_wait_notice: Option<Problem>,
    /// The process that opened the session. After a `pcntl_fork()` both processes hold
    /// this state; the lock and the session are the parent's.
    opened_by: u32,
}

fn problem(e: impl std::fmt::Display) -> Problem {
    e.to_string()
}

/// Adds to a shared counter unless `fleet.metrics` is off.
fn count(settings: &Settings, counter: Counter, n: u64) {
    if settings.metrics {
        metrics::add(counter, n);
    }
}

/// A failed read, worded for PHP: a session too large for what memory_limit leaves says so.
fn read_failed(settings: &Settings, e: StoreError, room: MemoryRoom) -> Problem {
    match e.kind() {
        ErrorKind::TooLarge => format!(
            "{}. PHP needs about twice a session's size to read and decode it, and memory_limit leaves {}: raise memory_limit, or make the session smaller",
            failed(settings, e),
            room.describe()
        ),
        _ => failed(settings, e),
    }
}

/// Counts a failed step by what went wrong, and words it for PHP.
fn failed(settings: &Settings, e: StoreError) -> Problem {
    let counter = match e.kind() {
        ErrorKind::Connect | ErrorKind::Tls => Some(Counter::ErrorsConnect),
        ErrorKind::TimedOut => Some(Counter::ErrorsTimeout),
        ErrorKind::ConnectionLost => Some(Counter::ErrorsConnectionLost),
        ErrorKind::Auth => Some(Counter::ErrorsAuth),
        ErrorKind::NotPrimary => Some(Counter::ErrorsNotPrimary),
        ErrorKind::Server | ErrorKind::Schema | ErrorKind::DamagedData | ErrorKind::TooLarge => {
            Some(Counter::ErrorsServer)
        }
        ErrorKind::LockWaitTimeout => Some(Counter::LockWaitTimeouts),
        ErrorKind::LockLost | ErrorKind::LockConnectionLost => Some(Counter::LocksLost),
        ErrorKind::Overtaken => Some(Counter::MergeFailed),
        _ => None,
    };
    if let Some(counter) = counter {
        count(settings, counter, 1);
    }
    advice::describe(&e)
}

fn parse_id(raw: &[u8]) -> Result<SessionId, Problem> {
    SessionId::parse(raw).map_err(|e| advice::describe(&StoreError::from(e)))
}

fn lifetime(maxlifetime: i64) -> Duration {
    Duration::from_secs(maxlifetime.max(1).unsigned_abs())
}

/// `open`: finds this worker's store for `save_path` (or makes one) and makes sure it is
/// connected, so a dead backend is reported by session_start() itself. `user_agent` is
/// asked only when the save_path's lifetime options need it.
pub fn open(
    save_path: &str,
    open_basedir: &str,
    settings: Settings,
    user_agent: impl FnOnce() -> Option<String>,
    holder: String,
) -> Result<OpenSession, Problem> {
    let key = (
        save_path.to_owned(),
        settings.timeouts,
        open_basedir.to_owned(),
    );
    let cached = IDLE_STORES.with(|stores| {
        let mut stores = stores.borrow_mut();
        let found = stores.iter().position(|(k, _)| *k == key);
        found.map(|i| stores.remove(i).1)
    });
    let mut kept = match cached {
        Some(kept) => kept,
        None => {
            let config = parse_save_path(save_path).map_err(problem)?;
            Kept {
                store: open_store(&config, settings.timeouts).map_err(|e| failed(&settings, e))?,
                lifetimes: config.lifetimes().clone(),
                locking: config.locking(),
            }
        }
    };
    // Opens a connection if there is none, or replaces one older than max_connection_age:
    // no lock is held at this point. No I/O when the kept connection is fine.
    count(&settings, Counter::Requests, 1);
    if let Err(e) = kept.store.connect() {
        // Keep the store: its parsed config is still good, and the next request retries.
        let events = kept.store.take_events();
        put_back(key, kept);
        count_events(&settings, events);
        return Err(failed(&settings, e));
    }
    kept.store.set_holder(&holder);
    let settings = match kept.locking {
        Some(locking) => settings.with_locking(locking),
        None => settings,
    };
    let settings = Settings {
        lock: kept.store.lock_policy(settings.lock),
        ..settings
    };
    let user_agent = if kept.lifetimes.any() {
        user_agent()
    } else {
        None
    };
    Ok(OpenSession {
        key,
        store: kept.store,
        lifetimes: kept.lifetimes,
        locking: kept.locking,
        user_agent,
        settings,
        held: None,
        new_id: None,
        merge_base: None,
        merge_read_at: None,
        touched_at_read: None,
        merge_notice: None,
        refused_busy: false,
        slow_wait_notice: None,
        opened_by: fleet_core::process_id(),
    })
}

fn put_back(key: StoreKey, store: Kept) {
    IDLE_STORES.with(|stores| {
        let mut stores = stores.borrow_mut();
        if stores.len() >= MAX_IDLE_STORES {
            stores.remove(0);
        }
        stores.push((key, store));
    });
}

impl OpenSession {
    /// Refuses a step in the child of a `pcntl_fork()` made while the session was open: the
    /// lock is the parent's, and a write from the child would race the parent's under it.
    fn refuse_in_forked_child(&self, step: &str) -> Result<(), Problem> {
        if self.opened_by == fleet_core::process_id() {
            return Ok(());
        }
        Err(problem(format!(
            "the session was opened by process {} before pcntl_fork(), so this child process does not {step} it (the parent holds its lock). Call session_write_close() before forking, and session_start() in the child if it needs the session",
            self.opened_by
        )))
    }

    /// `read`: takes the lock (per `fleet.locking`) and returns the data; a session that
    /// does not exist reads as empty, as PHP expects.
    ///
    /// `room` bounds the data's size (inflated): what PHP can still take under
    /// `memory_limit`. A larger session is refused and left as it is: PHP then aborts the
    /// session, so nothing is written over it at the end of the request.
    pub fn read(
        &mut self,
        raw_id: &[u8],
        room: MemoryRoom,
        maxlifetime: i64,
    ) -> Result<Vec<u8>, Problem> {
        self.refuse_in_forked_child("read")?;
        let id = parse_id(raw_id)?;
        self.release_held();
        self.store.set_read_limit(room.limit);
        if self.merging() {
            return self.merge_read(id, room, maxlifetime);
        }
        let outcome = self.lock_and_read_unless_busy(&id, room)?;
        if outcome.lock.is_some() && self.settings.metrics {
            metrics::observe_lock_wait(outcome.waited);
        }
        let read = outcome.data.as_ref().map_or(0, Vec::len);
        count(&self.settings, Counter::BytesRead, read as u64);
        if let Some(limit) = self.settings.slow_lock_wait {
            if outcome.waited > limit {
                let holder = match &outcome.holder {
                    Some(h) => format!("; it was {h}"),
                    None => String::new(),
                };
                self.slow_wait_notice = Some(problem(format!(
                    "session {} waited {:.2} s for its lock (over fleet.slow_lock_wait = {:.2} s){holder}",
                    id.abbreviated(),
                    outcome.waited.as_secs_f64(),
                    limit.as_secs_f64()
                )));
            }
        }
        match outcome.data {
            Some(_) => READ_AN_EXISTING_SESSION.with(|c| c.set(true)),
            None => self.new_id = Some(id.clone()),
        }
        if let Some(lock) = outcome.lock {
            self.held = Some((id, lock));
        }
        Ok(outcome.data.unwrap_or_default())
    }

    /// Takes the lock and reads, unless `fleet.max_waiters` requests of this server already
    /// wait for the session while other visitors are being served (see [`busy::admit`]).
    fn lock_and_read_unless_busy(
        &mut self,
        id: &SessionId,
        room: MemoryRoom,
    ) -> Result<fleet_core::ReadOutcome, Problem> {
        let session = busy::session_key(&self.key.0, id.as_str());
        busy::request_reads(session);
        let locking = self.settings.lock.lease.is_some();
        let waiting = match busy::admit(
            self.settings.max_waiters,
            self.settings.max_waiters_window,
            locking,
            session,
        ) {
            busy::Admission::Refused(refusal) => {
                self.refused_busy = true;
                count(&self.settings, Counter::BusyRefusals, 1);
                return Err(problem(refusal.message(&id.abbreviated())));
            }
            busy::Admission::Admitted(waiting) => waiting,
        };
        let outcome = self.store.lock_and_read(id, self.settings.lock);
        drop(waiting);
        outcome.map_err(|e| read_failed(&self.settings, e, room))
    }

    /// The `fleet.slow_lock_wait` notice of the last read, once.
    pub fn take_slow_wait_notice(&mut self) -> Option<Problem> {
        self.slow_wait_notice.take()
    }

    /// The HTTP status to answer with after a read refused as busy (`fleet.busy_status`).
    pub fn busy_status(&self) -> Option<u16> {
        (self.refused_busy && self.settings.busy_status > 0).then_some(self.settings.busy_status)
    }

    /// The lock this request holds for `id`, if any, taken out of the request state.
    fn take_held(&mut self, id: &SessionId) -> Option<HeldLock> {
        match self.held.take() {
            Some((held_id, lock)) if held_id == *id => Some(lock),
            other => {
                self.held = other;
                None
            }
        }
    }

    /// The lock for `id`, which a write must hold when locking is on: writing without it
    /// would be the silent unlocked write Fleet exists to prevent.
    fn take_lock_for(&mut self, id: &SessionId) -> Result<Option<HeldLock>, Problem> {
        let lock = self.take_held(id);
        if lock.is_none() && self.settings.lock.lease.is_some() {
            return Err(problem(format!(
                "session {} is not locked by this request, so it was not written (it was not read by session_start() first)",
                id.abbreviated()
            )));
        }
        Ok(lock)
    }

    /// How long session `id` lives when written now: `session.gc_maxlifetime`, unless the
    /// save_path's lifetime options say otherwise for a new session or a crawler. A session
    /// is new if it did not exist when read and this request read no other that did (so a
    /// login's session_regenerate_id() keeps the normal lifetime).
    fn lifetime_of(&self, id: &SessionId, maxlifetime: i64) -> Duration {
        let new = self.new_id.as_ref() == Some(id) && !READ_AN_EXISTING_SESSION.with(|c| c.get());
        self.lifetimes
            .lifetime(lifetime(maxlifetime), new, self.user_agent.as_deref())
    }

    /// `write`: stores the data and releases the lock in one round trip. `format` is asked
    /// in merge mode only: how the session is serialized, if Fleet can cut it.
    pub fn write(
        &mut self,
        raw_id: &[u8],
        data: &[u8],
        maxlifetime: i64,
        format: impl FnOnce() -> Option<fleet_core::codec::SessionFormat>,
    ) -> Result<(), Problem> {
        self.refuse_in_forked_child("write")?;
        let id = parse_id(raw_id)?;
        if self.merging() {
            let lifetime = self.lifetime_of(&id, maxlifetime);
            return self.merge_write(id, data, lifetime, format());
        }
        let lock = self.take_lock_for(&id)?;
        let lifetime = self.lifetime_of(&id, maxlifetime);
        self.store
            .write_and_unlock(&id, data, lifetime, lock.as_ref())
            .map_err(|e| failed(&self.settings, e))?;
        count(&self.settings, Counter::BytesWritten, data.len() as u64);
        if self.new_id.as_ref() == Some(&id) {
            self.new_id = None;
            count(&self.settings, Counter::SessionsCreated, 1);
        }
        Ok(())
    }

    /// `update_timestamp` (lazy_write, data unchanged): refreshes the lifetime and releases
    /// the lock in one round trip.
    pub fn touch(&mut self, raw_id: &[u8], maxlifetime: i64) -> Result<(), Problem> {
        self.refuse_in_forked_child("write")?;
        let id = parse_id(raw_id)?;
        if self.merging() {
            if self.touched_at_read(&id, maxlifetime) {
                return Ok(());
            }
            let lifetime = self.lifetime_of(&id, maxlifetime);
            return self.merge_refresh(&id, lifetime);
        }
        let lock = self.take_lock_for(&id)?;
        let lifetime = self.lifetime_of(&id, maxlifetime);
        self.store
            .touch_and_unlock(&id, lifetime, lock.as_ref())
            .map_err(|e| failed(&self.settings, e))
    }

    /// `destroy`: deletes the session and releases its lock if this request holds it.
    pub fn destroy(&mut self, raw_id: &[u8]) -> Result<(), Problem> {
        self.refuse_in_forked_child("destroy")?;
        let id = parse_id(raw_id)?;
        if self.merging() {
            return self.merge_destroy(&id);
        }
        let lock = self.take_held(&id);
        self.store
            .destroy(&id, lock.as_ref())
            .map_err(|e| failed(&self.settings, e))?;
        count(&self.settings, Counter::SessionsDestroyed, 1);
        Ok(())
    }

    /// `validate_sid` (session.use_strict_mode): only ids of stored sessions are accepted.
    pub fn exists(&mut self, raw_id: &[u8]) -> Result<bool, Problem> {
        let Ok(id) = SessionId::parse(raw_id) else {
            return Ok(false);
        };
        self.store
            .exists(&id)
            .map_err(|e| failed(&self.settings, e))
    }

    /// `gc`: the number of sessions removed.
    pub fn gc(&mut self, maxlifetime: i64) -> Result<u64, Problem> {
        let deleted = self
            .store
            .gc(lifetime(maxlifetime))
            .map_err(|e| failed(&self.settings, e))?;
        count(&self.settings, Counter::GcRuns, 1);
        count(&self.settings, Counter::GcDeleted, deleted);
        Ok(deleted)
    }

    /// What went wrong in the last step without failing it, worded for the admin.
    pub fn take_notice(&mut self) -> Option<Problem> {
        self.store.take_notice().map(problem)
    }

    fn release_held(&mut self) -> Option<Problem> {
        let (id, lock) = self.held.take()?;
        if self.opened_by != fleet_core::process_id() {
            // The parent's lock, which the parent releases: the child only forgets it.
            drop((id, lock));
            return None;
        }
        let settings = self.settings;
        self.store
            .unlock(&id, &lock)
            .err()
            .map(|e| failed(&settings, e))
    }

    /// `close`: releases a lock still held (session_abort(), read_and_close) and gives the
    /// store back to the worker's cache for the next request.
    pub fn close(mut self) -> Result<(), Problem> {
        let outcome = self.release_held();
        count_events(&self.settings, self.store.take_events());
        put_back(
            self.key,
            Kept {
                store: self.store,
                lifetimes: self.lifetimes,
                locking: self.locking,
            },
        );
        outcome.map_or(Ok(()), Err)
    }
}

/// Counts what happened below the requests: reconnects, failovers, automatic gc runs.
fn count_events(settings: &Settings, events: fleet_core::StoreEvents) {
    count(settings, Counter::Reconnects, events.reconnects);
    count(settings, Counter::Failovers, events.failovers);
    count(settings, Counter::GcRuns, events.gc_runs);
    count(settings, Counter::GcDeleted, events.gc_deleted);
}

/// Describes this worker's connections for phpinfo(): endpoints only, never credentials.
pub fn describe_connections() -> Vec<String> {
    IDLE_STORES.with(|stores| {
        stores
            .borrow()
            .iter()
            .map(|(_, kept)| {
                let s = &kept.store;
                format!(
                    "{} ({})",
                    s.endpoint(),
                    if s.is_connected() {
                        "connected"
                    } else {
                        "not connected"
                    }
                )
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_may_take_half_of_what_memory_limit_leaves() {
        assert_eq!(MemoryRoom::new(16 << 20, 2 << 20).limit, 7 << 20);
        assert_eq!(MemoryRoom::new(-1, 2 << 20).limit, usize::MAX);
        assert_eq!(
            MemoryRoom::new(2 << 20, 3 << 20).limit,
            0,
            "already over: nothing"
        );
    }
}
