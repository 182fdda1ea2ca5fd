//! The busy-session cap (`fleet.max_waiters`): one visitor's burst on a session must not
//! take every PHP worker of a server from the other visitors.
//!
//! - the setting: [`MaxWaiters`] (and `fleet.max_waiters_window`, read in `settings`);
//! - the board: which session each worker of this FPM master is waiting for and since when,
//!   which sessions its last requests used and when they ended, and the session it last
//!   refused, in memory the workers share ([`crate::shm`]); a worker claims a slot on its
//!   first request and then only stores into it, and counting reads the slots;
//! - the policy: [`admit`] turns the board and the setting into an admission decision for
//!   one read: wait (counted on the board while it waits) or be refused at once.
//!
//! A worker killed while waiting leaves its hash behind; a count checks that the PID of each
//! matching slot is still alive (`kill(pid, 0)`) and clears the slot if not, and a new
//! worker reclaims a dead worker's slot, so nothing stays counted after its worker is gone.

use std::cell::Cell;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::shm::{self, now_ms, pid_alive};

/// How many requests of this server may wait for one session (`fleet.max_waiters`).
///
/// The window, `fleet.max_waiters_window` (1 s by default): the cap applies while this server has finished a
/// request for another session, or a page without one, within the last second. The cap
/// only protects other visitors; with nobody else to serve, a burst on one session (a load
/// test, a job firing requests) is served in full, in turn, as without a cap. Under a
/// hammered session the other visitors keep being served, so it stays in force; a second
/// is longer than the pauses between their requests under load and short enough that an
/// earlier, finished visit does not turn a later burst into refusals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxWaiters {
    /// `0`: no cap.
    Off,
    /// `auto` (the default): half this server's workers less the holder, at least
    /// [`MIN_AUTO_WAITERS`] ([`MaxWaiters::for_workers`]).
    Auto,
    /// A number of waiters.
    Fixed(u32),
}

/// The least cap `auto` sets: a holder and 2 waiters, so 4 parallel requests of one page,
/// which the balancer splits across the app servers, are not refused on small pools.
pub const MIN_AUTO_WAITERS: u32 = 2;

impl MaxWaiters {
    /// `auto` (or empty), `0`, or a number of waiters up to 10 000.
    pub fn parse(text: &str) -> Option<MaxWaiters> {
        match text.trim() {
            "auto" | "" => Some(MaxWaiters::Auto),
            "0" => Some(MaxWaiters::Off),
            n => match n.parse::<u32>() {
                Ok(n) if n <= 10_000 => Some(MaxWaiters::Fixed(n)),
                _ => None,
            },
        }
    }

    /// The cap for a server of `workers` workers (`None`: no cap). `auto` lets one session
    /// take at most half the pool: a holder and `workers / 2 - 1` waiters, at least
    /// [`MIN_AUTO_WAITERS`]. So 4 workers: 2 waiters (3 of 4 workers on one session);
    /// 8 workers: 3 (4 of 8, and 4 parallel requests on one server are never refused);
    /// 16: 7. A browser opens at most 6 connections to a host, so one tab's parallel
    /// requests are a holder and a few waiters, split across the app servers.
    pub fn for_workers(self, workers: u32) -> Option<u32> {
        match self {
            MaxWaiters::Off => None,
            MaxWaiters::Fixed(n) => Some(n),
            MaxWaiters::Auto => Some((workers / 2).saturating_sub(1).max(MIN_AUTO_WAITERS)),
        }
    }

    /// The smallest cap this setting can come to, whatever the pool: below this many
    /// waiters nothing needs counting.
    pub fn floor(self) -> Option<u32> {
        match self {
            MaxWaiters::Off => None,
            MaxWaiters::Fixed(n) => Some(n),
            MaxWaiters::Auto => Some(MIN_AUTO_WAITERS),
        }
    }
}

impl std::fmt::Display for MaxWaiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaxWaiters::Off => f.write_str("0"),
            MaxWaiters::Auto => f.write_str("auto"),
            MaxWaiters::Fixed(n) => write!(f, "{n}"),
        }
    }
}

/// Slots on the board: more workers under one master than this are not counted (their
/// requests are never refused, nor seen as other visitors).
const SLOTS: usize = 1024;

