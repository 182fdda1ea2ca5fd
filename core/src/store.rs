//! The one trait every backend implements, and the per-request lock policy.

use std::time::{Duration, Instant};

use crate::error::StoreError;
use crate::id::SessionId;
use crate::lease::{LeaseTerms, LeaseToken};

/// Whether and how a request locks its session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockPolicy {
    /// `None`: no locking (last writer wins, as phpredis does by default).
    pub lease: Option<LeaseTerms>,
}

/// A session lock this request holds. It is not released on drop: releasing needs the
/// backend, and a lock left behind by a dying worker ends without it (by TTL, or with the
/// worker's connection).
#[derive(Debug)]
pub enum HeldLock {
    /// A lease (Redis): only the token's owner can release it, and it ends by itself `ttl`
    /// after it was taken or last renewed.
    Lease {
        /// The lease's token: the proof of ownership.
        token: LeaseToken,
        /// The lease's TTL.
        ttl: Duration,
        /// When it was taken (no later than this).
        taken: Instant,
        /// Its registration with the store's renewer, if it is renewed.
        renewal: Option<u64>,
    },
    /// A lock the server ties to one connection (MySQL's named locks and row locks): it ends
    /// when the connection ends, so it is only valid on the connection that took it.
    Connection {
        /// The server's id of the connection that holds it.
        connection_id: u32,
    },
}

/// What happened below the requests since they were last asked, for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreEvents {
    /// Connections opened after a first one (after a failure, `max_connection_age`, a failover).
    pub reconnects: u64,
    /// Connections dropped because the server said it is not the primary.
    pub failovers: u64,
    /// Garbage collection runs done by this store itself (MySQL's `gc_interval`), and the
    /// sessions they deleted.
    pub gc_runs: u64,
    /// Sessions those runs deleted.
    pub gc_deleted: u64,
}

/// What a read found.
#[derive(Debug)]
pub struct ReadOutcome {
    /// `None` when no session is stored under that id (new or expired).
    pub data: Option<Vec<u8>>,
    /// `Some` when locking is on.
    pub lock: Option<HeldLock>,
    /// How long the request waited for the lock (zero when it was free), and who held it
    /// when last seen, for `fleet.slow_lock_wait`.
    pub waited: Duration,
    /// Who held the lock when last seen, if anyone did.
    pub holder: Option<crate::lease::Holder>,
}

/// Session storage with locking. One instance serves one worker: requests use it one at a
/// time, and it keeps its connection between them.
///
/// The sequence for one request is `lock_and_read`, then exactly one of `write_and_unlock`,
/// `touch_and_unlock`, `unlock` or `destroy`, each of which releases the lock it is given.
pub trait SessionStore {
    /// Where the backend is, for messages; never contains credentials.
    fn endpoint(&self) -> &str;

    /// Called when a request starts: opens the connection now if there is none (so a dead
    /// server is reported early), or replaces one older than `max_connection_age`.
    fn connect(&mut self) -> Result<(), StoreError>;

    /// Whether a connection is open (it may still turn out to be dead).
    fn is_connected(&self) -> bool;

    /// Who this worker's next locks are taken for ("web2 pid 1234 (GET /report.php)"):
    /// recorded with the lock where the backend can do so in the same round trip (Redis),
    /// and shown to a request that waits for it.
    fn set_holder(&mut self, _holder: &str) {}

    /// What happened since the last call (reconnects, failovers, automatic gc runs).
    fn take_events(&mut self) -> StoreEvents {
        StoreEvents::default()
    }

    /// Something that went wrong in the last step without failing it, for a warning (a
    /// write that fewer replicas acknowledged than `wait_replicas` asks).
    fn take_notice(&mut self) -> Option<String> {
        None
    }

    /// The policy this store applies when asked for `requested`: a save_path can turn
    /// locking off for its backend (MySQL's `lock=none`).
    fn lock_policy(&self, requested: LockPolicy) -> LockPolicy {
        requested
    }

    /// Bounds the size of the data the next reads may return, inflated: a larger session is
    /// refused with `TooLarge` (and left as it is) before it is inflated. PHP sets it from
    /// what `memory_limit` leaves, since a copy past that would end the request. Only the
    /// frame layer ([`crate::open_store`]'s store) applies it.
    fn set_read_limit(&mut self, _limit: usize) {}

    /// Merge mode's steps (`fleet.locking = merge`), where the backend offers them.
    fn as_merge(&mut self) -> Option<&mut dyn MergeStore> {
        None
    }

    /// Takes the session's lock (waiting for it if `policy` says so) and reads its data.
    fn lock_and_read(
        &mut self,
        id: &SessionId,
        policy: LockPolicy,
    ) -> Result<ReadOutcome, StoreError>;

    /// Stores `data` for `lifetime` and releases `lock`. Refuses with `LockLost` if the lock
    /// expired and so another request may have written in between.
    fn write_and_unlock(
        &mut self,
        id: &SessionId,
        data: &[u8],
        lifetime: Duration,
        lock: Option<&HeldLock>,
    ) -> Result<(), StoreError>;

    /// Extends the stored session's lifetime without rewriting it, and releases `lock`.
    fn touch_and_unlock(
        &mut self,
        id: &SessionId,
        lifetime: Duration,
        lock: Option<&HeldLock>,
    ) -> Result<(), StoreError>;

