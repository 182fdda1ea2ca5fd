//! From a parsed save_path to a store: the one place that knows every backend. The traits
//! (`SessionStore`, `LeaseStore`, `Inventory`) know none, and the backends know only the
//! traits, so dependencies go one way: traits ← backends ← this module.

use std::time::Duration;

use crate::compress::{self, Compression};
use crate::config::{BackendConfig, StoreConfig, Timeouts};
use crate::error::StoreError;
use crate::id::SessionId;
use crate::inventory::{Inventory, ReadError, StoredSession};
use crate::lease::LeaseStore;
use crate::mysql::MySqlStore;
use crate::redis::RedisStore;
use crate::store::SessionStore;
use crate::store::{
    ConditionalWrite, HeldLock, LockPolicy, MergeStore, ReadOutcome, Version, VersionedRead,
};

/// The store a save_path describes, not yet connected, before it is put to one use.
// One per worker, made once and kept for the process: boxing the larger variant would add
// an indirection to every request for no memory that matters.
#[allow(clippy::large_enum_variant)]
pub enum Backend {
    Redis(RedisStore),
    MySql(MySqlStore),
}

impl Backend {
    /// Opens `config`'s backend, its connection terms resolved here, once, from the URL's
    /// options and the caller's `defaults`.
    pub fn open(config: &StoreConfig, defaults: Timeouts) -> Result<Backend, StoreError> {
        let terms = config.connection(defaults);
        Ok(match &config.backend {
            BackendConfig::Redis(c) => Backend::Redis(RedisStore::new(c, terms)?),
            BackendConfig::MySql(c) => Backend::MySql(MySqlStore::new(c, terms)?),
        })
    }

    /// The session store, reading compressed frames always and writing them as
    /// `compression` says.
    pub fn into_session_store(self, compression: Compression) -> Box<dyn SessionStore> {
        let inner: Box<dyn SessionStore> = match self {
            Backend::Redis(s) => Box::new(s),
            Backend::MySql(s) => Box::new(s),
        };
        Box::new(Framed {
            inner,
            compression,
            read_limit: usize::MAX,
        })
    }

    pub fn into_lease_store(self) -> Box<dyn LeaseStore> {
        match self {
            Backend::Redis(s) => Box::new(s),
            Backend::MySql(s) => Box::new(s),
        }
    }

    pub fn into_inventory(self) -> Box<dyn Inventory> {
        match self {
            Backend::Redis(s) => Box::new(s),
            Backend::MySql(s) => Box::new(s),
        }
    }
}

/// A session store whose data passes through the compression frame (see [`compress`]): a
/// read inflates a frame whatever the option says now, a write compresses when the
/// save_path asks. Uncompressed data costs a 4-byte comparison.
struct Framed {
    inner: Box<dyn SessionStore>,
    compression: Compression,
    /// See [`SessionStore::set_read_limit`].
    read_limit: usize,
}

impl Framed {
    /// Refuses data of `size` bytes over the read limit, releasing the lock just taken:
    /// nobody can use the session in this process, but nobody must wait for it either.
    fn refuse_too_large(
        &mut self,
        id: &SessionId,
        outcome: &ReadOutcome,
        size: usize,
    ) -> StoreError {
        if let Some(lock) = &outcome.lock {
            let _ = self.inner.unlock(id, lock);
        }
        StoreError::too_large(
            self.inner.endpoint(),
            &id.abbreviated(),
            size,
            self.read_limit,
        )
    }
}

impl Framed {
    /// `stored` as the session's bytes: inflated if it is a frame, refused if it is larger
    /// than the read limit or damaged.
    fn unframe(&self, id: &SessionId, stored: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let size = compress::inflated_size(&stored);
        if size > self.read_limit {
            return Err(StoreError::too_large(
                self.inner.endpoint(),
                &id.abbreviated(),
                size,
                self.read_limit,
            ));
        }
        if !compress::is_framed(&stored) {
            return Ok(stored);
        }
        match compress::unpack(&stored) {
            Ok(data) => Ok(data.into_owned()),
            Err(damaged) => Err(StoreError::damaged(
                self.inner.endpoint(),
                &id.abbreviated(),
                Box::new(damaged),
            )),
        }
    }

