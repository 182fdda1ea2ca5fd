//! From a parsed save_path to a store: the one place that knows every backend. The traits
//! (`SessionStore`, `LeaseStore`, `Inventory`) know none, and the backends know only the
//! traits, so dependencies go one way: traits ← backends ← this module.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use crate::compress::{self, Compression};
use crate::config::{BackendConfig, StoreConfig, Timeouts};
use crate::error::StoreError;
use crate::id::SessionId;
use crate::inventory::{Inventory, ReadError, StoredSession};
use crate::lease::LeaseStore;

mod at_rest;
use crate::mysql::MySqlStore;
use crate::redis::RedisStore;
use crate::seal::{self, Sealing};
use crate::store::SessionStore;
use crate::store::{
    ConditionalWrite, HeldLock, LockPolicy, MergeStore, ReadOutcome, Version, VersionedRead,
};
pub use at_rest::{Rekey, RekeyCounts};

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

    /// The session store, reading sealed and compressed frames always and writing them as
    /// `compression` and `sealing` say.
    pub fn into_session_store(
        self,
        compression: Compression,
        sealing: Arc<Sealing>,
    ) -> Box<dyn SessionStore> {
        let inner: Box<dyn SessionStore> = match self {
            Backend::Redis(s) => Box::new(s),
            Backend::MySql(s) => Box::new(s),
        };
        Box::new(Framed {
            inner,
            compression,
            sealing,
            read_limit: usize::MAX,
            unreadable: None,
            notice: None,
            last_name: std::cell::RefCell::new(None),
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

    /// The backend's own session store: stored bytes and names as they are, no frames.
    fn into_raw_session_store(self) -> Box<dyn SessionStore> {
        match self {
            Backend::Redis(s) => Box::new(s),
            Backend::MySql(s) => Box::new(s),
        }
    }
}

/// A session store whose data passes through the frames (see [`compress`] and [`seal`]): a
/// read opens a sealed frame and inflates a compressed one whatever the options say now; a
/// write compresses, then seals, as the save_path asks. With `hash_ids=1` every step reaches
/// the backend under the id's HMAC, never the id. Plain data costs a 4-byte comparison.
struct Framed {
    inner: Box<dyn SessionStore>,
    compression: Compression,
    sealing: Arc<Sealing>,
    /// See [`SessionStore::set_read_limit`].
    read_limit: usize,
    /// The stored name of the session the last read could not decrypt: that request sees it
    /// empty, and an empty write leaves it as it is (only new data replaces it).
    unreadable: Option<SessionId>,
    /// Why, for the warning ([`SessionStore::take_notice`]).
    notice: Option<String>,
    /// The last id hashed and its name (hash_ids=1): a request's steps all name one session,
    /// and an HMAC costs a microsecond.
    last_name: std::cell::RefCell<Option<(SessionId, SessionId)>>,
}

impl Framed {
    /// The name session `id` has in the backend: the id, or its HMAC with hash_ids=1.
    fn name(&self, id: &SessionId) -> SessionId {
        if self.sealing.hasher.is_none() {
            return id.clone();
        }
        let mut last = self.last_name.borrow_mut();
        match &*last {
            Some((hashed, name)) if hashed == id => name.clone(),
            _ => {
                let name = self.sealing.name(id).into_owned();
                *last = Some((id.clone(), name.clone()));
                name
            }
        }
    }

    /// What to store for `data` under `name`: compressed as the save_path says, then sealed
    /// if it has keys.
    fn pack<'a>(&self, name: &SessionId, data: &'a [u8]) -> Result<Cow<'a, [u8]>, StoreError> {
        let packed = self.compression.pack(data);
        match &self.sealing.keys {
            None => Ok(packed),
            Some(keys) => keys
                .seal(name.as_str(), &packed)
                .map(Cow::Owned)
                .map_err(|e| StoreError::system("encrypting the session", Box::new(e))),
        }
    }

    /// `stored` as the session's bytes: opened if sealed, inflated if compressed; refused if
    /// larger than the read limit or damaged. On a request's read (`Step::Read`) a sealed
    /// frame that does not open (or, with require_encryption=1, data stored in the clear) is
    /// the empty session, with a warning, and is remembered so that a write of nothing new
    /// leaves it alone. Inside a merge's write (`Step::Merging`) it is an error: taking it
    /// for empty would read as "the other request unset every variable".
    fn unframe(
        &mut self,
        id: &SessionId,
        name: &SessionId,
        stored: Vec<u8>,
        step: Step,
    ) -> Result<Vec<u8>, StoreError> {
        let endpoint = self.inner.endpoint();
        if seal::is_sealed(&stored) && stored.len() > self.read_limit.saturating_add(seal::OVERHEAD)
        {
            // The data inside is at least this long: refused before anything is decrypted.
            return Err(StoreError::too_large(
                endpoint,
                &id.abbreviated(),
                stored.len() - seal::OVERHEAD,
                self.read_limit,
            ));
        }
        let opened = match (&self.sealing.keys, seal::is_sealed(&stored)) {
            (Some(keys), true) => keys.open(name.as_str(), &stored),
            (None, true) => Err(seal::without_keys(&stored)),
            (_, false) if self.sealing.required && !stored.is_empty() => Err(seal::Unsealed::Clear),
            (_, false) => Ok(stored),
        };
        let stored = match (opened, step) {
            (Ok(opened), _) => opened,
            (Err(why), Step::Merging) => {
                return Err(StoreError::damaged(
                    endpoint,
                    &id.abbreviated(),
                    Box::new(seal::Undecryptable(why)),
                ))
            }
            (Err(why), Step::Read) => {
                self.notice = Some(format!(
                    "{endpoint}: session {}: {why}; this request sees the session empty, and it is left as it is unless the request stores new data. Check that every server has the same encryption_key_file (a key removed from it must stay until `fleetctl sessions rekey` has run)",
                    id.abbreviated()
                ));
                self.unreadable = Some(name.clone());
                return Ok(Vec::new());
            }
        };
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

    /// A read's data through [`Framed::unframe`].
    fn unframe_read(
        &mut self,
        id: &SessionId,
        name: &SessionId,
        read: VersionedRead,
        step: Step,
    ) -> Result<VersionedRead, StoreError> {
        Ok(VersionedRead {
            data: read
                .data
                .map(|d| self.unframe(id, name, d, step))
                .transpose()?,
            version: read.version,
        })
    }

    /// Before a read: nothing is known yet about this one.
    fn forget_unreadable(&mut self) {
        self.unreadable = None;
        self.notice = None;
    }

    /// Whether a write of `data` for `name` would replace a session this request could not
    /// decrypt with nothing new: no variables, in whichever serializer wrote them.
    fn keeps_unreadable(&self, name: &SessionId, data: &[u8]) -> bool {
        self.unreadable.as_ref() == Some(name) && holds_no_variables(data)
    }

    fn inner_merge(&mut self) -> Result<&mut dyn MergeStore, StoreError> {
        let endpoint = self.inner.endpoint().to_owned();
        self.inner
            .as_merge()
            .ok_or_else(|| StoreError::unsupported(&endpoint, "locking=merge"))
    }
}

/// Where [`Framed::unframe`] meets stored data.
#[derive(Clone, Copy)]
enum Step {
    /// A request's read: what it sees as its session.
    Read,
    /// What another request stored, met inside a merge's write.
    Merging,
}

/// An empty `$_SESSION` as PHP's serializers write it: `php` (nothing), `php_serialize`
/// (`a:0:{}`), igbinary (its version 2 header, then an empty array).
fn holds_no_variables(data: &[u8]) -> bool {
    matches!(data, b"" | b"a:0:{}" | b"\0\0\0\x02\x14\0")
}

/// Merge mode through the frame: the versions are the stored bytes', and the data is what
/// the request sees (inflated) and gives (compressed as the save_path says).
impl MergeStore for Framed {
    fn read_versioned(&mut self, id: &SessionId) -> Result<VersionedRead, StoreError> {
        let name = self.name(id);
        self.forget_unreadable();
        let read = self.inner_merge()?.read_versioned(&name)?;
        self.unframe_read(id, &name, read, Step::Read)
    }

    fn read_versioned_and_touch(
        &mut self,
        id: &SessionId,
        lifetime: Duration,
    ) -> Result<(VersionedRead, bool), StoreError> {
        let name = self.name(id);
        self.forget_unreadable();
        let (read, touched) = self
            .inner_merge()?
            .read_versioned_and_touch(&name, lifetime)?;
        Ok((self.unframe_read(id, &name, read, Step::Read)?, touched))
    }

    fn read_versioned_under_lock(
        &mut self,
        id: &SessionId,
        lifetime: Duration,
    ) -> Result<VersionedRead, StoreError> {
        let name = self.name(id);
        let read = self
            .inner_merge()?
            .read_versioned_under_lock(&name, lifetime)?;
        self.unframe_read(id, &name, read, Step::Merging)
    }

    fn write_if_unchanged(
        &mut self,
        id: &SessionId,
        base: &Version,
        data: &[u8],
        lifetime: Duration,
    ) -> Result<ConditionalWrite, StoreError> {
        let name = self.name(id);
        let packed = self.pack(&name, data)?;
        match self
            .inner_merge()?
            .write_if_unchanged(&name, base, &packed, lifetime)?
        {
            ConditionalWrite::Changed(now) => Ok(ConditionalWrite::Changed(self.unframe_read(
                id,
                &name,
                now,
                Step::Merging,
            )?)),
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
        let name = self.name(id);
        let packed = self.pack(&name, data)?;
        match self
            .inner_merge()?
            .write_holding(&name, base, &packed, lifetime, lock)?
        {
            ConditionalWrite::Changed(now) => Ok(ConditionalWrite::Changed(self.unframe_read(
                id,
                &name,
                now,
                Step::Merging,
            )?)),
            other => Ok(other),
        }
    }

    fn refresh(&mut self, id: &SessionId, lifetime: Duration) -> Result<(), StoreError> {
        let name = self.name(id);
        self.inner_merge()?.refresh(&name, lifetime)
    }

    fn destroy_for_good(&mut self, id: &SessionId, remember: Duration) -> Result<bool, StoreError> {
        let name = self.name(id);
        self.inner_merge()?.destroy_for_good(&name, remember)
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
        self.notice.take().or_else(|| self.inner.take_notice())
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
        let name = self.name(id);
        self.forget_unreadable();
        let mut outcome = self.inner.lock_and_read(&name, policy)?;
        let Some(stored) = outcome.data.take() else {
            return Ok(outcome);
        };
        match self.unframe(id, &name, stored, Step::Read) {
            Ok(data) => {
                outcome.data = Some(data);
                Ok(outcome)
            }
            Err(e) => {
                // Nobody can use the session in this process, but nobody must wait for it
                // either.
                if let Some(lock) = &outcome.lock {
                    let _ = self.inner.unlock(&name, lock);
                }
                Err(e)
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
        let name = self.name(id);
        if self.keeps_unreadable(&name, data) {
            return self.inner.touch_and_unlock(&name, lifetime, lock);
        }
        let packed = self.pack(&name, data)?;
        self.inner.write_and_unlock(&name, &packed, lifetime, lock)
    }

    fn touch_and_unlock(
        &mut self,
        id: &SessionId,
        lifetime: Duration,
        lock: Option<&HeldLock>,
    ) -> Result<(), StoreError> {
        let name = self.name(id);
        self.inner.touch_and_unlock(&name, lifetime, lock)
    }

    fn unlock(&mut self, id: &SessionId, lock: &HeldLock) -> Result<(), StoreError> {
        let name = self.name(id);
        self.inner.unlock(&name, lock)
    }

    fn destroy(&mut self, id: &SessionId, lock: Option<&HeldLock>) -> Result<(), StoreError> {
        let name = self.name(id);
        self.inner.destroy(&name, lock)
    }

    fn exists(&mut self, id: &SessionId) -> Result<bool, StoreError> {
        let name = self.name(id);
        self.inner.exists(&name)
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
    let sealing = config.common.sealing.clone();
    Backend::open(config, timeouts).map(|b| b.into_session_store(compression, sealing))
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
/// yet connected. With `encryption_key_file=` its data is opened and sealed; with
/// `hash_ids=1` ids given to it are hashed, and it lists the stored names.
pub fn open_inventory(
    config: &StoreConfig,
    timeouts: Timeouts,
) -> Result<Box<dyn Inventory>, StoreError> {
    let inner = Backend::open(config, timeouts).map(Backend::into_inventory)?;
    let sealing = config.common.sealing.clone();
    if sealing.is_off() {
        return Ok(inner);
    }
    Ok(Box::new(at_rest::SealedInventory { inner, sealing }))
}

/// `fleetctl sessions rekey` for a parsed save_path (which names the keys), not yet
/// connected.
pub fn open_rekey(config: &StoreConfig, timeouts: Timeouts) -> Result<Rekey, StoreError> {
    Ok(Rekey {
        inventory: Backend::open(config, timeouts).map(Backend::into_inventory)?,
        store: Backend::open(config, timeouts).map(Backend::into_raw_session_store)?,
        sealing: config.common.sealing.clone(),
    })
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