    /// Releases `lock` without touching the data.
    fn unlock(&mut self, id: &SessionId, lock: &HeldLock) -> Result<(), StoreError>;

    /// Deletes the session, and releases `lock` if given.
    fn destroy(&mut self, id: &SessionId, lock: Option<&HeldLock>) -> Result<(), StoreError>;

    /// Whether a session is stored under `id` (for `session.use_strict_mode`).
    fn exists(&mut self, id: &SessionId) -> Result<bool, StoreError>;

    /// Deletes sessions idle for longer than `lifetime`; returns how many.
    fn gc(&mut self, lifetime: Duration) -> Result<u64, StoreError>;
}

/// A stored session's version, as merge mode reads it: a digest of its bytes (followed by
/// `@<stamp>` when a logout's tombstone is there too: the session was created again after
/// it), `gone:<stamp>` when only a tombstone is there, none when nothing is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Version(pub(crate) Option<String>);

impl Version {
    /// The stamp of the logout's tombstone that was there, if one was.
    pub(crate) fn tombstone(&self) -> Option<&str> {
        let v = self.0.as_deref()?;
        match v.strip_prefix("gone:") {
            Some(stamp) => Some(stamp),
            None => v.split_once('@').map(|(_, stamp)| stamp),
        }
    }

    /// The digest of the data that was there, if any was.
    pub(crate) fn digest(&self) -> Option<&str> {
        let v = self.0.as_deref()?;
        match v.starts_with("gone:") {
            true => None,
            false => Some(v.split_once('@').map_or(v, |(digest, _)| digest)),
        }
    }

    /// Whether a logout happened between a read at `base` and one at `self`: a tombstone is
    /// there that was not (or another one was).
    pub(crate) fn logged_out_since(&self, base: &Version) -> bool {
        self.tombstone().is_some() && self.tombstone() != base.tombstone()
    }
}

/// What a merge-mode read found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionedRead {
    /// The stored bytes (as the store holds them), `None` when there is no session.
    pub data: Option<Vec<u8>>,
    /// Their version, to write against.
    pub version: Version,
}

/// The outcome of [`MergeStore::write_if_unchanged`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConditionalWrite {
    /// Written: nobody had written since the read.
    Written,
    /// Not written: another request wrote meanwhile; this is what is stored now.
    Changed(VersionedRead),
    /// Not written: the session was destroyed or expired since it was read (a logout wins).
    Gone,
    /// Not written: a request holds the session's lock (a merge that kept conflicting
    /// writes under the lock); try again once it is released.
    Locked,
}

/// The steps of `fleet.locking = merge`: reads that take no lock, writes made only if the
/// session is as it was read, each one round trip, and a destroy no later write undoes.
pub trait MergeStore {
    /// Reads session `id` and its version, without locking it.
    fn read_versioned(&mut self, id: &SessionId) -> Result<VersionedRead, StoreError>;

    /// Reads session `id` and its version, and gives it `lifetime` if it is stored, where the
    /// backend can do both in one round trip (`true`): a request that then changes nothing
    /// has nothing left to send.
    fn read_versioned_and_touch(
        &mut self,
        id: &SessionId,
        _lifetime: Duration,
    ) -> Result<(VersionedRead, bool), StoreError> {
        Ok((self.read_versioned(id)?, false))
    }

    /// Reads session `id` and its version while this request holds its lock (a merge's last
    /// resort), waiting for any write that began before the lock was taken. Where the backend
    /// writes under the lock without a condition (Redis), it also gives a stored session
    /// `lifetime`, so that the session cannot expire between this read and that write.
    fn read_versioned_under_lock(
        &mut self,
        id: &SessionId,
        _lifetime: Duration,
    ) -> Result<VersionedRead, StoreError> {
        self.read_versioned(id)
    }

    /// Stores `data` for `lifetime` if session `id` is still at `base`; else says why not
    /// (with what is stored now when another request wrote).
    fn write_if_unchanged(
        &mut self,
        id: &SessionId,
        base: &Version,
        data: &[u8],
        lifetime: Duration,
    ) -> Result<ConditionalWrite, StoreError>;

    /// Stores `data` for `lifetime` if session `id` is still at `base`, while this request
    /// holds `lock` (a merge's last resort), and releases the lock when written. Not
    /// written: the lock is still held.
    fn write_holding(
        &mut self,
        id: &SessionId,
        base: &Version,
        data: &[u8],
        lifetime: Duration,
        lock: &HeldLock,
    ) -> Result<ConditionalWrite, StoreError>;

    /// Gives a stored session `lifetime` (lazy_write's refresh of a session this request did
    /// not change), without a lock and without reviving a session that expired meanwhile.
    fn refresh(&mut self, id: &SessionId, lifetime: Duration) -> Result<(), StoreError>;

    /// Deletes session `id` and leaves a tombstone for `remember`, so that a request that
    /// read it before cannot write it back. `false`: not done, because a request holds the
    /// session's lock (a merge's fallback); try again once it is released.
    fn destroy_for_good(&mut self, id: &SessionId, remember: Duration) -> Result<bool, StoreError>;
}