#[repr(C)]
struct Slot {
    pid: AtomicU32,
    waiting_for: AtomicU64,
    /// When the worker began to wait, in milliseconds of `CLOCK_MONOTONIC`.
    waiting_since_ms: AtomicU64,
    /// The session the worker's last finished request used ([`NO_SESSION`]: none).
    served: AtomicU64,
    /// When that request ended, in milliseconds of `CLOCK_MONOTONIC` (one clock for every
    /// process of the machine); 0: never.
    served_at_ms: AtomicU64,
    /// The session of the last request before those for `served` (and when it ended), so a
    /// run of quick refusals for one hammered session does not hide that the worker has
    /// just served someone else.
    earlier_served: AtomicU64,
    earlier_served_at_ms: AtomicU64,
    /// The session this worker last refused as busy, and when.
    refused: AtomicU64,
    refused_at_ms: AtomicU64,
}

/// What [`note_served`] records for a request that opened no session: a key no session
/// has ([`session_key`] is never 0), so such a request counts as another visitor's.
pub const NO_SESSION: u64 = 0;

struct Board {
    slots: &'static [Slot],
    /// One past the highest slot ever claimed: workers claim the lowest free slot, so the
    /// used part of the board stays at the front and a count reads only that far.
    claimed: &'static [AtomicUsize],
}

impl Board {
    /// The slots claimed so far (a pool's worth, not all [`SLOTS`]).
    fn used(&self) -> &[Slot] {
        let end = self
            .claimed
            .first()
            .map_or(0, |c| c.load(Ordering::Acquire));
        &self.slots[..end.min(self.slots.len())]
    }
}

static BOARD: OnceLock<Board> = OnceLock::new();

thread_local! {
    /// This process's slot, with the PID it was claimed for (a fork needs its own).
    static MINE: Cell<Option<(u32, usize)>> = const { Cell::new(None) };
}

/// Maps the board. Called at module startup (MINIT), before FPM forks; does nothing if it
/// is already mapped. Without a board, nothing is counted and no request is refused.
pub fn init() {
    BOARD.get_or_init(|| Board {
        // SAFETY: `Slot` is made of atomics only.
        slots: unsafe { shm::map_zeroed::<Slot>(SLOTS) },
        // SAFETY: one atomic.
        claimed: unsafe { shm::map_zeroed::<AtomicUsize>(1) },
    });
}

/// A session as the board knows it: a hash of the save_path and the id (never 0).
pub fn session_key(save_path: &str, id: &str) -> u64 {
    // A fixed-key hasher, so every worker computes the same value.
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    save_path.hash(&mut h);
    id.hash(&mut h);
    h.finish().max(1)
}

fn my_slot(board: &Board) -> Option<&Slot> {
    let me = fleet_core::process_id();
    if let Some((pid, i)) = MINE.with(Cell::get) {
        if pid == me {
            return board.slots.get(i);
        }
    }
    // The lowest free slot (or one whose worker died), once per worker.
    for (i, slot) in board.slots.iter().enumerate() {
        let owner = slot.pid.load(Ordering::Acquire);
        let free = owner == 0 || (owner != me && !pid_alive(owner));
        let claimed = owner == me
            || (free
                && slot
                    .pid
                    .compare_exchange(owner, me, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok());
        if claimed {
            slot.waiting_for.store(0, Ordering::Release);
            if let Some(c) = board.claimed.first() {
                c.fetch_max(i + 1, Ordering::AcqRel);
            }
            MINE.with(|m| m.set(Some((me, i))));
            return Some(slot);
        }
    }
    None
}

/// The other workers of this master waiting for one session now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Crowd {
    pub waiting: u32,
    /// When the longest-waiting of them began to wait (`CLOCK_MONOTONIC` ms; 0: none).
    pub oldest_since_ms: u64,
}

/// Who of the other workers of this master is waiting for session `key` now.
pub fn waiting_for(key: u64) -> Crowd {
    let Some(board) = BOARD.get() else {
        return Crowd::default();
    };
    let me = fleet_core::process_id();
    let mut crowd = Crowd::default();
    for slot in board.used() {
        if slot.waiting_for.load(Ordering::Acquire) != key {
            continue;
        }
        let pid = slot.pid.load(Ordering::Acquire);
        if pid == me || pid == 0 {
            continue;
        }
        if pid_alive(pid) {
            crowd.waiting += 1;
            let since = slot.waiting_since_ms.load(Ordering::Acquire);
            if crowd.oldest_since_ms == 0 || (since != 0 && since < crowd.oldest_since_ms) {
                crowd.oldest_since_ms = since;
            }
        } else {
            // Killed while waiting: its wait is over.
            let _ = slot
                .waiting_for
                .compare_exchange(key, 0, Ordering::AcqRel, Ordering::Acquire);
        }
    }
    crowd
}

