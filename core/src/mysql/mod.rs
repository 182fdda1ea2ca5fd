//! The MySQL/MariaDB backend: sessions in one InnoDB table.
//!
//! Every statement that carries a value is a server-side prepared statement (the binary
//! protocol, cached per connection), so an id or session data never becomes SQL text. The
//! table name is the only thing spliced into SQL, and the config accepts only plain
//! identifiers for it. The binary protocol carries one statement per round trip, which is
//! what the per-request round trips below follow from.
//!
//! Locking (`lock=` in save_path):
//!
//! - `advisory` (default): `GET_LOCK` on a name derived from database, table and id. The
//!   server waits for the lock on the client's behalf and releases it when the holding
//!   connection ends, so a killed worker frees its sessions at once. Round trips: `GET_LOCK`,
//!   `SELECT`, then `INSERT … ON DUPLICATE KEY UPDATE` (or `UPDATE` for lazy_write) and
//!   `RELEASE_LOCK`. With Fleet's stored procedures (`procedures=auto`, the default, where
//!   the user may create or execute them), the same statements run inside two `CALL`s: one
//!   round trip to lock and read, one to write and unlock. A `CALL` is a prepared statement
//!   with bound parameters like any other, so nothing is spliced into SQL there either.
//! - `row`: a transaction holding the row lock (`SELECT … FOR UPDATE`), committed by the
//!   write. For servers where named locks are unsuitable (Galera does not replicate them);
//!   a waiter waits on InnoDB's lock queue, and the lock ends with the transaction. Round
//!   trips: `START TRANSACTION`, `SELECT … FOR UPDATE` (plus an insert for a new session so
//!   there is a row to lock), the write, `COMMIT`.
//! - `none`: no locking; last writer wins.
//!
//! Expiry is a column of Unix seconds on the server's clock, so app servers with skewed
//! clocks agree. Reads ignore expired rows; `gc` deletes them in bounded batches.
//!
//! PHP calls `gc` in the middle of a request, right after the read, while the request holds
//! its lock. So `gc` then runs on a short-lived connection of its own: inside a `lock=row`
//! transaction its `DELETE` would lock other requests' rows, deadlock with them, and the
//! rollback would end the request's row lock; and a `DELETE` that waits past the read
//! timeout would drop the connection holding either kind of lock. In `lock=row`, every
//! failed statement on the locking connection counts as a possible rollback (deadlock,
//! `innodb_rollback_on_timeout`), and the write that follows refuses with `LockLost`
//! instead of running unlocked.

use std::time::{Duration, Instant};

use ::mysql::prelude::Queryable;
use ::mysql::{Conn, Error as MySqlError, OptsBuilder, SslOpts};

pub(crate) use crate::config::MAX_TABLE_FOR_PROCEDURES;
use crate::config::{ConnectionTerms, MySqlConfig, MySqlLockMode};
use crate::error::StoreError;
use crate::id::SessionId;
use crate::keeper::{Keeper, Retry};
use crate::store::{HeldLock, LockPolicy, ReadOutcome, SessionStore};

/// `lock=advisory`: named locks, through the stored procedures where usable.
mod advisory;
/// Finding the writable host of a list, opening and checking its connection.
mod connect;
/// The driver's errors as ones an admin can act on.
mod errors;
/// Deleting expired rows: PHP's gc and the automatic `gc_interval` run.
mod gc;
/// Listing and reading stored sessions (`fleetctl sessions`, `copy`).
mod inventory;
/// Named leases in `fleet_leases`.
mod lease;
/// Merge mode: versioned reads, conditional writes, tombstones.
mod merge;
/// `lock=row`: the row lock of a transaction.
mod row;
/// The DDL: the sessions table, its procedures, the leases table.
mod schema;
/// The statements' texts and their per-connection prepared forms.
mod statements;

use connect::MySqlConnector;
use errors::classify;
pub use gc::GC_MARKER_ID;
use row::ROW_WAIT_SLICE_SECS;
pub use schema::{create_procedures_sql, create_table_sql, schema_script, LEASES_TABLE_SQL};
use statements::{ProcedureCalls, StatementTexts, Statements};

