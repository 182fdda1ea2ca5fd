//! Memory shared by all workers of one PHP-FPM master: the metrics counters (`fleet_stats()`,
//! `fleet_metrics()`), and which session each worker is waiting for, so that a request can
//! see how many others of this server already wait for the same session
//! (`fleet.max_waiters`). The request path only adds to counters (relaxed atomic adds).
//!
//! The board is mapped once, at module startup, before FPM forks its workers, so every
//! worker of that master sees the same pages (an anonymous shared mapping; a PHP CLI process
//! has one of its own). It holds one slot per worker: the worker's PID, a hash of the
//! session it is waiting for (0: none) and since when, which sessions its last requests
//! used and when they ended, and the session it last refused as busy, so a request can
//! tell whether other visitors are being served (the cap only protects them: with nobody
//! else to serve, waiting in turn harms no one).
//! A worker claims a slot on its first request and then only stores into it; counting
//! reads the slots. No locks, no I/O.
//!
//! A worker killed while waiting leaves its hash behind; a count checks that the PID of each
//! matching slot is still alive (`kill(pid, 0)`) and clears the slot if not, and a new
//! worker reclaims a dead worker's slot, so nothing stays counted after its worker is gone.

use std::cell::Cell;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

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
        slots: unsafe { map_zeroed::<Slot>(SLOTS) },
        // SAFETY: one atomic.
        claimed: unsafe { map_zeroed::<AtomicUsize>(1) },
    });
}

/// `count` zeroed values of `T` in an anonymous shared mapping that is never unmapped (so
/// it lives for the process, and a fork shares it); empty if the mapping fails.
///
/// # Safety
/// `T` must be made of atomics only, for which all-zero bytes are a valid value and which
/// are sound to share between processes.
unsafe fn map_zeroed<T>(count: usize) -> &'static [T] {
    let bytes = count * std::mem::size_of::<T>();
    // SAFETY: an anonymous shared mapping of `bytes` zeroed bytes, never unmapped, so the
    // slice lives for the process; zeroed memory is a valid `T` by this function's contract.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            &[][..]
        } else {
            std::slice::from_raw_parts(p.cast::<T>(), count)
        }
    }
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

fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 sends nothing; it only reports whether the process
    // exists (EPERM also means it does).
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn my_slot(board: &Board) -> Option<&Slot> {
    let me = std::process::id();
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
    let me = std::process::id();
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

/// Now, in the milliseconds of `CLOCK_MONOTONIC` the board's times are in (one clock for
/// every process of the machine).
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the one we pass; CLOCK_MONOTONIC
    // always exists on Linux.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if r != 0 {
        return 0;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1000).saturating_add(nanos / 1_000_000)
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

/// The counters every worker of the master adds to (see `metrics` for what each means). The
/// order is the layout of the shared array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    Requests,
    LockAcquisitions,
    LockContended,
    LockWaitTimeouts,
    LocksLost,
    BusyRefusals,
    ErrorsConnect,
    ErrorsTimeout,
    ErrorsConnectionLost,
    ErrorsAuth,
    ErrorsNotPrimary,
    ErrorsServer,
    Reconnects,
    Failovers,
    BytesRead,
    BytesWritten,
    SessionsCreated,
    SessionsDestroyed,
    GcRuns,
    GcDeleted,
    /// The lock wait histogram's sum, in microseconds.
    LockWaitMicros,
}

/// Upper bounds (seconds) of the lock wait histogram's buckets; the last bucket is +Inf.
pub const WAIT_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0];
const COUNTERS: usize = Counter::LockWaitMicros as usize + 1;
/// The counters, then one count per bucket (and +Inf).
const CELLS: usize = COUNTERS + WAIT_BUCKETS.len() + 1;

static CELLS_MAP: OnceLock<&'static [AtomicU64]> = OnceLock::new();

/// Maps the counters, zeroed. Called at module startup with [`init`], before FPM forks.
pub fn init_counters() {
    // SAFETY: the cells are `AtomicU64`s.
    CELLS_MAP.get_or_init(|| unsafe { map_zeroed::<AtomicU64>(CELLS) });
}

fn cell(i: usize) -> Option<&'static AtomicU64> {
    CELLS_MAP.get().and_then(|cells| cells.get(i))
}

/// Adds `n` to `counter`: one relaxed atomic add, nothing else.
pub fn add(counter: Counter, n: u64) {
    if let Some(c) = cell(counter as usize) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// Counts a lock acquisition that waited `waited` (zero for a free lock).
pub fn observe_lock_wait(waited: std::time::Duration) {
    add(Counter::LockAcquisitions, 1);
    if waited.is_zero() {
        add_bucket(0);
        return;
    }
    add(Counter::LockContended, 1);
    add(
        Counter::LockWaitMicros,
        u64::try_from(waited.as_micros()).unwrap_or(u64::MAX),
    );
    let seconds = waited.as_secs_f64();
    let bucket = WAIT_BUCKETS
        .iter()
        .position(|le| seconds <= *le)
        .unwrap_or(WAIT_BUCKETS.len());
    add_bucket(bucket);
}

fn add_bucket(i: usize) {
    if let Some(c) = cell(COUNTERS + i) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// The counters now, and the lock wait histogram's per-bucket counts (not cumulative).
pub struct Snapshot {
    pub counters: [u64; COUNTERS],
    pub buckets: [u64; WAIT_BUCKETS.len() + 1],
}

impl Snapshot {
    pub fn get(&self, counter: Counter) -> u64 {
        self.counters[counter as usize]
    }
}

pub fn snapshot() -> Snapshot {
    let read = |i: usize| cell(i).map(|c| c.load(Ordering::Relaxed)).unwrap_or(0);
    Snapshot {
        counters: std::array::from_fn(read),
        buckets: std::array::from_fn(|i| read(COUNTERS + i)),
    }
}
