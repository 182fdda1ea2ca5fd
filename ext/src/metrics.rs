//! The counters every worker of a PHP-FPM master adds to (in memory they share), what each
//! means, and how they are shown: `fleet_stats()`'s array and `fleet_metrics()`'s
//! Prometheus text exposition format (version 0.0.4). Counting is one relaxed atomic add.

use std::fmt::Write as _;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::shm;

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
    MergeWrites,
    MergeRetries,
    MergeConflicts,
    MergeLockFallbacks,
    MergeGone,
    MergeFailed,
    /// The lock wait histogram's sum, in microseconds.
    LockWaitMicros,
}

/// Upper bounds (seconds) of the lock wait histogram's buckets; the last bucket is +Inf.
pub const WAIT_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0];
const COUNTER_CELLS: usize = Counter::LockWaitMicros as usize + 1;
/// The counters, then one count per bucket (and +Inf).
const CELLS: usize = COUNTER_CELLS + WAIT_BUCKETS.len() + 1;

static CELLS_MAP: OnceLock<&'static [AtomicU64]> = OnceLock::new();

/// Maps the counters, zeroed. Called at module startup, before FPM forks.
pub fn init() {
    // SAFETY: the cells are `AtomicU64`s.
    CELLS_MAP.get_or_init(|| unsafe { shm::map_zeroed::<AtomicU64>(CELLS) });
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
    if let Some(c) = cell(COUNTER_CELLS + i) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// The counters now, and the lock wait histogram's per-bucket counts (not cumulative).
pub struct Snapshot {
    pub counters: [u64; COUNTER_CELLS],
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
        buckets: std::array::from_fn(|i| read(COUNTER_CELLS + i)),
    }
}

