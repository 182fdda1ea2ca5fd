//! Fleet core: PHP sessions shared between servers, with correct locking.
//!
//! No PHP in here: this crate is what the `fleet` PHP extension and `fleetctl` are built
//! on, and what another Rust service uses to read PHP sessions.
//!
//! A Rust service behind the same load balancer reads a PHP application's session (its
//! login) with [`read_session`], given the store URL exactly as php.ini's
//! `session.save_path` and the `PHPSESSID` the browser sent:
//!
//! ```no_run
//! use fleet_core::codec::PhpValue;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let session = fleet_core::read_session("redis://10.0.0.5:6379?prefix=app:", "hk3s9q0r1v5m2o8b")?;
//! match session.map(|s| s.decode()).transpose()?.and_then(|vars| vars.get("user_id").cloned()) {
//!     Some(PhpValue::Int(id)) => println!("logged in as user {id}"),
//!     _ => println!("not logged in"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! A store error carries an [`ErrorKind`] to decide on:
//!
//! ```no_run
//! # fn main() {
//! match fleet_core::read_session("redis://10.0.0.5:6379", "hk3s9q0r1v5m2o8b") {
//!     Err(fleet_core::inventory::ReadError::Store(e)) if e.kind() == fleet_core::ErrorKind::TimedOut => {
//!         eprintln!("the store is slow: {e}");
//!     }
//!     other => println!("{other:?}"),
//! }
//! # }
//! ```
//!
//! The modules:
//!
//! - [`config`]: `session.save_path` parsed into a typed [`StoreConfig`].
//! - `id`: session id validation; a [`SessionId`] is safe to put in a key.
//! - [`compress`]: compression of large sessions (LZ4, Zstandard) in a self-describing frame.
//! - [`codec`]: PHP's session formats (`php`, `php_serialize`) decoded into values.
//! - [`inventory`]: counting, listing, reading and copying sessions outside requests, and
//!   [`read_session`] for a Rust service that shares a PHP application's login.
//! - [`seal`]: sessions at rest: encryption of stored data (XChaCha20-Poly1305, key
//!   rotation) and session ids hashed before they reach the store.
//! - [`merge`]: the three-way merge of a session per top-level variable, for writes that did
//!   not hold its lock.
//! - [`lease`]: time-bounded exclusive ownership, the basis of session locks and of named
//!   leases ([`LeaseStore`], `fleetctl run-once`), and their renewal.
//! - `store`: the [`SessionStore`] trait every backend implements.
//! - `open`: from a parsed save_path to a store ([`open_store`], [`open_lease_store`],
//!   [`open_inventory`]) and [`read_session`].
//! - `redis`: the Redis backend (standalone, TLS, unix socket, Sentinel).
//! - `mysql`: the MySQL/MariaDB backend (one host or a failover list).
//! - `process`: this process's id without a system call each time ([`process_id`]).
//! - `keeper` (internal): the one connection a worker keeps, and what a failed step
//!   means for it (reconnect, retry once, follow a failover), for every backend.
//! - `error` (private; its types are re-exported): [`StoreError`], one error type with an
//!   [`ErrorKind`], the endpoint, the source error and a message of facts (the programs add
//!   advice in their own terms), and [`ConfigError`] for a store URL that cannot be used.

#![warn(missing_docs)]

pub mod codec;
pub mod compress;
pub mod config;
mod error;
mod id;
pub mod inventory;
mod keeper;
pub mod lease;
pub mod merge;
mod mysql;
mod open;
mod process;
mod redis;
pub mod seal;
mod store;

pub use config::{
    parse_save_path, set_file_guard, BackendConfig, ConnectionTerms, Locking, MySqlConfig,
    MySqlLockMode, RedisConfig, StoreConfig, Timeouts,
};
pub use error::{lock_lost_text, ConfigError, ErrorKind, LockLoss, StoreError};
pub use id::{InvalidId, SessionId, MAX_ID_LEN};
pub use inventory::{Inventory, StoredSession};
pub use lease::{Holder, LeaseStore, LeaseTerms, LeaseTicket, LeaseToken, Slot, Taken};
pub use open::{
    open_inventory, open_lease_store, open_rekey, open_store, read_session, Rekey, RekeyCounts,
};
pub use process::id as process_id;
pub use store::{
    ConditionalWrite, HeldLock, LockPolicy, MergeStore, ReadOutcome, SessionStore, StoreEvents,
    Version, VersionedRead,
};

// The backends' stores, for code that needs one backend's own steps (tests, benches);
// everything else opens a store through `open_store` and friends.
pub use mysql::{create_table_sql, schema_script, MySqlStore, GC_MARKER_ID};
pub use redis::RedisStore;