/// How many workers of this master are alive on the board (those that have served a
/// request): the pool `fleet.max_waiters = auto` sizes its cap by. Checks each claimed
/// slot's PID, so it is only asked when several requests already wait for one session.
pub fn workers() -> u32 {
    let Some(board) = BOARD.get() else {
        return 0;
    };
    let alive = board
        .used()
        .iter()
        .map(|slot| slot.pid.load(Ordering::Acquire))
        .filter(|pid| *pid != 0 && pid_alive(*pid))
        .count();
    u32::try_from(alive).unwrap_or(u32::MAX)
}

/// Marks this worker as waiting for session `key` (0: for none).
pub fn set_waiting(key: u64) {
    if let Some(slot) = BOARD.get().and_then(my_slot) {
        if key != 0 {
            slot.waiting_since_ms.store(now_ms(), Ordering::Release);
        }
        slot.waiting_for.store(key, Ordering::Release);
    }
}

/// Records that this worker's request, which used session `key` ([`NO_SESSION`]: none),
/// has ended. Called at request shutdown: two stores into this worker's slot.
pub fn note_served(key: u64) {
    if let Some(slot) = BOARD.get().and_then(my_slot) {
        // Only this worker writes its slot; a reader may see a pair half updated, which
        // at worst shifts one decision by one request.
        let last = slot.served.load(Ordering::Relaxed);
        if last != key {
            slot.earlier_served.store(last, Ordering::Relaxed);
            let at = slot.served_at_ms.load(Ordering::Relaxed);
            slot.earlier_served_at_ms.store(at, Ordering::Release);
        }
        slot.served.store(key, Ordering::Relaxed);
        slot.served_at_ms.store(now_ms().max(1), Ordering::Release);
    }
}

/// Records that this worker refused a request for session `key` as busy.
pub fn note_refused(key: u64) {
    if let Some(slot) = BOARD.get().and_then(my_slot) {
        slot.refused.store(key, Ordering::Relaxed);
        slot.refused_at_ms.store(now_ms().max(1), Ordering::Release);
    }
}

/// Whether a worker of this master refused a request for session `key` since `since_ms`:
/// the session is being hammered, and the cap is already in force for it.
pub fn refused_since(key: u64, since_ms: u64) -> bool {
    let Some(board) = BOARD.get() else {
        return false;
    };
    board.used().iter().any(|slot| {
        slot.refused_at_ms.load(Ordering::Acquire) >= since_ms.max(1)
            && slot.refused.load(Ordering::Relaxed) == key
    })
}

/// Whether a worker of this master finished a request for anything but session `key`
/// (another session, or none) since `since_ms` (`CLOCK_MONOTONIC` ms): other visitors are
/// being served, and a worker parked on `key` would be taken from them.
pub fn others_served_since(key: u64, since_ms: u64) -> bool {
    let Some(board) = BOARD.get() else {
        return false;
    };
    let other = |at: &AtomicU64, served: &AtomicU64| {
        let at = at.load(Ordering::Acquire);
        at != 0 && at >= since_ms && served.load(Ordering::Relaxed) != key
    };
    board.used().iter().any(|slot| {
        other(&slot.served_at_ms, &slot.served)
            || other(&slot.earlier_served_at_ms, &slot.earlier_served)
    })
}

thread_local! {
    /// The board's key of the session this request read ([`NO_SESSION`]: none yet).
    static SESSION_OF_REQUEST: Cell<u64> = const { Cell::new(NO_SESSION) };
}

/// RINIT: this request has read no session yet.
pub fn request_starts() {
    SESSION_OF_REQUEST.with(|c| c.set(NO_SESSION));
}

/// The request reads session `key` (what [`request_ends`] records it served).
pub fn request_reads(key: u64) {
    SESSION_OF_REQUEST.with(|c| c.set(key));
}

/// RSHUTDOWN: tells the board this worker has served a request, and for which session, so
/// that the cap knows whether other visitors are being served.
pub fn request_ends() {
    note_served(SESSION_OF_REQUEST.with(Cell::get));
}

/// How long a refusal keeps the cap in force for its session (while others are served):
/// longer than the `Retry-After: 1` a refused request is told, so clients that honour it
/// and return together find the cap still in force.
const REFUSALS_REMEMBERED_MS: u64 = 5_000;