/// Each plain counter: its `fleet_stats()` key, Prometheus name, labels and help.
pub const SERIES: [(Counter, &str, &str, &str, &str); 25] = [
    (
        Counter::Requests,
        "requests",
        "fleet_requests_total",
        "",
        "Sessions opened (session_start) by the workers.",
    ),
    (
        Counter::LockAcquisitions,
        "lock_acquisitions",
        "fleet_lock_acquisitions_total",
        "",
        "Session locks taken.",
    ),
    (
        Counter::LockContended,
        "lock_contended",
        "fleet_lock_contended_total",
        "",
        "Session locks taken after waiting for another request.",
    ),
    (
        Counter::LockWaitTimeouts,
        "lock_wait_timeouts",
        "fleet_lock_wait_timeouts_total",
        "",
        "Requests that gave up waiting for a session lock (fleet.lock_wait_timeout).",
    ),
    (
        Counter::LocksLost,
        "locks_lost",
        "fleet_locks_lost_total",
        "",
        "Writes refused because the request's lock was gone before it wrote.",
    ),
    (
        Counter::BusyRefusals,
        "busy_refusals",
        "fleet_busy_refusals_total",
        "",
        "Requests refused at once because too many wait for their session (fleet.max_waiters).",
    ),
    (
        Counter::ErrorsConnect,
        "errors_connect",
        "fleet_backend_errors_total",
        "kind=\"connect\"",
        "Backend errors by kind.",
    ),
    (
        Counter::ErrorsTimeout,
        "errors_timeout",
        "fleet_backend_errors_total",
        "kind=\"timeout\"",
        "",
    ),
    (
        Counter::ErrorsConnectionLost,
        "errors_connection_lost",
        "fleet_backend_errors_total",
        "kind=\"connection_lost\"",
        "",
    ),
    (
        Counter::ErrorsAuth,
        "errors_auth",
        "fleet_backend_errors_total",
        "kind=\"auth\"",
        "",
    ),
    (
        Counter::ErrorsNotPrimary,
        "errors_not_primary",
        "fleet_backend_errors_total",
        "kind=\"not_primary\"",
        "",
    ),
    (
        Counter::ErrorsServer,
        "errors_server",
        "fleet_backend_errors_total",
        "kind=\"server\"",
        "",
    ),
    (
        Counter::Reconnects,
        "reconnects",
        "fleet_reconnects_total",
        "",
        "Backend connections opened again after one was lost, replaced or refused.",
    ),
    (
        Counter::Failovers,
        "failovers",
        "fleet_failovers_total",
        "",
        "Connections dropped because the server was no longer the primary.",
    ),
    (
        Counter::BytesRead,
        "bytes_read",
        "fleet_session_bytes_read_total",
        "",
        "Session data bytes handed to PHP.",
    ),
    (
        Counter::BytesWritten,
        "bytes_written",
        "fleet_session_bytes_written_total",
        "",
        "Session data bytes PHP asked to store.",
    ),
    (
        Counter::SessionsCreated,
        "sessions_created",
        "fleet_sessions_created_total",
        "",
        "Sessions written for the first time.",
    ),
    (
        Counter::SessionsDestroyed,
        "sessions_destroyed",
        "fleet_sessions_destroyed_total",
        "",
        "Sessions destroyed (session_destroy, session_regenerate_id(true)).",
    ),
    (
        Counter::GcRuns,
        "gc_runs",
        "fleet_gc_runs_total",
        "",
        "Garbage collection runs (MySQL; Redis expires sessions itself).",
    ),
    (
        Counter::MergeWrites,
        "merge_writes",
        "fleet_merge_writes_total",
        "",
        "Sessions written in merge mode (fleet.locking = merge).",
    ),
    (
        Counter::MergeRetries,
        "merge_retries",
        "fleet_merge_retries_total",
        "",
        "Merge-mode writes tried again because another request wrote the session first.",
    ),
    (
        Counter::MergeConflicts,
        "merge_conflicts",
        "fleet_merge_conflicts_total",
        "",
        "Session variables two requests changed differently, settled by fleet.merge_conflict.",
    ),
    (
        Counter::MergeLockFallbacks,
        "merge_lock_fallbacks",
        "fleet_merge_lock_fallbacks_total",
        "",
        "Merge-mode writes that took the session's lock after repeated conflicting writes.",
    ),
    (
        Counter::MergeGone,
        "merge_gone",
        "fleet_merge_gone_total",
        "",
        "Merge-mode writes dropped because the session was destroyed or expired meanwhile.",
    ),
    (
        Counter::MergeFailed,
        "merge_failed",
        "fleet_merge_failed_total",
        "",
        "Merge-mode writes not saved because other requests kept overtaking them and there was no lock to fall back to.",
    ),
];

/// The counters not in [`SERIES`]: gc deletions and the wait histogram.
const GC_DELETED: (&str, &str, &str) = (
    "gc_deleted",
    "fleet_gc_deleted_total",
    "Expired sessions deleted by garbage collection.",
);

/// Bucket bounds as Prometheus writes them.
fn le(bound: f64) -> String {
    format!("{bound}")
}

/// `fleet_metrics()`: the Prometheus text exposition format.
pub fn prometheus(s: &Snapshot) -> String {
    let mut out = String::new();
    let mut last_name = "";
    for (counter, _, name, labels, help) in SERIES {
        if name != last_name {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            last_name = name;
        }
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}{labels} {}", s.get(counter));
    }
    let (_, name, help) = GC_DELETED;
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
        s.get(Counter::GcDeleted)
    );
    let name = "fleet_lock_wait_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time requests waited for their session lock."
    );
    let _ = writeln!(out, "# TYPE {name} histogram");
    let mut cumulative = 0;
    for (i, bound) in WAIT_BUCKETS.iter().enumerate() {
        cumulative += s.buckets[i];
        let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {cumulative}", le(*bound));
    }
    cumulative += s.buckets[WAIT_BUCKETS.len()];
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(
        out,
        "{name}_sum {}",
        s.get(Counter::LockWaitMicros) as f64 / 1e6
    );
    let _ = writeln!(out, "{name}_count {cumulative}");
    out
}

