//! The inventory through the same frames as requests (sealed data opened, ids hashed), and
//! `rekey`: every stored session sealed again with the first key of `encryption_key_file`.

use std::sync::Arc;
use std::time::Duration;

use crate::error::StoreError;
use crate::id::SessionId;
use crate::inventory::{Cursor, Inventory, Listed, LockState, StoredSession};
use crate::seal::{self, Sealing};
use crate::store::{ConditionalWrite, SessionStore};

/// An inventory whose ids are hashed on the way in (hash_ids=1) and whose sealed data is
/// opened on the way out and sealed on the way in. What it lists are the stored names:
/// with hash_ids=1, HMACs that no request can use as a cookie.
pub(super) struct SealedInventory {
    pub(super) inner: Box<dyn Inventory>,
    pub(super) sealing: Arc<Sealing>,
}

impl SealedInventory {
    /// `stored`, read under `name`, opened if sealed (still compressed, if it was).
    fn open(&self, name: &str, stored: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let opened = match (&self.sealing.keys, seal::is_sealed(&stored)) {
            (Some(keys), true) => keys.open(name, &stored),
            (None, true) => Err(seal::without_keys(&stored)),
            (_, false) if self.sealing.required && !stored.is_empty() => Err(seal::Unsealed::Clear),
            (_, false) => return Ok(stored),
        };
        let abbreviated = SessionId::parse(name.as_bytes())
            .map(|id| id.abbreviated())
            .unwrap_or_default();
        opened
            .map_err(|why| StoreError::damaged(self.inner.endpoint(), &abbreviated, Box::new(why)))
    }
}

impl Inventory for SealedInventory {
    fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }

    fn page(
        &mut self,
        cursor: Option<&Cursor>,
        limit: usize,
        with_data: bool,
    ) -> Result<(Vec<Listed>, Option<Cursor>), StoreError> {
        let (page, next) = self.inner.page(cursor, limit, with_data)?;
        let page = page
            .into_iter()
            .map(|listed| {
                let data = match listed.data {
                    Some(stored) => Some(self.open(&listed.id, stored)?),
                    None => None,
                };
                Ok(Listed { data, ..listed })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((page, next))
    }

    fn fetch(&mut self, id: &SessionId) -> Result<Option<StoredSession>, StoreError> {
        let name = self.sealing.name(id).into_owned();
        match self.inner.fetch(&name)? {
            Some(stored) => Ok(Some(StoredSession {
                data: self.open(name.as_str(), stored.data)?,
                ttl: stored.ttl,
            })),
            None => Ok(None),
        }
    }

    fn lock_state(&mut self, id: &SessionId) -> Result<LockState, StoreError> {
        let name = self.sealing.name(id).into_owned();
        self.inner.lock_state(&name)
    }

    fn insert_if_absent(
        &mut self,
        id: &SessionId,
        data: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let name = self.sealing.name(id).into_owned();
        if seal::is_sealed(data) {
            // Sealed again, a read would hand PHP the inner frame as its session.
            return Err(StoreError::damaged(
                self.inner.endpoint(),
                &id.abbreviated(),
                crate::error::cause(
                    "the data to copy is encrypted: give the source store its encryption_key_file, so it is copied decrypted",
                ),
            ));
        }
        let sealed;
        let data = match &self.sealing.keys {
            Some(keys) => {
                sealed = keys
                    .seal(name.as_str(), data)
                    .map_err(|e| StoreError::system("encrypting the session", Box::new(e)))?;
                &sealed[..]
            }
            None => data,
        };
        self.inner.insert_if_absent(&name, data, ttl)
    }

    fn remove(&mut self, id: &SessionId) -> Result<bool, StoreError> {
        let name = self.sealing.name(id).into_owned();
        self.inner.remove(&name)
    }
}

/// What one page of [`Rekey::page`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RekeyCounts {
    /// Sealed again with the first key (or sealed for the first time).
    pub rekeyed: u64,
    /// Already sealed with the first key.
    pub current: u64,
    /// Written, destroyed or expired since they were read (a request's write seals with
    /// the key it has), or their lock was held: left to the next run.
    pub changed: u64,
    /// Sealed with a key not in the file, or changed by something else than Fleet: left
    /// as they are.
    pub unreadable: u64,
    /// Stored without expiry, which Fleet never does: keys under the prefix that are not
    /// Fleet's sessions, left as they are.
    pub skipped: u64,
}

impl std::ops::AddAssign for RekeyCounts {
    fn add_assign(&mut self, other: RekeyCounts) {
        self.rekeyed += other.rekeyed;
        self.current += other.current;
        self.changed += other.changed;
        self.unreadable += other.unreadable;
        self.skipped += other.skipped;
    }
}

/// `fleetctl sessions rekey`: walks the store in pages and seals each session again with
/// the first key, each with one conditional write (merge mode's), so a session a request
/// wrote meanwhile is never overwritten with what was read before.
pub struct Rekey {
    pub(super) inventory: Box<dyn Inventory>,
    pub(super) store: Box<dyn SessionStore>,
    pub(super) sealing: Arc<Sealing>,
}

impl Rekey {
    /// Where the store is, for messages.
    pub fn endpoint(&self) -> &str {
        self.inventory.endpoint()
    }

    /// Re-seals the next page of at most about `limit` sessions after `cursor`.
    pub fn page(
        &mut self,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<(RekeyCounts, Option<Cursor>), StoreError> {
        let endpoint = self.inventory.endpoint().to_owned();
        let Some(keys) = self.sealing.keys.as_ref() else {
            return Err(StoreError::unsupported(
                &endpoint,
                "rekey without encryption_key_file= in --store",
            ));
        };
        let (page, next) = self.inventory.page(cursor, limit, false)?;
        let Some(merging) = self.store.as_merge() else {
            return Err(StoreError::unsupported(&endpoint, "conditional writes"));
        };
        let mut counts = RekeyCounts::default();
        for listed in page {
            let Ok(name) = SessionId::parse(listed.id.as_bytes()) else {
                continue;
            };
            let Some(ttl) = listed.ttl else {
                counts.skipped += 1;
                continue;
            };
            let read = merging.read_versioned(&name)?;
            let Some(stored) = read.data else {
                counts.changed += 1;
                continue;
            };
            if keys.is_current(&stored) {
                counts.current += 1;
                continue;
            }
            let plain = match seal::is_sealed(&stored) {
                true => match keys.open(name.as_str(), &stored) {
                    Ok(plain) => plain,
                    Err(_) => {
                        counts.unreadable += 1;
                        continue;
                    }
                },
                false => stored,
            };
            let sealed = keys
                .seal(name.as_str(), &plain)
                .map_err(|e| StoreError::system("encrypting the session", Box::new(e)))?;
            let lifetime = ttl.max(Duration::from_secs(1));
            match merging.write_if_unchanged(&name, &read.version, &sealed, lifetime)? {
                ConditionalWrite::Written => counts.rekeyed += 1,
                _ => counts.changed += 1,
            }
        }
        Ok((counts, next))
    }
}