/// A session store on one MySQL/MariaDB database, holding the one connection a worker needs
/// (a PHP worker runs one request at a time), kept across requests and re-opened after a
/// failure (see `keeper`), to one host or the first writable host of a list.
///
/// This is a pool of one managed here rather than the driver's `Pool` or r2d2: the driver's
/// pool takes back a connection that broke mid-request and hands it out again, and r2d2
/// opens connections on background threads and reports a refused connection only after
/// waiting out its timeout. Neither fits a single-threaded worker that must fail fast.
pub struct MySqlStore {
    keeper: Keeper<MySqlConnector>,
    mode: MySqlLockMode,
    /// `database.table:`, the part of every lock name that is not the id.
    lock_scope: String,
    /// The sessions table (checked by the config parser: safe to quote with backticks).
    table: String,
    /// Automatic gc runs since the last `take_events`.
    gc_events: crate::store::StoreEvents,
    /// Whether this store has made sure `fleet_leases` exists.
    leases_table_made: bool,
    /// `gc_interval`, and when this worker next asks whether a run is due.
    gc_interval: Option<Duration>,
    next_gc_check: Instant,
    /// Whether this worker has made sure the gc marker row exists.
    gc_marker_made: bool,
    /// What went wrong without failing the request (a failed automatic gc).
    notice: Option<String>,
    /// The session the current request has locked, from `lock_and_read` to the step that
    /// ends the request.
    locked: Option<Locked>,
    /// Opens the connection PHP's gc runs on while a request holds a lock (see the module
    /// doc): the same hosts and credentials, READ COMMITTED and 1 s lock waits whatever
    /// `lock=` is, so its `DELETE` gives up on a locked row within its read timeout.
    gc_connector: MySqlConnector,
    /// The texts of the gc statements (find, delete), run there.
    gc_sql: (String, String),
}

/// What the store knows about the lock the current request holds.
struct Locked {
    session: String,
    taken: Instant,
    /// `lock=row`: no statement has failed on the connection since the transaction took
    /// the row lock. A failure may have rolled the transaction back (a deadlock always does,
    /// a lock wait timeout does with `innodb_rollback_on_timeout`), and with it the lock, so
    /// after one the request must not write: autocommit would store it unlocked.
    intact: bool,
}

impl MySqlStore {
    /// Prepares a store; connects lazily on first use.
    pub fn new(config: &MySqlConfig, terms: ConnectionTerms) -> Result<MySqlStore, StoreError> {
        let timeouts = terms.timeouts;
        // A row-lock wait blocks a statement for up to a whole second (InnoDB counts whole
        // seconds), so that connection's replies may take that much longer. Named-lock waits
        // are sliced to fit within the command timeout instead.
        let read_timeout = match config.lock {
            MySqlLockMode::Row => timeouts.command + Duration::from_secs(ROW_WAIT_SLICE_SECS),
            _ => timeouts.command,
        };
        let mut init = Vec::new();
        if config.lock == MySqlLockMode::Row {
            // READ COMMITTED: a locking read of a missing row takes no gap lock, so two
            // requests creating sessions cannot deadlock on a shared gap.
            init.push("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED".to_owned());
            init.push(format!(
                "SET SESSION innodb_lock_wait_timeout = {ROW_WAIT_SLICE_SECS}"
            ));
        }
        let mut opts = OptsBuilder::new()
            .db_name(Some(&config.database))
            .user(config.user.as_deref())
            .pass(config.password.as_ref().map(|p| p.expose()))
            .prefer_socket(false)
            .tcp_nodelay(true)
            .tcp_connect_timeout(Some(timeouts.connect))
            .write_timeout(Some(timeouts.command));
        if let Some(tls) = &config.tls {
            let mut ssl = SslOpts::default()
                .with_danger_accept_invalid_certs(!tls.verify)
                .with_danger_skip_domain_validation(!tls.verify);
            if let Some(ca) = &tls.ca_file {
                ssl = ssl.with_root_cert_path(Some(ca.clone()));
            }
            opts = opts.ssl_opts(Some(ssl));
        }
        // The gc connection waits at most one lock wait slice per statement, and its read
        // timeout leaves room for that, as with lock=row. READ COMMITTED: its DELETE takes no
        // gap locks, which would block requests inserting new sessions' rows.
        let gc_read_timeout = timeouts.command + Duration::from_secs(ROW_WAIT_SLICE_SECS);
        let gc_opts = opts.clone().read_timeout(Some(gc_read_timeout)).init(vec![
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED".to_owned(),
            format!("SET SESSION innodb_lock_wait_timeout = {ROW_WAIT_SLICE_SECS}"),
        ]);
        let gc_connector = MySqlConnector::new(config, gc_opts, timeouts, gc_read_timeout);
        let opts = opts.read_timeout(Some(read_timeout)).init(init);
        let connector = MySqlConnector::new(config, opts, timeouts, read_timeout);
        Ok(MySqlStore {
            keeper: Keeper::new(connector, terms.max_age),
            mode: config.lock,
            lock_scope: format!("{}.{}:", config.database, config.table),
            table: config.table.clone(),
            leases_table_made: false,
            gc_events: crate::store::StoreEvents::default(),
            gc_interval: config.gc_interval,
            // A worker's first check comes one interval after it starts, so a restart of
            // every worker at once does not send them all at the table together.
            next_gc_check: Instant::now() + config.gc_interval.unwrap_or_default(),
            gc_marker_made: false,
            notice: None,
            locked: None,
            gc_connector,
            gc_sql: {
                let t = StatementTexts::new(&config.table);
                (t.gc_find, t.gc_delete)
            },
        })
    }