/// One `fleet_stats()` entry: a count, or the histogram's cumulative buckets.
pub enum Stat {
    Count(u64),
    Seconds(f64),
    Buckets(Vec<(String, u64)>),
}

/// `fleet_stats()`: every counter by its key, the wait histogram as `lock_wait_buckets`
/// (`"<=seconds" => cumulative count`) and its sum in `lock_wait_seconds`.
pub fn stats(s: &Snapshot) -> Vec<(&'static str, Stat)> {
    let mut out: Vec<(&'static str, Stat)> = SERIES
        .iter()
        .map(|(counter, key, ..)| (*key, Stat::Count(s.get(*counter))))
        .collect();
    out.push((GC_DELETED.0, Stat::Count(s.get(Counter::GcDeleted))));
    out.push((
        "lock_wait_seconds",
        Stat::Seconds(s.get(Counter::LockWaitMicros) as f64 / 1e6),
    ));
    let mut cumulative = 0;
    // Keys like "<=0.25": never numeric strings, which PHP arrays would turn into integers.
    let mut buckets = Vec::new();
    for (i, bound) in WAIT_BUCKETS.iter().enumerate() {
        cumulative += s.buckets[i];
        buckets.push((format!("<={}", le(*bound)), cumulative));
    }
    cumulative += s.buckets[WAIT_BUCKETS.len()];
    buckets.push(("<=+Inf".to_owned(), cumulative));
    out.push(("lock_wait_buckets", Stat::Buckets(buckets)));
    out
}

/// The main figures for phpinfo().
pub fn summary(s: &Snapshot) -> Vec<(&'static str, String)> {
    let errors: u64 = [
        Counter::ErrorsConnect,
        Counter::ErrorsTimeout,
        Counter::ErrorsConnectionLost,
        Counter::ErrorsAuth,
        Counter::ErrorsNotPrimary,
        Counter::ErrorsServer,
    ]
    .iter()
    .map(|c| s.get(*c))
    .sum();
    vec![
        (
            "Sessions opened (this master's workers)",
            s.get(Counter::Requests).to_string(),
        ),
        (
            "Locks taken (after a wait)",
            format!(
                "{} ({})",
                s.get(Counter::LockAcquisitions),
                s.get(Counter::LockContended)
            ),
        ),
        (
            "Lock wait timeouts",
            s.get(Counter::LockWaitTimeouts).to_string(),
        ),
        ("Backend errors", errors.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_one_help_and_type_per_family_and_a_cumulative_histogram() {
        let mut counters = [0u64; Counter::LockWaitMicros as usize + 1];
        counters[Counter::Requests as usize] = 7;
        counters[Counter::ErrorsTimeout as usize] = 2;
        counters[Counter::LockWaitMicros as usize] = 1_500_000;
        let mut buckets = [0u64; WAIT_BUCKETS.len() + 1];
        buckets[0] = 5;
        buckets[7] = 1;
        buckets[WAIT_BUCKETS.len()] = 1;
        let text = prometheus(&Snapshot { counters, buckets });
        assert!(text.contains("fleet_requests_total 7\n"));
        assert!(text.contains("fleet_backend_errors_total{kind=\"timeout\"} 2\n"));
        assert_eq!(
            text.matches("# TYPE fleet_backend_errors_total counter")
                .count(),
            1
        );
        assert!(text.contains("fleet_lock_wait_seconds_bucket{le=\"0.001\"} 5\n"));
        assert!(text.contains("fleet_lock_wait_seconds_bucket{le=\"1\"} 6\n"));
        assert!(text.contains("fleet_lock_wait_seconds_bucket{le=\"+Inf\"} 7\n"));
        assert!(text.contains("fleet_lock_wait_seconds_sum 1.5\n"));
        assert!(text.contains("fleet_lock_wait_seconds_count 7\n"));
    }
}