    fn unframe_read(
        &self,
        id: &SessionId,
        read: VersionedRead,
    ) -> Result<VersionedRead, StoreError> {
        Ok(VersionedRead {
            data: read.data.map(|d| self.unframe(id, d)).transpose()?,
            version: read.version,
        })
    }

    fn inner_merge(&mut self) -> Result<&mut dyn MergeStore, StoreError> {
        let endpoint = self.inner.endpoint().to_owned();
        self.inner
            .as_merge()
            .ok_or_else(|| StoreError::unsupported(&endpoint, "locking=merge"))
    }
}

/// Merge mode through the frame: the versions are the stored bytes', and the data is what
/// the request sees (inflated) and gives (compressed as the save_path says).
impl MergeStore for Framed {
    fn read_versioned(&mut self, id: &SessionId) -> Result<VersionedRead, StoreError> {
        let read = self.inner_merge()?.read_versioned(id)?;
        self.unframe_read(id, read)
    }

    fn read_versioned_and_touch(
        &mut self,
        id: &SessionId,
        lifetime: Duration,
    ) -> Result<(VersionedRead, bool), StoreError> {
        let (read, touched) = self.inner_merge()?.read_versioned_and_touch(id, lifetime)?;
        Ok((self.unframe_read(id, read)?, touched))
    }

    fn read_versioned_under_lock(
        &mut self,
        id: &SessionId,
        lifetime: Duration,
    ) -> Result<VersionedRead, StoreError> {
        let read = self
            .inner_merge()?
            .read_versioned_under_lock(id, lifetime)?;
        self.unframe_read(id, read)
    }

    fn write_if_unchanged(
        &mut self,
        id: &SessionId,
        base: &Version,
        data: &[u8],
        lifetime: Duration,
    ) -> Result<ConditionalWrite, StoreError> {
        let packed = self.compression.pack(data);
        match self
            .inner_merge()?
            .write_if_unchanged(id, base, &packed, lifetime)?
        {
            ConditionalWrite::Changed(now) => {
                Ok(ConditionalWrite::Changed(self.unframe_read(id, now)?))
            }
            other => Ok(other),
        }
    }

    fn write_holding(
        &mut self,
        id: &SessionId,
        base: &Version,
        data: &[u8],
        lifetime: Duration,
        lock: &HeldLock,
    ) -> Result<ConditionalWrite, StoreError> {
        let packed = self.compression.pack(data);
        match self
            .inner_merge()?
            .write_holding(id, base, &packed, lifetime, lock)?
        {
            ConditionalWrite::Changed(now) => {
                Ok(ConditionalWrite::Changed(self.unframe_read(id, now)?))
            }
            other => Ok(other),
        }
    }

    fn refresh(&mut self, id: &SessionId, lifetime: Duration) -> Result<(), StoreError> {
        self.inner_merge()?.refresh(id, lifetime)
    }

    fn destroy_for_good(&mut self, id: &SessionId, remember: Duration) -> Result<bool, StoreError> {
        self.inner_merge()?.destroy_for_good(id, remember)
    }
}

impl SessionStore for Framed {
    fn as_merge(&mut self) -> Option<&mut dyn MergeStore> {
        match self.inner.as_merge() {
            Some(_) => Some(self),
            None => None,
        }
    }

    fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }

    fn connect(&mut self) -> Result<(), StoreError> {
        self.inner.connect()
    }

    fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    fn set_holder(&mut self, holder: &str) {
        self.inner.set_holder(holder)
    }

    fn take_notice(&mut self) -> Option<String> {
        self.inner.take_notice()
    }

    fn take_events(&mut self) -> crate::store::StoreEvents {
        self.inner.take_events()
    }

    fn lock_policy(&self, requested: LockPolicy) -> LockPolicy {
        self.inner.lock_policy(requested)
    }

    fn set_read_limit(&mut self, limit: usize) {
        self.read_limit = limit;
    }

    fn lock_and_read(
        &mut self,
        id: &SessionId,
        policy: LockPolicy,
    ) -> Result<ReadOutcome, StoreError> {
        let mut outcome = self.inner.lock_and_read(id, policy)?;
        // Checked on the size the frame declares, before inflating anything.
        let size = outcome.data.as_deref().map_or(0, compress::inflated_size);
        if size > self.read_limit {
            return Err(self.refuse_too_large(id, &outcome, size));
        }
        let Some(stored) = outcome.data.as_deref().filter(|d| compress::is_framed(d)) else {
            return Ok(outcome);
        };
        match compress::unpack(stored) {
            Ok(data) => {
                outcome.data = Some(data.into_owned());
                Ok(outcome)
            }
            Err(damaged) => {
                // Nobody can use the session, but nobody must wait for it either.
                if let Some(lock) = &outcome.lock {
                    let _ = self.inner.unlock(id, lock);
                }
                Err(StoreError::damaged(
                    self.inner.endpoint(),
                    &id.abbreviated(),
                    Box::new(damaged),
                ))
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
        let packed = self.compression.pack(data);
        self.inner.write_and_unlock(id, &packed, lifetime, lock)
    }

    fn touch_and_unlock(
        &mut self,
        id: &SessionId,
        lifetime: Duration,
        lock: Option<&HeldLock>,
    ) -> Result<(), StoreError> {
        self.inner.touch_and_unlock(id, lifetime, lock)
    }

    fn unlock(&mut self, id: &SessionId, lock: &HeldLock) -> Result<(), StoreError> {
        self.inner.unlock(id, lock)
    }

    fn destroy(&mut self, id: &SessionId, lock: Option<&HeldLock>) -> Result<(), StoreError> {
        self.inner.destroy(id, lock)
    }

    fn exists(&mut self, id: &SessionId) -> Result<bool, StoreError> {
        self.inner.exists(id)
    }

    fn gc(&mut self, lifetime: Duration) -> Result<u64, StoreError> {
        self.inner.gc(lifetime)
    }
}

/// The session store a parsed save_path describes, not yet connected.
pub fn open_store(
    config: &StoreConfig,
    timeouts: Timeouts,
) -> Result<Box<dyn SessionStore>, StoreError> {
    let compression = config.compression();
    Backend::open(config, timeouts).map(|b| b.into_session_store(compression))
}

/// The lease store a parsed save_path describes (for `fleetctl run-once` and PHP leases),
/// not yet connected.
pub fn open_lease_store(
    config: &StoreConfig,
    timeouts: Timeouts,
) -> Result<Box<dyn LeaseStore>, StoreError> {
    Backend::open(config, timeouts).map(Backend::into_lease_store)
}

/// The inventory of a parsed save_path's store (listing, reading, copying sessions), not
/// yet connected.
pub fn open_inventory(
    config: &StoreConfig,
    timeouts: Timeouts,
) -> Result<Box<dyn Inventory>, StoreError> {
    Backend::open(config, timeouts).map(Backend::into_inventory)
}

/// Reads the PHP session `id` from the store `save_path` names (written exactly as in
/// php.ini), without locking it: what a Rust service needs to honour the PHP application's
/// login. `Ok(None)` when there is no such session (never created, expired or destroyed).
///
/// ```no_run
/// use fleet_core::codec::PhpValue;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cookie = "hk3s9q0r1v5m2o8b7c4d6e0f1a"; // the PHPSESSID the browser sent
/// let session = fleet_core::read_session("redis://127.0.0.1:6379?prefix=app:", cookie)?;
/// let user = session
///     .map(|s| s.decode())
///     .transpose()?
///     .and_then(|vars| vars.get("user_id").cloned());
/// match user {
///     Some(PhpValue::Int(id)) => println!("logged in as user {id}"),
///     _ => println!("not logged in"),
/// }
/// # Ok(())
/// # }
/// ```
pub fn read_session(save_path: &str, id: &str) -> Result<Option<StoredSession>, ReadError> {
    let config = crate::config::parse_save_path(save_path)?;
    let id = SessionId::parse(id.as_bytes())?;
    let mut inventory = open_inventory(&config, Timeouts::default())?;
    Ok(inventory.fetch(&id)?)
}