    fn endpoint_name(&self) -> &str {
        &self.keeper.connector.endpoint
    }

    /// Runs `op` on the connection, and again on a fresh one where `retry` allows; see
    /// [`Keeper::run`]. A failure other than the server's error reply drops the connection
    /// (ending any lock it held).
    fn run<T>(
        &mut self,
        retry: Retry,
        mut op: impl FnMut(&mut Conn, &Statements) -> Result<T, MySqlError>,
    ) -> Result<T, StoreError> {
        let result = self.keeper.run(retry, |live| op(&mut live.conn, &live.sql));
        if result.is_err() {
            // Whatever failed, the server may have rolled back the request's transaction.
            if let Some(locked) = &mut self.locked {
                locked.intact = false;
            }
        }
        result
    }

    /// Runs `op` on the connection that holds `lock`; if that connection is gone, so is the
    /// lock, and nothing is done. Never retried: a fresh connection would not hold the lock.
    fn run_holding<T>(
        &mut self,
        lock: &HeldLock,
        op: impl FnMut(&mut Conn, &Statements) -> Result<T, MySqlError>,
    ) -> Result<T, StoreError> {
        let HeldLock::Connection { connection_id } = lock else {
            return Err(StoreError::foreign_lock(self.endpoint_name()));
        };
        match self.keeper.current() {
            Some(live) if live.conn.connection_id() == *connection_id => self.run(Retry::Never, op),
            _ => Err(StoreError::lock_connection_lost(self.endpoint_name())),
        }
    }

    fn lock_key(&self, id: &SessionId) -> String {
        format!("{}{}", self.lock_scope, id.as_str())
    }

    fn held_here(&self) -> Result<HeldLock, StoreError> {
        match self.keeper.current() {
            Some(live) => Ok(HeldLock::Connection {
                connection_id: live.conn.connection_id(),
            }),
            None => Err(StoreError::lock_connection_lost(self.endpoint_name())),
        }
    }

