//! The one trait every backend implements, and the per-request lock policy.

use std::time::Duration;

use crate::error::StoreError;
use crate::id::SessionId;
use crate::lease::{LeaseTerms, LeaseToken};

/// Whether and how a request locks its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockPolicy {
    /// `None`: no locking (last writer wins, as phpredis does by default).
    pub lease: Option<LeaseTerms>,
}

/// A session lock this request holds. It is not released on drop: releasing needs the
/// backend, and a lock left behind by a dying worker ends by its TTL.
#[derive(Debug)]
pub struct HeldLock {
    pub token: LeaseToken,
    pub ttl: Duration,
}

/// What a read found.
#[derive(Debug)]
pub struct ReadOutcome {
    /// `None` when no session is stored under that id (new or expired).
    pub data: Option<Vec<u8>>,
    /// `Some` when locking is on.
    pub lock: Option<HeldLock>,
}

/// Session storage with locking. One instance serves one worker: requests use it one at a
/// time, and it keeps its connection between them.
///
/// The sequence for one request is `lock_and_read`, then exactly one of `write_and_unlock`,
/// `touch_and_unlock`, `unlock` or `destroy`, each of which releases the lock it is given.
pub trait SessionStore {
    /// Takes the session's lock (waiting for it if `policy` says so) and reads its data.
    fn lock_and_read(&mut self, id: &SessionId, policy: LockPolicy) -> Result<ReadOutcome, StoreError>;

    /// Stores `data` for `lifetime` and releases `lock`. Refuses with `LockLost` if the lock
    /// expired and so another request may have written in between.
    fn write_and_unlock(&mut self, id: &SessionId, data: &[u8], lifetime: Duration, lock: Option<&HeldLock>) -> Result<(), StoreError>;

    /// Extends the stored session's lifetime without rewriting it, and releases `lock`.
    fn touch_and_unlock(&mut self, id: &SessionId, lifetime: Duration, lock: Option<&HeldLock>) -> Result<(), StoreError>;

    /// Releases `lock` without touching the data.
    fn unlock(&mut self, id: &SessionId, lock: &HeldLock) -> Result<(), StoreError>;

    /// Deletes the session, and releases `lock` if given.
    fn destroy(&mut self, id: &SessionId, lock: Option<&HeldLock>) -> Result<(), StoreError>;

    /// Whether a session is stored under `id` (for `session.use_strict_mode`).
    fn exists(&mut self, id: &SessionId) -> Result<bool, StoreError>;

    /// Deletes sessions idle for longer than `lifetime`; returns how many.
    fn gc(&mut self, lifetime: Duration) -> Result<u64, StoreError>;
}