/// Whether a read may wait for its session's lock.
pub enum Admission {
    /// It may; while the [`Waiting`] lives, this worker counts as waiting for the session
    /// (`None`: not counted, with no cap or no locking).
    Admitted(Option<Waiting>),
    /// Refused at once: too many of this server's workers already wait for the session.
    Refused(Refusal),
}

/// This worker's mark on the board as waiting for a session; dropping it clears the mark.
pub struct Waiting(());

impl Drop for Waiting {
    fn drop(&mut self) {
        set_waiting(0);
    }
}

/// Why a read was refused as busy.
pub struct Refusal {
    waiting: u32,
    cap: String,
    workers: u32,
}

impl Refusal {
    /// The warning for the refused request of session `session` (abbreviated).
    pub fn message(&self, session: &str) -> String {
        format!(
            "session {session} is busy: {} requests of this server already wait for it (fleet.max_waiters = {}) while other visitors are being served, so this request was refused at once rather than take another of this server's {} workers from them. Raise fleet.max_waiters if pages really make that many parallel requests on one session",
            self.waiting, self.cap, self.workers,
        )
    }
}

/// Whether a read of session `key` may wait for its lock, under `max_waiters` and `window`
/// (`fleet.max_waiters_window`; `None`: the cap always applies), `locking` being whether
/// the read takes a lock at all. A refusal is recorded on the board.
pub fn admit(
    max_waiters: MaxWaiters,
    window: Option<Duration>,
    locking: bool,
    key: u64,
) -> Admission {
    let floor = max_waiters.floor();
    if floor.is_none() || !locking {
        return Admission::Admitted(None);
    }
    let crowd = waiting_for(key);
    let waiting = crowd.waiting;
    // The pool is only counted once this many wait: no scan on the common path.
    if floor.is_some_and(|floor| waiting >= floor) {
        let workers = workers();
        let cap = max_waiters.for_workers(workers).unwrap_or(u32::MAX);
        if waiting >= cap && others_are_served(window, key, crowd) {
            note_refused(key);
            return Admission::Refused(Refusal {
                waiting,
                cap: describe_cap(max_waiters, cap),
                workers,
            });
        }
    }
    set_waiting(key);
    Admission::Admitted(Some(Waiting(())))
}

/// `fleet.max_waiters` as the warning shows it: `auto` with what it came to.
fn describe_cap(max_waiters: MaxWaiters, cap: u32) -> String {
    match max_waiters {
        MaxWaiters::Auto => format!("auto: {cap}"),
        other => other.to_string(),
    }
}

/// Whether the cap is in force for session `key`, which `crowd` waits for: always with
/// `fleet.max_waiters_window = 0`; else while other visitors are being served. To put
/// the cap in force, this server must have finished a request for another session (or
/// a page without one) after the longest of those waits began: visits that ended
/// before the crowd formed (a login, then a burst of requests on one session) do not
/// count, nobody else waits for a worker then. Once it has refused a request for the
/// session (within [`REFUSALS_REMEMBERED_MS`]), it stays in force while others were
/// served within the window, so the hammering cannot take the pool back in the gaps
/// between their requests, nor when its refused clients return together after their
/// `Retry-After`.
fn others_are_served(window: Option<Duration>, key: u64, crowd: Crowd) -> bool {
    let Some(window) = window else {
        return true;
    };
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    let now = now_ms();
    let window_start = now.saturating_sub(window_ms);
    let refused_recently = now.saturating_sub(REFUSALS_REMEMBERED_MS.max(window_ms));
    let since = if refused_since(key, refused_recently) {
        window_start
    } else {
        crowd.oldest_since_ms.max(window_start)
    };
    others_served_since(key, since)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_lets_one_session_take_at_most_half_the_pool() {
        let auto = |workers| MaxWaiters::Auto.for_workers(workers);
        // (workers, waiters): with the holder, one session takes at most half the pool,
        // and never fewer than a holder and 2 waiters.
        for (workers, waiters) in [(1, 2), (4, 2), (5, 2), (8, 3), (10, 4), (16, 7), (64, 31)] {
            assert_eq!(auto(workers), Some(waiters), "{workers} workers");
        }
        assert_eq!(MaxWaiters::Off.for_workers(8), None);
        assert_eq!(MaxWaiters::Fixed(5).for_workers(4), Some(5));
        assert_eq!(MaxWaiters::Auto.floor(), Some(MIN_AUTO_WAITERS));
    }
}