    fn read_unlocked(&mut self, id: &SessionId) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(Retry::Idempotent, |c, sql| {
            c.exec_first::<Vec<u8>, _, _>(&sql.read, (id.as_str(),))
        })
    }

    /// Ends the request's hold on the session: releases the named lock, or commits the
    /// row-lock transaction (and with it whatever the request wrote).
    fn release(&mut self, id: &SessionId, lock: &HeldLock) -> Result<(), StoreError> {
        match self.mode {
            MySqlLockMode::Row => self.run_holding(lock, |c, _| c.query_drop("COMMIT")),
            _ => {
                let key = self.lock_key(id);
                self.run_holding(lock, |c, sql| {
                    c.exec_drop(&sql.release_lock, (key.as_str(),))
                })
            }
        }
    }

    /// Ends a request with a change to the session: through the procedure `by_call` (given
    /// the lock name), which writes and unlocks in one round trip, when the request holds a
    /// named lock and the procedures are usable; else through the plain statement `by_sql`
    /// and a separate release.
    fn finish_request(
        &mut self,
        id: &SessionId,
        lock: Option<&HeldLock>,
        mut by_call: impl FnMut(&mut Conn, &ProcedureCalls, &str) -> Result<(), MySqlError>,
        by_sql: impl FnMut(&mut Conn, &Statements) -> Result<(), MySqlError>,
    ) -> Result<(), StoreError> {
        if let (Some(lock), true) = (lock, self.keeper.connector.calls_usable) {
            let key = self.lock_key(id);
            match self.call(Some(lock), false, |c, calls| by_call(c, calls, &key)) {
                Ok(Some(())) => return Ok(()),
                Ok(None) => {}
                Err(e) => {
                    // The procedure releases the lock when a statement in it fails, but not
                    // when the CALL itself is refused; releasing again is harmless.
                    let _ = self.release(id, lock);
                    return Err(e);
                }
            }
        }
        self.then_release(id, lock, by_sql)
    }

    /// Runs a write under `lock` and releases it; without a lock, just the write.
    fn then_release(
        &mut self,
        id: &SessionId,
        lock: Option<&HeldLock>,
        op: impl FnMut(&mut Conn, &Statements) -> Result<(), MySqlError>,
    ) -> Result<(), StoreError> {
        match lock {
            Some(lock) => {
                if self.mode == MySqlLockMode::Row {
                    if let Err(e) = self.check_row_transaction(id) {
                        // End whatever is left of the transaction; nothing of this request
                        // is stored.
                        let _ = self.run_holding(lock, |c, _| c.query_drop("ROLLBACK"));
                        return Err(e);
                    }
                }
                let written = self.run_holding(lock, op);
                // Release even when the write failed: the request is over either way. For a
                // row lock a failed write leaves an open transaction, which ROLLBACK ends.
                let released = match (&written, self.mode) {
                    (Err(_), MySqlLockMode::Row) => {
                        self.run_holding(lock, |c, _| c.query_drop("ROLLBACK"))
                    }
                    _ => self.release(id, lock),
                };
                written.and(released)
            }
            None => self.run(Retry::Never, op),
        }
    }
}

impl SessionStore for MySqlStore {
    fn endpoint(&self) -> &str {
        &self.keeper.connector.endpoint
    }

    fn take_events(&mut self) -> crate::store::StoreEvents {
        let connection = self.keeper.take_events();
        let gc = std::mem::take(&mut self.gc_events);
        crate::store::StoreEvents {
            gc_runs: gc.gc_runs,
            gc_deleted: gc.gc_deleted,
            ..connection
        }
    }

    fn connect(&mut self) -> Result<(), StoreError> {
        self.keeper.connect()
    }

    fn is_connected(&self) -> bool {
        self.keeper.is_connected()
    }

    fn take_notice(&mut self) -> Option<String> {
        self.notice.take()
    }

    fn as_merge(&mut self) -> Option<&mut dyn crate::store::MergeStore> {
        Some(self)
    }

    fn lock_policy(&self, requested: LockPolicy) -> LockPolicy {
        match self.mode {
            MySqlLockMode::None => LockPolicy { lease: None },
            _ => requested,
        }
    }

    fn lock_and_read(
        &mut self,
        id: &SessionId,
        policy: LockPolicy,
    ) -> Result<ReadOutcome, StoreError> {
        self.locked = None;
        let read = match (self.lock_policy(policy).lease, self.mode) {
            (Some(terms), MySqlLockMode::Row) => self.lock_row(id, terms),
            (Some(terms), _) => self.lock_advisory(id, terms),
            (None, _) => {
                return Ok(ReadOutcome {
                    data: self.read_unlocked(id)?,
                    lock: None,
                    waited: Duration::ZERO,
                    holder: None,
                })
            }
        }?;
        self.locked = read.lock.as_ref().map(|_| Locked {
            session: id.as_str().to_owned(),
            taken: Instant::now(),
            intact: true,
        });
        Ok(read)
    }

