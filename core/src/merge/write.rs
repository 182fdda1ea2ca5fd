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

/// The last resort: under the lock no conditional write can land (they answer `Locked`), so
/// the merge against what is stored now is the one written.
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
    if terms.lock.lease.is_none() {
        return Err(StoreError::unsupported(
            &endpoint,
            "a lock for a merge that kept conflicting (locking is off for this store)",
        ));
    }
    report.took_lock = true;
    let held = store.lock_and_read(id, terms.lock)?;
    let Some(lock) = held.lock else {
        return Err(StoreError::unsupported(
            &endpoint,
            "a lock for a merge that kept conflicting (locking is off for this store)",
        ));
    };
    // The locked read does not see a destroy's tombstone; the versioned one does.
    let now = match store.as_merge().map(|m| m.read_versioned_under_lock(id)) {
        Some(Ok(now)) => now,
        Some(Err(e)) => {
            let _ = store.unlock(id, &lock);
            return Err(e);
        }
        None => {
            let _ = store.unlock(id, &lock);
            return Err(StoreError::unsupported(&endpoint, "locking=merge"));
        }
    };
    let theirs = match now.data.as_deref() {
        Some(theirs) => theirs,
        // Still absent as when read, and nobody can write it while the lock is held.
        None if now.version == base.version => b"",
        None => {
            store.unlock(id, &lock)?;
            return Ok(gone(report));
        }
    };
    let merged = merge_sides(
        base.data.as_deref().unwrap_or_default(),
        ours,
        theirs,
        terms,
    );
    store.write_and_unlock(id, &merged.data, lifetime, Some(&lock))?;
    report.conflicts = merged.conflicts;
    Ok(report)
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
