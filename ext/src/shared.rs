//! Memory shared by all workers of one PHP-FPM master: the metrics counters (`fleet_stats()`,
//! `fleet_metrics()`), and which session each worker is waiting for, so that a request can
//! see how many others of this server already wait for the same session
//! (`fleet.max_waiters`). The request path only adds to counters (relaxed atomic adds).
//!
//! The board is mapped once, at module startup, before FPM forks its workers, so every
//! worker of that master sees the same pages (an anonymous shared mapping; a PHP CLI process
//! has one of its own). It holds one slot per worker: the worker's PID and a hash of the
//! session it is waiting for (0: none). A worker claims a slot on its first lock and then
//! only stores into it; counting reads the slots. No locks, no I/O.
//!
//! A worker killed while waiting leaves its hash behind; a count checks that the PID of each
//! matching slot is still alive (`kill(pid, 0)`) and clears the slot if not, and a new
//! worker reclaims a dead worker's slot, so nothing stays counted after its worker is gone.

use std::cell::Cell;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;

/// Slots on the board: more workers under one master than this are not counted (their
/// requests are never refused).
const SLOTS: usize = 1024;

#[repr(C)]
struct Slot {
    pid: AtomicU32,
    waiting_for: AtomicU64,
}

struct Board {
    slots: &'static [Slot],
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
        // SAFETY: `Slot` is two atomics.
        slots: unsafe { map_zeroed::<Slot>(SLOTS) },
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
    let n = board.slots.len();
    if n == 0 {
        return None;
    }
    let start = (me as usize).wrapping_mul(2_654_435_761) % n;
    for k in 0..n {
        let i = (start + k) % n;
        let slot = &board.slots[i];
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
            MINE.with(|m| m.set(Some((me, i))));
            return Some(slot);
        }
    }
    None
}

/// How many other workers of this master are waiting for session `key` now.
pub fn waiting_for(key: u64) -> u32 {
    let Some(board) = BOARD.get() else {
        return 0;
    };
    let me = std::process::id();
    let mut count = 0;
    for slot in board.slots {
        if slot.waiting_for.load(Ordering::Acquire) != key {
            continue;
        }
        let pid = slot.pid.load(Ordering::Acquire);
        if pid == me || pid == 0 {
            continue;
        }
        if pid_alive(pid) {
            count += 1;
        } else {
            // Killed while waiting: its wait is over.
            let _ = slot
                .waiting_for
                .compare_exchange(key, 0, Ordering::AcqRel, Ordering::Acquire);
        }
    }
    count
}

/// Marks this worker as waiting for session `key` (0: for none).
pub fn set_waiting(key: u64) {
    if let Some(slot) = BOARD.get().and_then(my_slot) {
        slot.waiting_for.store(key, Ordering::Release);
    }
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
