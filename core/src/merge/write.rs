//! One merge-mode write, from first try to last resort: a conditional write against what
//! the request read; on a change, a merge with what is stored now and another try, a bounded
//! number of times; then the session's lock, under which the last merge cannot be overtaken.

use std::time::Duration;

use super::{merge, merge_opaque, Merged, OnConflict};
use crate::codec::SessionFormat;
use crate::error::StoreError;
use crate::id::SessionId;
use crate::store::{ConditionalWrite, LockPolicy, SessionStore, VersionedRead};

/// How a merge-mode write goes about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MergeTerms {
    /// Which side a variable both sides changed takes.
    pub on_conflict: OnConflict,
    /// How the session is serialized (`session.serialize_handler`); `None` for a handler
    /// Fleet cannot cut (igbinary…), whose sessions merge whole.
    pub format: Option<SessionFormat>,
    /// Conditional writes to try before taking the lock (at least one).
    pub attempts: u32,
    /// The lock the last resort takes; without a lease the write fails after `attempts`.
    pub lock: LockPolicy,
}

/// What became of a merge-mode write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeOutcome {
    /// Stored.
    Written,
    /// Not stored: the session was destroyed or expired after this request read it (a logout
    /// wins over a request still in flight).
    Gone,
}

/// A merge-mode write's outcome, with what it took, for the metrics and the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeReport {
    /// Stored, or not because the session is gone.
    pub outcome: MergeOutcome,
    /// The variables both sides changed differently in the merge that was stored (`*`: the
    /// session merged whole).
    pub conflicts: Vec<String>,
    /// Conditional writes refused because another request wrote (or held the lock) first.
    pub retries: u32,
    /// Whether it took the session's lock in the end.
    pub took_lock: bool,
}

/// How long to wait before trying again when a request holds the session's lock (a merge
/// that took the lock writes within a round trip or two).
const LOCKED_PAUSE: Duration = Duration::from_millis(2);

/// Writes `ours` for session `id`, which this request read as `base` (its data as the request
/// saw it, with its version), merging in whatever other requests stored since.
pub fn write_merged(
    store: &mut dyn SessionStore,
    id: &SessionId,
    base: &VersionedRead,
    ours: &[u8],
    lifetime: Duration,
    terms: MergeTerms,
) -> Result<MergeReport, StoreError> {
    let endpoint = store.endpoint().to_owned();
    let Some(merging) = store.as_merge() else {
        return Err(StoreError::unsupported(&endpoint, "locking=merge"));
    };
    let base_data = base.data.as_deref().unwrap_or_default();
    let mut report = MergeReport {
        outcome: MergeOutcome::Written,
        conflicts: Vec::new(),
        retries: 0,
        took_lock: false,
    };
    let mut version = base.version.clone();
    let mut data = ours.to_vec();
    for attempt in 1..=terms.attempts.max(1) {
        let now = match merging.write_if_unchanged(id, &version, &data, lifetime)? {
            ConditionalWrite::Written => return Ok(report),
            ConditionalWrite::Gone => return Ok(gone(report)),
            ConditionalWrite::Changed(now) => now,
            ConditionalWrite::Locked => {
                std::thread::sleep(LOCKED_PAUSE * attempt);
                merging.read_versioned(id)?
            }
        };
        report.retries += 1;
        let Some(theirs) = now.data.as_deref() else {
            // Stored when read, or created since (a version differs), and not there now.
            return Ok(gone(report));
        };
        let merged = merge_sides(base_data, ours, theirs, terms);
        report.conflicts = merged.conflicts;
        if merged.data == theirs {
            // What is stored already holds this request's changes (or the policy kept
            // theirs): nothing to write, and the other request just set the lifetime.
            return Ok(report);
        }
        data = merged.data;
        version = now.version;
    }
    write_under_lock(store, id, base, ours, lifetime, terms, report)
}

/// Conditional writes a request holding the lock tries: other requests' conditional writes
/// answer `Locked` while it is held, so only one that began before the lock was taken can
/// overtake it, and that once.
const UNDER_LOCK_ATTEMPTS: u32 = 8;

/// The last resort: with the lock held, the merge against what is stored now, written
/// (still only if nothing changed since that read, which keeps it correct whatever order the
/// server checks a competing write's conditions in).
fn write_under_lock(
    store: &mut dyn SessionStore,
    id: &SessionId,
    base: &VersionedRead,
    ours: &[u8],
    lifetime: Duration,
    terms: MergeTerms,
    mut report: MergeReport,
) -> Result<MergeReport, StoreError> {
    let endpoint = store.endpoint().to_owned();
    let no_lock = || {
        StoreError::unsupported(
            &endpoint,
            "a lock for a merge that kept conflicting (locking is off for this store)",
        )
    };
    if terms.lock.lease.is_none() {
        return Err(no_lock());
    }
    report.took_lock = true;
    let held = store.lock_and_read(id, terms.lock)?;
    let Some(lock) = held.lock else {
        return Err(no_lock());
    };
    let outcome = merge_holding(store, id, base, ours, lifetime, terms, &lock, &mut report);
    if !matches!(outcome, Ok(true)) {
        // Not written (gone, or failed): the lock is still held.
        let released = store.unlock(id, &lock);
        if outcome.is_ok() {
            released?;
        }
    }
    outcome.map(|written| match written {
        true => report,
        false => gone(report),
    })
}

/// Under the lock: reads (seeing a destroy's tombstone), merges and writes until a write
/// lands (`true`, and the lock is released with it) or the session is gone (`false`).
#[allow(clippy::too_many_arguments)]
fn merge_holding(
    store: &mut dyn SessionStore,
    id: &SessionId,
    base: &VersionedRead,
    ours: &[u8],
    lifetime: Duration,
    terms: MergeTerms,
    lock: &crate::store::HeldLock,
    report: &mut MergeReport,
) -> Result<bool, StoreError> {
    let endpoint = store.endpoint().to_owned();
    let Some(merging) = store.as_merge() else {
        return Err(StoreError::unsupported(&endpoint, "locking=merge"));
    };
    for _ in 0..UNDER_LOCK_ATTEMPTS {
        let now = merging.read_versioned_under_lock(id)?;
        let theirs = match now.data.as_deref() {
            Some(theirs) => theirs,
            // Still absent as when read.
            None if now.version == base.version => b"",
            None => return Ok(false),
        };
        let merged = merge_sides(
            base.data.as_deref().unwrap_or_default(),
            ours,
            theirs,
            terms,
        );
        report.conflicts = merged.conflicts;
        match merging.write_holding(id, &now.version, &merged.data, lifetime, lock)? {
            ConditionalWrite::Written => return Ok(true),
            ConditionalWrite::Gone => return Ok(false),
            ConditionalWrite::Changed(_) | ConditionalWrite::Locked => report.retries += 1,
        }
    }
    Err(StoreError::unsupported(
        &endpoint,
        "a merge write that lands while holding the lock (other writes kept overtaking it)",
    ))
}

fn gone(report: MergeReport) -> MergeReport {
    MergeReport {
        outcome: MergeOutcome::Gone,
        ..report
    }
}

fn merge_sides(base: &[u8], ours: &[u8], theirs: &[u8], terms: MergeTerms) -> Merged {
    match terms.format {
        Some(format) => merge(base, ours, theirs, format, terms.on_conflict),
        None => merge_opaque(base, ours, theirs, terms.on_conflict),
    }
}