    fn write_and_unlock(
        &mut self,
        id: &SessionId,
        data: &[u8],
        lifetime: Duration,
        lock: Option<&HeldLock>,
    ) -> Result<(), StoreError> {
        let seconds = lifetime_secs(lifetime);
        let written = self.finish_request(
            id,
            lock,
            |c, calls, key| c.exec_drop(&calls.write, (id.as_str(), key, data, seconds)),
            |c, sql| c.exec_drop(&sql.write, (id.as_str(), data, seconds)),
        );
        self.locked = None;
        self.maybe_gc();
        written
    }

    fn touch_and_unlock(
        &mut self,
        id: &SessionId,
        lifetime: Duration,
        lock: Option<&HeldLock>,
    ) -> Result<(), StoreError> {
        let seconds = lifetime_secs(lifetime);
        let touched = self.finish_request(
            id,
            lock,
            |c, calls, key| c.exec_drop(&calls.touch, (id.as_str(), key, seconds)),
            |c, sql| c.exec_drop(&sql.touch, (seconds, id.as_str())),
        );
        self.locked = None;
        self.maybe_gc();
        touched
    }

    fn unlock(&mut self, id: &SessionId, lock: &HeldLock) -> Result<(), StoreError> {
        let released = match self.mode {
            // Nothing was written, so nothing to keep: this also drops the placeholder row of a
            // new session that is closed unwritten.
            MySqlLockMode::Row => self.run_holding(lock, |c, _| c.query_drop("ROLLBACK")),
            _ => self.release(id, lock),
        };
        self.locked = None;
        self.maybe_gc();
        released
    }

    fn destroy(&mut self, id: &SessionId, lock: Option<&HeldLock>) -> Result<(), StoreError> {
        let destroyed =
            self.then_release(id, lock, |c, sql| c.exec_drop(&sql.delete, (id.as_str(),)));
        self.locked = None;
        self.maybe_gc();
        destroyed
    }

    fn exists(&mut self, id: &SessionId) -> Result<bool, StoreError> {
        let found: Option<i64> = self.run(Retry::Idempotent, |c, sql| {
            c.exec_first(&sql.exists, (id.as_str(),))
        })?;
        Ok(found.is_some())
    }

    /// Deletes expired rows for at most `GC_BUDGET` (see `gc_batches`). Rows
    /// carry their own expiry (set from `session.gc_maxlifetime` when written), so
    /// `lifetime` is not needed here.
    ///
    /// While a request holds a lock (PHP calls gc right after the read) the rows are deleted
    /// on a connection of their own, never in the request's transaction or on the
    /// connection its lock lives on; otherwise on this store's connection.
    fn gc(&mut self, _lifetime: Duration) -> Result<u64, StoreError> {
        match self.locked.as_ref().map(|l| l.session.clone()) {
            Some(session) => self.gc_aside(&session),
            None => self.gc_batches().map(|(deleted, _)| deleted),
        }
    }
}

/// MySQL waits for a lock inside the statement that takes it, so a request cannot tell a
/// short wait from a slow round trip: a lock step that took less than this counts as no
/// wait (for `fleet.slow_lock_wait` and the metrics' contended count).
const WAIT_NOTICEABLE: Duration = Duration::from_millis(5);

fn server_side_wait(elapsed: Duration) -> Duration {
    if elapsed < WAIT_NOTICEABLE {
        Duration::ZERO
    } else {
        elapsed
    }
}

/// Only a request's first lock attempt may be repeated on a fresh connection for a dead
/// one (the connection sat idle since the last request and may have died meanwhile); later
/// attempts run on a connection that just answered. A refusal as not the primary is
/// retried either way.
fn retry_first(first: bool) -> Retry {
    if first {
        Retry::Idempotent
    } else {
        Retry::IfRefused
    }
}

/// A session always lives at least a second.
fn lifetime_secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}
