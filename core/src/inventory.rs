//! What is in a store, for operators and migrations rather than requests: counting, paging
//! through, reading, copying in and deleting sessions (`fleetctl sessions`, `fleetctl copy`,
//! and [`crate::read_session`] for a Rust service that shares a PHP application's login).
//!
//! Paging never blocks a server: Redis is walked with `SCAN` (never `KEYS`), on every master
//! of a cluster; MySQL by primary key in bounded pages.

use std::time::Duration;

use crate::codec::{self, SessionVars};
use crate::error::StoreError;
use crate::id::SessionId;

/// One session as listed: its id, the size of its data, and its remaining lifetime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The session id.
    pub id: String,
    /// The size of its stored data, in bytes (compressed, if it is).
    pub size: u64,
    /// `None`: stored without expiry.
    pub ttl: Option<Duration>,
    /// The data, when the page was asked for with it.
    pub data: Option<Vec<u8>>,
}

/// Where a page ends; pass it back for the next page. Opaque outside the backend.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cursor(pub String);

/// A stored session, read without taking its lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSession {
    /// The data as PHP wrote it (decompressed).
    pub data: Vec<u8>,
    /// `None`: stored without expiry.
    pub ttl: Option<Duration>,
}

impl StoredSession {
    /// The session data as PHP wrote it: inflated if it was stored compressed.
    pub fn inflated(&self) -> Result<std::borrow::Cow<'_, [u8]>, crate::compress::DamagedFrame> {
        crate::compress::unpack(&self.data)
    }

    /// The session's variables; the format is recognised (`php` or `php_serialize`).
    pub fn decode(&self) -> Result<SessionVars, codec::DecodeError> {
        let data = self.inflated().map_err(|e| codec::DecodeError {
            format: "compressed",
            position: 0,
            reason: e.to_string(),
        })?;
        codec::decode_any(&data)
    }
}

/// Whether a request holds a session's lock now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockState {
    /// Nobody holds it.
    Free,
    /// Held; the lock ends in `ttl` unless its holder renews it (Redis).
    Held {
        /// Time left on the lock, if the server tells.
        ttl: Option<Duration>,
    },
    /// Held by the MySQL connection with this id (`SHOW PROCESSLIST` names its host).
    HeldByConnection {
        /// The holder's `CONNECTION_ID()`.
        connection_id: u64,
    },
    /// This backend cannot tell cheaply (MySQL row locks).
    Unknown,
}

/// Reading and changing a store's sessions one by one, outside any request.
pub trait Inventory {
    /// Where the store is, for messages; never contains credentials.
    fn endpoint(&self) -> &str;

    /// The next page of at most about `limit` sessions after `cursor` (`None` to start), and
    /// the cursor of the page after it (`None` at the end). With `with_data` each entry
    /// carries its data (for copying).
    fn page(
        &mut self,
        cursor: Option<&Cursor>,
        limit: usize,
        with_data: bool,
    ) -> Result<(Vec<Listed>, Option<Cursor>), StoreError>;

    /// Reads one session, without locking it.
    fn fetch(&mut self, id: &SessionId) -> Result<Option<StoredSession>, StoreError>;

    /// Whether the session's lock is held.
    fn lock_state(&mut self, id: &SessionId) -> Result<LockState, StoreError>;

    /// Stores a session for `ttl` unless one is stored under `id`; says whether it did.
    fn insert_if_absent(
        &mut self,
        id: &SessionId,
        data: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Deletes one session (not its lock: a request holding it finishes normally and finds
    /// it gone); says whether there was one.
    fn remove(&mut self, id: &SessionId) -> Result<bool, StoreError>;

    /// How many sessions are stored (walks the whole store).
    fn count(&mut self) -> Result<u64, StoreError> {
        let mut total = 0;
        let mut cursor = None;
        loop {
            let (page, next) = self.page(cursor.as_ref(), 1000, false)?;
            total += page.len() as u64;
            match next {
                Some(c) => cursor = Some(c),
                None => return Ok(total),
            }
        }
    }
}

/// Why [`crate::read_session`] could not read a session.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    /// The save_path cannot be used.
    Config(#[from] crate::error::ConfigError),
    #[error(transparent)]
    /// The store failed.
    Store(#[from] StoreError),
    #[error("session id rejected: {0}")]
    /// The id is not a session id.
    InvalidId(#[from] crate::id::InvalidId),
}
