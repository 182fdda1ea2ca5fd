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

use ::mysql::prelude::{AsStatement, Queryable};
use ::mysql::{Conn, Error as MySqlError, OptsBuilder, SslOpts, Statement};

pub(crate) use crate::config::MAX_TABLE_FOR_PROCEDURES;
use crate::config::{MySqlConfig, MySqlLockMode, MySqlProcedures, Timeouts};
use crate::error::StoreError;
use crate::id::SessionId;
use crate::keeper::{Keeper, Retry};
use crate::lease::{LeaseTerms, MAX_WAIT_SLICE};
use crate::store::{HeldLock, LockPolicy, ReadOutcome, SessionStore};

mod connect;
mod inventory;
mod lease;

use connect::MySqlConnector;

/// Expired rows looked up per `gc` batch.
const GC_BATCH: u64 = 1000;
/// Ids per `gc` `DELETE` (the batch's rows are deleted in chunks of this many, by primary
/// key); small enough that one statement holds its locks only briefly.
const GC_CHUNK: usize = 100;
/// How long one `gc` call may keep deleting before it leaves the rest for the next one, so
/// the request that PHP picked for gc is not stalled by a large backlog.
const GC_BUDGET: Duration = Duration::from_millis(200);
/// The id of the row that tells when expired rows were last deleted (its `expires` is when
/// the next run is due, its `data` how many runs there have been). Session ids cannot
/// contain `:`, so no session can have it.
pub const GC_MARKER_ID: &str = "fleet:gc";
/// Row-lock waits are sliced by `innodb_lock_wait_timeout`, which counts whole seconds.
const ROW_WAIT_SLICE_SECS: u64 = 1;

// MySQL/MariaDB error codes Fleet reacts to.
const ER_DBACCESS_DENIED: u16 = 1044;
const ER_ACCESS_DENIED: u16 = 1045;
const ER_BAD_DB: u16 = 1049;
pub(super) const ER_TABLEACCESS_DENIED: u16 = 1142;
const ER_NO_SUCH_TABLE: u16 = 1146;
const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
const ER_LOCK_DEADLOCK: u16 = 1213;
const ER_SP_DOES_NOT_EXIST: u16 = 1305;
const ER_PROCACCESS_DENIED: u16 = 1370;
/// `--read-only` (or `super_read_only`) refused a statement.
const ER_OPTION_PREVENTS_STATEMENT: u16 = 1290;
/// The server is in read-only mode (MySQL).
const ER_READ_ONLY_MODE: u16 = 1836;

/// The DDL of the session table. Fleet runs it (with `IF NOT EXISTS`) unless
/// `create_table=0`; `fleetctl schema` prints it for DBAs who create the table themselves.
pub fn create_table_sql(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS `{table}` (
  `id` VARCHAR(256) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  `data` LONGBLOB NOT NULL,
  `expires` BIGINT NOT NULL COMMENT 'Unix time (server clock) after which the session is gone',
  PRIMARY KEY (`id`),
  KEY `expires` (`expires`)
) ENGINE=InnoDB"
    )
}

/// The name of one of the stored procedures for `table`. The `1` is the version of their
/// bodies: a release that changes one creates `fleet2_…` beside it, so workers of both
/// versions run side by side during a rolling upgrade.
fn procedure_name(table: &str, what: &str) -> String {
    format!("fleet1_{table}_{what}")
}

/// The DDL of the stored procedures `lock=advisory` calls (see [`MySqlProcedures`]). Fleet
/// runs it unless `create_table=0` or `procedures=0`; `fleetctl schema` prints it.
///
/// They run with the caller's privileges (`SQL SECURITY INVOKER`), so they grant nothing
/// the session user does not already have. Each takes the lock name's source text, hashed
/// as the plain statements hash it, so workers with and without the procedures exclude
/// each other on the same session. A failing statement inside releases the lock before
/// the error goes back, as the plain statements' caller does.
pub fn create_procedures_sql(table: &str) -> [String; 3] {
    let read = procedure_name(table, "read");
    let write = procedure_name(table, "write");
    let touch = procedure_name(table, "touch");
    let lock = "CONCAT('fleet:', SHA1(p_lock_key))";
    let params = "IN p_id VARCHAR(256) CHARACTER SET ascii, IN p_lock_key VARCHAR(1024) CHARACTER SET utf8mb4";
    let release_on_error = format!(
        "DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN DO RELEASE_LOCK({lock}); RESIGNAL; END;"
    );
    [
        format!(
            "CREATE PROCEDURE IF NOT EXISTS `{read}`({params}, IN p_wait DOUBLE)
  SQL SECURITY INVOKER
  COMMENT 'Fleet sessions: lock a session and read it'
BEGIN
  DECLARE got INT DEFAULT NULL;
  DECLARE EXIT HANDLER FOR SQLEXCEPTION
  BEGIN
    IF got = 1 THEN DO RELEASE_LOCK({lock}); END IF;
    RESIGNAL;
  END;
  SET got = GET_LOCK({lock}, p_wait);
  IF got = 1 THEN
    SELECT got, `data` FROM `{table}` WHERE `id` = p_id AND `expires` > UNIX_TIMESTAMP();
  ELSE
    SELECT got, NULL;
  END IF;
END"
        ),
        format!(
            "CREATE PROCEDURE IF NOT EXISTS `{write}`({params}, IN p_data LONGBLOB, IN p_lifetime BIGINT)
  SQL SECURITY INVOKER
  COMMENT 'Fleet sessions: write a locked session and unlock it'
BEGIN
  {release_on_error}
  INSERT INTO `{table}` (`id`, `data`, `expires`) VALUES (p_id, p_data, UNIX_TIMESTAMP() + p_lifetime)
    ON DUPLICATE KEY UPDATE `data` = VALUES(`data`), `expires` = VALUES(`expires`);
  DO RELEASE_LOCK({lock});
END"
        ),
        format!(
            "CREATE PROCEDURE IF NOT EXISTS `{touch}`({params}, IN p_lifetime BIGINT)
  SQL SECURITY INVOKER
  COMMENT 'Fleet sessions: extend a locked, unchanged session and unlock it'
BEGIN
  {release_on_error}
  UPDATE `{table}` SET `expires` = UNIX_TIMESTAMP() + p_lifetime WHERE `id` = p_id;
  DO RELEASE_LOCK({lock});
END"
        ),
    ]
}

/// The table of named leases (`fleetctl run-once`, PHP's `fleet_lease_*`): per name, the
/// holder's token and when its lease ends (the server's clock, in ms, so app servers'
/// clocks do not matter), the fencing counter, and the last schedule slot run.
pub const LEASES_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS `fleet_leases` (
  `name` VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  `holder` VARCHAR(64) CHARACTER SET ascii NOT NULL DEFAULT '' COMMENT 'the holder''s secret token',
  `held_until` BIGINT NOT NULL DEFAULT 0 COMMENT 'Unix time in ms (server clock) when the lease ends unless renewed',
  `fence` BIGINT NOT NULL DEFAULT 0 COMMENT 'grows with every new holder',
  `slot` VARCHAR(64) NOT NULL DEFAULT '' COMMENT 'the last schedule slot run',
  `slot_until` BIGINT NOT NULL DEFAULT 0 COMMENT 'Unix time until which that slot counts as done',
  PRIMARY KEY (`name`)
) ENGINE=InnoDB";

/// The whole schema for `table` as a script for the `mysql`/`mariadb` client: the table,
/// the procedures unless `procedures` is false (or the table name is too long for them), and
/// the leases table.
pub fn schema_script(table: &str, procedures: bool) -> String {
    let mut script = format!("{};\n\n{LEASES_TABLE_SQL};\n", create_table_sql(table));
    if procedures && table.len() <= MAX_TABLE_FOR_PROCEDURES {
        script.push_str("\nDELIMITER //\n");
        for ddl in create_procedures_sql(table) {
            script.push_str(&ddl);
            script.push_str(" //\n");
        }
        script.push_str("DELIMITER ;\n");
    }
    script
}

/// The SQL of every statement, with the table name in it, built once per store.
pub(super) struct StatementTexts {
    get_lock: String,
    release_lock: String,
    read: String,
    read_for_update: String,
    insert_placeholder: String,
    write: String,
    touch: String,
    delete: String,
    exists: String,
    gc_find: String,
    gc_delete: String,
    gc_claim: String,
    gc_marker: String,
    gc_due_now: String,
    call_read: String,
    call_write: String,
    call_touch: String,
}

impl StatementTexts {
    pub(super) fn new(table: &str) -> StatementTexts {
        StatementTexts {
            call_read: format!("CALL `{}`(?, ?, ?)", procedure_name(table, "read")),
            call_write: format!("CALL `{}`(?, ?, ?, ?)", procedure_name(table, "write")),
            call_touch: format!("CALL `{}`(?, ?, ?)", procedure_name(table, "touch")),
            // Lock names are limited to 64 characters; a hash of database, table and id fits
            // any id.
            get_lock: "SELECT GET_LOCK(CONCAT('fleet:', SHA1(?)), ?)".to_owned(),
            release_lock: "SELECT RELEASE_LOCK(CONCAT('fleet:', SHA1(?)))".to_owned(),
            read: format!("SELECT `data` FROM `{table}` WHERE `id` = ? AND `expires` > UNIX_TIMESTAMP()"),
            read_for_update: format!(
                "SELECT `data`, `expires` > UNIX_TIMESTAMP() FROM `{table}` WHERE `id` = ? FOR UPDATE"
            ),
            // A new session has no row to lock; this makes one (already expired, so it reads as
            // empty) and locks it. A concurrent request inserting the same id waits here.
            insert_placeholder: format!(
                "INSERT INTO `{table}` (`id`, `data`, `expires`) VALUES (?, '', 0) ON DUPLICATE KEY UPDATE `id` = `id`"
            ),
            write: format!(
                "INSERT INTO `{table}` (`id`, `data`, `expires`) VALUES (?, ?, UNIX_TIMESTAMP() + ?) \
                 ON DUPLICATE KEY UPDATE `data` = VALUES(`data`), `expires` = VALUES(`expires`)"
            ),
            touch: format!("UPDATE `{table}` SET `expires` = UNIX_TIMESTAMP() + ? WHERE `id` = ?"),
            delete: format!("DELETE FROM `{table}` WHERE `id` = ?"),
            exists: format!("SELECT 1 FROM `{table}` WHERE `id` = ? AND `expires` > UNIX_TIMESTAMP()"),
            // gc finds expired rows with a plain (non-locking) read, then deletes them by
            // primary key, checking the expiry again under the row lock. One
            // `DELETE … WHERE expires <= …` would lock every row it reads, and the optimizer
            // reads the whole table when much of it is expired: it then waited for the row
            // lock of every request in flight (and deadlocked with them inside a
            // transaction).
            //
            // `expires > 0` leaves out `lock=row`'s placeholder rows (expires 0), which exist
            // only inside the transaction of the request that made them; their rollback
            // removes them. The parameter is the session the calling request holds, whose
            // row lock gc would otherwise wait for on its own connection.
            gc_find: format!(
                "SELECT `id` FROM `{table}` WHERE `expires` > 0 AND `expires` <= UNIX_TIMESTAMP() \
                 AND `id` <> '{GC_MARKER_ID}' AND `id` <> ? LIMIT {GC_BATCH}"
            ),
            // FORCE INDEX (PRIMARY): on a small or mostly expired table the optimizer would
            // rather scan it all, and so lock (and wait for) every row, than look up a hundred
            // ids. Index hints need the multi-table form of DELETE.
            gc_delete: format!(
                "DELETE t FROM `{table}` AS t FORCE INDEX (PRIMARY) WHERE t.`id` IN ({}) \
                 AND t.`expires` > 0 AND t.`expires` <= UNIX_TIMESTAMP()",
                vec!["?"; GC_CHUNK].join(", ")
            ),
            // Only one worker's UPDATE can find the marker due: InnoDB's row lock orders
            // them, and the winner moves `expires` on.
            gc_claim: format!(
                "UPDATE `{table}` SET `expires` = UNIX_TIMESTAMP() + ?, `data` = CAST(CAST(`data` AS UNSIGNED) + 1 AS CHAR) \
                 WHERE `id` = '{GC_MARKER_ID}' AND `expires` <= UNIX_TIMESTAMP()"
            ),
            gc_marker: format!(
                "INSERT IGNORE INTO `{table}` (`id`, `data`, `expires`) VALUES ('{GC_MARKER_ID}', '0', 0)"
            ),
            gc_due_now: format!("UPDATE `{table}` SET `expires` = 0 WHERE `id` = '{GC_MARKER_ID}'"),
        }
    }
}

/// The statements prepared on one connection. Executing a prepared handle skips the
/// driver's per-call work on SQL text (it scans every query string for named parameters,
/// which callgrind showed to be an eighth of a request's instructions).
pub(super) struct Statements {
    get_lock: Statement,
    release_lock: Statement,
    read: Statement,
    read_for_update: Statement,
    insert_placeholder: Statement,
    write: Statement,
    touch: Statement,
    delete: Statement,
    exists: Statement,
    gc_find: Statement,
    gc_delete: Statement,
    gc_claim: Statement,
    gc_marker: Statement,
    gc_due_now: Statement,
    calls: Option<ProcedureCalls>,
}

/// The prepared `CALL`s of the stored procedures. Preparing a `CALL` does not check that
/// the procedure exists; the first execution does.
struct ProcedureCalls {
    read: Statement,
    write: Statement,
    touch: Statement,
}

impl Statements {
    /// Prepares every statement: once per connection, so once per worker normally.
    pub(super) fn prepare(
        conn: &mut Conn,
        t: &StatementTexts,
        with_calls: bool,
    ) -> Result<Statements, MySqlError> {
        let calls = match with_calls {
            true => Some(ProcedureCalls {
                read: conn.prep(&t.call_read)?,
                write: conn.prep(&t.call_write)?,
                touch: conn.prep(&t.call_touch)?,
            }),
            false => None,
        };
        Ok(Statements {
            calls,
            get_lock: conn.prep(&t.get_lock)?,
            release_lock: conn.prep(&t.release_lock)?,
            read: conn.prep(&t.read)?,
            read_for_update: conn.prep(&t.read_for_update)?,
            insert_placeholder: conn.prep(&t.insert_placeholder)?,
            write: conn.prep(&t.write)?,
            touch: conn.prep(&t.touch)?,
            delete: conn.prep(&t.delete)?,
            exists: conn.prep(&t.exists)?,
            gc_find: conn.prep(&t.gc_find)?,
            gc_delete: conn.prep(&t.gc_delete)?,
            gc_claim: conn.prep(&t.gc_claim)?,
            gc_marker: conn.prep(&t.gc_marker)?,
            gc_due_now: conn.prep(&t.gc_due_now)?,
        })
    }
}

/// A session store on one MySQL/MariaDB database, holding the one connection a worker needs
/// (a PHP worker runs one request at a time), kept across requests and re-opened after a
/// failure (see [`crate::keeper`]), to one host or the first writable host of a list.
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
    pub fn new(config: &MySqlConfig, default_timeouts: Timeouts) -> Result<MySqlStore, StoreError> {
        let timeouts = config.timeouts(default_timeouts);
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
            keeper: Keeper::new(connector, config.max_connection_age),
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

    /// Deletes expired rows if this worker's clock says a run may be due and the database
    /// says no other worker has run one within `gc_interval`. Called after a request has
    /// released its session; only one worker per interval, on any app server, pays for a run
    /// (in bounded batches), and the others send one `UPDATE` per interval. A failure is a
    /// notice, never the request's failure.
    fn maybe_gc(&mut self) {
        let Some(interval) = self.gc_interval else {
            return;
        };
        let now = Instant::now();
        if now < self.next_gc_check {
            return;
        }
        self.next_gc_check = now + interval;
        if let Err(e) = self.gc_if_due(interval) {
            self.notice = Some(format!(
                "the automatic deletion of expired sessions (gc_interval) failed: {e}"
            ));
        }
    }

    /// Claims this interval's run and does it; returns how many rows it deleted, or `None`
    /// if another worker has the interval.
    pub fn gc_if_due(&mut self, interval: Duration) -> Result<Option<u64>, StoreError> {
        let seconds = interval.as_secs_f64().ceil() as u64;
        let claim = |s: &mut MySqlStore| {
            s.run(Retry::Never, |c, sql| {
                c.exec_drop(&sql.gc_claim, (seconds,))
                    .map(|()| c.affected_rows() == 1)
            })
        };
        let mut won = claim(self)?;
        if !won && !self.gc_marker_made {
            self.run(Retry::Never, |c, sql| c.exec_drop(&sql.gc_marker, ()))?;
            won = claim(self)?;
        }
        self.gc_marker_made = true;
        if !won {
            return Ok(None);
        }
        let (deleted, more_left) = self.gc_batches()?;
        self.gc_events.gc_runs += 1;
        self.gc_events.gc_deleted += deleted;
        if more_left {
            // A backlog: let the next worker that checks go on at once rather than an
            // interval later.
            self.run(Retry::Never, |c, sql| c.exec_drop(&sql.gc_due_now, ()))?;
        }
        Ok(Some(deleted))
    }

    /// Deletes expired rows on this store's connection, which must hold no lock (see
    /// [`delete_expired`]).
    fn gc_batches(&mut self) -> Result<(u64, bool), StoreError> {
        delete_expired(|| {
            self.run(Retry::Idempotent, |c, sql| {
                gc_batch(c, &sql.gc_find, &sql.gc_delete, "")
            })
        })
    }

    /// Deletes expired rows on a connection of their own, opened for this call and closed
    /// after it, for a request that holds `session`'s lock (see the module doc). Closed
    /// rather than kept: a second idle connection per worker would double what
    /// `max_connections` must allow for, and PHP's gc is rare (1 request in 100 by default).
    fn gc_aside(&mut self, session: &str) -> Result<u64, StoreError> {
        let mut conn = self.gc_connector.open_first_writable()?;
        let connector = &self.gc_connector;
        let (find, delete) = (self.gc_sql.0.as_str(), self.gc_sql.1.as_str());
        delete_expired(|| {
            gc_batch(&mut conn, find, delete, session).map_err(|e| connector.classify(e, false))
        })
        .map(|(deleted, _)| deleted)
    }

    fn endpoint_owned(&self) -> String {
        self.keeper.connector.endpoint.clone()
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
            return Err(StoreError::ForeignLock {
                endpoint: self.endpoint_owned(),
            });
        };
        match self.keeper.current() {
            Some(live) if live.conn.connection_id() == *connection_id => self.run(Retry::Never, op),
            _ => Err(StoreError::LockConnectionLost {
                endpoint: self.endpoint_owned(),
            }),
        }
    }

    /// Who holds the named lock `key`, as the server shows it: the connection, its client
    /// address and how long its current statement has run. Asked only when a wait timed out
    /// (one more query then, none on the way to a free lock); `None` if it cannot be told.
    fn named_lock_holder(&mut self, key: &str) -> Option<crate::lease::Holder> {
        let row: Option<(u64, Option<String>)> = self
            .run(Retry::Never, |c, _| {
                c.exec_first(
                    "SELECT l.id, p.HOST FROM (SELECT IS_USED_LOCK(CONCAT('fleet:', SHA1(?))) AS id) l \
                     LEFT JOIN information_schema.PROCESSLIST p ON p.ID = l.id WHERE l.id IS NOT NULL",
                    (key,),
                )
            })
            .ok()
            .flatten();
        row.map(|(id, host)| crate::lease::Holder {
            who: match host {
                Some(host) => format!(
                    "MySQL connection {id} from {host} (SHOW PROCESSLIST shows what it runs)"
                ),
                None => format!("MySQL connection {id}"),
            },
            held_for: None,
        })
    }

    fn lock_key(&self, id: &SessionId) -> String {
        format!("{}{}", self.lock_scope, id.as_str())
    }

    fn held_here(&self) -> Result<HeldLock, StoreError> {
        match self.keeper.current() {
            Some(live) => Ok(HeldLock::Connection {
                connection_id: live.conn.connection_id(),
            }),
            None => Err(StoreError::LockConnectionLost {
                endpoint: self.endpoint_owned(),
            }),
        }
    }

    fn read_unlocked(&mut self, id: &SessionId) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(Retry::Idempotent, |c, sql| {
            c.exec_first::<Vec<u8>, _, _>(&sql.read, (id.as_str(),))
        })
    }

    fn lock_advisory(
        &mut self,
        id: &SessionId,
        terms: LeaseTerms,
    ) -> Result<ReadOutcome, StoreError> {
        let key = self.lock_key(id);
        let started = Instant::now();
        let deadline = started + terms.wait_timeout;
        // Each GET_LOCK must answer within the read timeout; waits longer than that are
        // made of several, each of which waits in the server's queue.
        let slice_cap = MAX_WAIT_SLICE
            .min(self.keeper.connector.timeouts.command / 2)
            .max(Duration::from_millis(1));
        let mut first = true;
        loop {
            let slice = deadline
                .saturating_duration_since(Instant::now())
                .min(slice_cap);
            let seconds = slice.as_secs_f64();
            // The data comes with the lock when the procedure took it.
            let mut data_if_locked = None;
            let got = match self.keeper.connector.calls_usable {
                true => {
                    let called = self.call(None, first, |c, calls| {
                        c.exec_first::<(Option<i64>, Option<Vec<u8>>), _, _>(
                            &calls.read,
                            (id.as_str(), key.as_str(), seconds),
                        )
                    })?;
                    match called {
                        // Locked, and no live session: the procedure's SELECT found no row.
                        Some(None) => {
                            data_if_locked = Some(None);
                            Some(1)
                        }
                        Some(Some((got, data))) => {
                            data_if_locked = Some(data);
                            got
                        }
                        None => continue,
                    }
                }
                false => self
                    .run(retry_first(first), |c, sql| {
                        c.exec_first::<Option<i64>, _, _>(&sql.get_lock, (key.as_str(), seconds))
                    })?
                    .flatten(),
            };
            first = false;
            match got {
                Some(1) => {
                    let lock = self.held_here()?;
                    let waited = server_side_wait(started.elapsed());
                    if let Some(data) = data_if_locked {
                        return Ok(ReadOutcome {
                            data,
                            lock: Some(lock),
                            waited,
                            holder: None,
                        });
                    }
                    return match self.run(Retry::Never, |c, sql| {
                        c.exec_first::<Vec<u8>, _, _>(&sql.read, (id.as_str(),))
                    }) {
                        Ok(data) => Ok(ReadOutcome {
                            data,
                            lock: Some(lock),
                            waited,
                            holder: None,
                        }),
                        Err(e) => {
                            let _ = self.release(id, &lock);
                            Err(e)
                        }
                    };
                }
                Some(_) if Instant::now() < deadline => continue,
                Some(_) => {
                    return Err(StoreError::LockWaitTimeout {
                        waited: terms.wait_timeout,
                        session: id.abbreviated(),
                        holder: self.named_lock_holder(&key),
                    })
                }
                None => {
                    return Err(StoreError::Server {
                        endpoint: self.endpoint_owned(),
                        cause: "GET_LOCK returned NULL (the wait was interrupted)".into(),
                    })
                }
            }
        }
    }

    /// Runs `op` with the procedures' prepared `CALL`s, on the connection holding `lock` if
    /// given; `Ok(None)` when `procedures=auto` finds the procedures missing or not
    /// executable, after which this store uses the plain statements.
    fn call<T>(
        &mut self,
        lock: Option<&HeldLock>,
        retry: bool,
        mut op: impl FnMut(&mut Conn, &ProcedureCalls) -> Result<T, MySqlError>,
    ) -> Result<Option<T>, StoreError> {
        let fall_back = self.keeper.connector.procedures == MySqlProcedures::Auto;
        let wrapped = |c: &mut Conn, sql: &Statements| {
            let Some(calls) = &sql.calls else {
                return Ok(None);
            };
            match op(c, calls) {
                Ok(v) => Ok(Some(v)),
                Err(MySqlError::MySqlError(e))
                    if fall_back
                        && (e.code == ER_SP_DOES_NOT_EXIST || e.code == ER_PROCACCESS_DENIED) =>
                {
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        };
        let answer = match lock {
            Some(lock) => self.run_holding(lock, wrapped)?,
            None => self.run(retry_first(retry), wrapped)?,
        };
        if answer.is_none() {
            self.keeper.connector.calls_usable = false;
        }
        Ok(answer)
    }

    fn lock_row(&mut self, id: &SessionId, terms: LeaseTerms) -> Result<ReadOutcome, StoreError> {
        let started = Instant::now();
        let deadline = started + terms.wait_timeout;
        self.run(Retry::Idempotent, |c, _| c.query_drop("START TRANSACTION"))?;
        let mut outcome = self.lock_row_in_transaction(id, terms, deadline);
        if let Ok(read) = &mut outcome {
            read.waited = server_side_wait(started.elapsed());
        }
        if outcome.is_err() {
            let _ = self.run(Retry::Never, |c, _| c.query_drop("ROLLBACK"));
        }
        outcome
    }

    fn lock_row_in_transaction(
        &mut self,
        id: &SessionId,
        terms: LeaseTerms,
        deadline: Instant,
    ) -> Result<ReadOutcome, StoreError> {
        let mut inserted = false;
        loop {
            let attempt = self.run_row_wait(|c, sql| {
                c.exec_first::<(Vec<u8>, i64), _, _>(&sql.read_for_update, (id.as_str(),))
            })?;
            if attempt.is_none() {
                // A new transaction now (see run_row_wait): a placeholder made in the old one
                // is gone with it.
                inserted = false;
            }
            match attempt {
                Some(Some((data, live))) => {
                    let data = (live == 1).then_some(data);
                    return Ok(ReadOutcome {
                        data,
                        lock: Some(self.held_here()?),
                        waited: Duration::ZERO,
                        holder: None,
                    });
                }
                Some(None) if !inserted => {
                    // No row yet: make one, which locks it, then read it back under the lock
                    // (a request that created it first may have written data meanwhile).
                    // After a timeout the transaction is a new one, without the row.
                    let made = self.run_row_wait(|c, sql| {
                        c.exec_drop(&sql.insert_placeholder, (id.as_str(),))
                    })?;
                    inserted = made.is_some();
                    if !inserted && Instant::now() >= deadline {
                        return Err(StoreError::LockWaitTimeout {
                            waited: terms.wait_timeout,
                            session: id.abbreviated(),
                            holder: None,
                        });
                    }
                }
                Some(None) => {
                    return Err(StoreError::Server {
                        endpoint: self.endpoint_owned(),
                        cause: "the session row vanished while locked".into(),
                    })
                }
                None if Instant::now() < deadline => {}
                None => {
                    return Err(StoreError::LockWaitTimeout {
                        waited: terms.wait_timeout,
                        session: id.abbreviated(),
                        holder: None,
                    })
                }
            }
        }
    }

    /// Runs a statement that may wait on a row lock: `None` when the wait timed out (one
    /// `innodb_lock_wait_timeout` slice) or deadlocked, so the caller tries again, in a new
    /// transaction: whether the server rolled back the old one (a deadlock always does, a
    /// timeout does with `innodb_rollback_on_timeout`), it is ended and a new one begun, so
    /// the retry never runs in autocommit, where `FOR UPDATE` would lock nothing.
    fn run_row_wait<T>(
        &mut self,
        op: impl FnMut(&mut Conn, &Statements) -> Result<T, MySqlError>,
    ) -> Result<Option<T>, StoreError> {
        let mut op = op;
        let mut last_code = 0;
        let outcome = self.run(Retry::Never, |c, sql| match op(c, sql) {
            Err(MySqlError::MySqlError(e))
                if e.code == ER_LOCK_WAIT_TIMEOUT || e.code == ER_LOCK_DEADLOCK =>
            {
                last_code = e.code;
                Ok(None)
            }
            other => other.map(Some),
        })?;
        if last_code != 0 {
            self.run(Retry::Never, |c, _| c.query_drop("ROLLBACK"))?;
            self.run(Retry::Never, |c, _| c.query_drop("START TRANSACTION"))?;
        }
        Ok(outcome)
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

    /// `lock=row`: whether the transaction that took `id`'s row lock is still the one open
    /// on the connection, as far as the client can tell: the server ends a transaction
    /// only with an error to one of its statements (or by closing the connection, which
    /// `run_holding` sees), and every such error is recorded in `locked`. Costs no round
    /// trip.
    fn check_row_transaction(&self, id: &SessionId) -> Result<(), StoreError> {
        match &self.locked {
            Some(l) if l.session == id.as_str() && l.intact => Ok(()),
            Some(l) => Err(StoreError::LockLost {
                held: l.taken.elapsed(),
                why: "a statement failed inside the transaction that held its row lock, which may have rolled the transaction back (a deadlock always does; a lock wait timeout does with innodb_rollback_on_timeout) and so ended the lock".into(),
            }),
            None => Err(StoreError::LockLost {
                held: Duration::ZERO,
                why: "no transaction of this request holds its row lock".into(),
            }),
        }
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

    /// Deletes expired rows for at most `GC_BUDGET` (see [`MySqlStore::gc_batches`]). Rows
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

/// Turns a driver error into one an admin can act on. `connecting`: the error came from
/// opening the connection.
pub(super) fn classify(
    endpoint: &str,
    table: &str,
    e: MySqlError,
    timeouts: Timeouts,
    read_timeout: Duration,
    connecting: bool,
) -> StoreError {
    let endpoint = endpoint.to_owned();
    match e {
        MySqlError::MySqlError(e) => {
            let cause = format!("{} (error {})", e.message, e.code);
            // What the admin can do about a missing object or privilege.
            let fix = match e.code {
                ER_ACCESS_DENIED | ER_DBACCESS_DENIED => {
                    return StoreError::Auth { endpoint, cause }
                }
                ER_READ_ONLY_MODE => return StoreError::NotPrimary { endpoint, cause },
                ER_OPTION_PREVENTS_STATEMENT
                    if e.message.contains("read-only") || e.message.contains("read_only") =>
                {
                    return StoreError::NotPrimary { endpoint, cause }
                }
                ER_BAD_DB => "Create the database, or fix its name in session.save_path".to_owned(),
                ER_NO_SUCH_TABLE => format!(
                    "Create the table with the statement `fleetctl schema --table {table}` prints, or let Fleet create it (create_table=1, the default, needs the CREATE privilege)"
                ),
                ER_TABLEACCESS_DENIED => "Grant SELECT, INSERT, UPDATE, DELETE on the session table to the session.save_path user".to_owned(),
                ER_SP_DOES_NOT_EXIST => format!(
                    "Create Fleet's procedures with the statements `fleetctl schema --table {table}` prints (this needs CREATE ROUTINE), or set procedures=auto in session.save_path to use plain statements without them"
                ),
                ER_PROCACCESS_DENIED => "Grant EXECUTE on Fleet's procedures to the session.save_path user, or set procedures=auto in session.save_path".to_owned(),
                _ => return StoreError::Server { endpoint, cause },
            };
            StoreError::Schema {
                endpoint,
                cause: format!("{cause}. {fix}"),
            }
        }
        e if matches!(
            io_error_kind(&e),
            Some(std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock)
        ) =>
        {
            // A socket read timeout (EAGAIN), also while reading the server's greeting.
            StoreError::TimedOut {
                endpoint,
                waited: read_timeout,
            }
        }
        MySqlError::DriverError(
            ::mysql::DriverError::ConnectTimeout | ::mysql::DriverError::Timeout,
        ) => StoreError::TimedOut {
            endpoint,
            waited: timeouts.connect,
        },
        MySqlError::TlsError(e) => StoreError::Tls {
            endpoint,
            cause: e.to_string(),
        },
        e if connecting => {
            let cause = e.to_string();
            if cause.contains("SSL") || cause.contains("TLS") || cause.contains("certificate") {
                StoreError::Tls { endpoint, cause }
            } else {
                StoreError::Connect { endpoint, cause }
            }
        }
        e => StoreError::ConnectionLost {
            endpoint,
            cause: e.to_string(),
        },
    }
}

/// The kind of the I/O error under `e`, which the driver wraps differently depending on where
/// it happened.
fn io_error_kind(e: &MySqlError) -> Option<std::io::ErrorKind> {
    match e {
        MySqlError::IoError(io) => Some(io.kind()),
        MySqlError::CodecError(codec) => std::error::Error::source(codec)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .map(|io| io.kind()),
        _ => None,
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

/// Deletes expired rows, a batch at a time by `batch`, for at most `GC_BUDGET`. `batch`
/// says how many it deleted and whether there may be more. Returns how many were deleted,
/// and whether it stopped on its budget with rows left.
fn delete_expired(
    mut batch: impl FnMut() -> Result<(u64, bool), StoreError>,
) -> Result<(u64, bool), StoreError> {
    let started = Instant::now();
    let mut deleted = 0;
    loop {
        let (n, more) = batch()?;
        deleted += n;
        if !more {
            return Ok((deleted, false));
        }
        if started.elapsed() >= GC_BUDGET {
            return Ok((deleted, true));
        }
    }
}

/// One gc batch on `c`: up to `GC_BATCH` expired rows found by `find`, sparing the session
/// `except` (`""`: none), deleted `GC_CHUNK` at a time by `delete`. Returns how many were
/// deleted, and whether there may be more. A chunk that deadlocked with, or waited too long
/// on, a request's row lock ends the batch, with no more: the rows are already invisible,
/// and the next gc deletes them.
fn gc_batch<S: AsStatement + Copy>(
    c: &mut Conn,
    find: S,
    delete: S,
    except: &str,
) -> Result<(u64, bool), MySqlError> {
    let ids: Vec<Vec<u8>> = c.exec(find, (except,))?;
    let mut deleted = 0;
    for chunk in ids.chunks(GC_CHUNK) {
        // Unused places get the empty id, which no session has.
        let mut params: Vec<::mysql::Value> = chunk
            .iter()
            .map(|id| ::mysql::Value::Bytes(id.clone()))
            .collect();
        params.resize(GC_CHUNK, ::mysql::Value::Bytes(Vec::new()));
        match c.exec_drop(delete, params) {
            Ok(()) => deleted += c.affected_rows(),
            Err(MySqlError::MySqlError(e))
                if e.code == ER_LOCK_DEADLOCK || e.code == ER_LOCK_WAIT_TIMEOUT =>
            {
                return Ok((deleted, false))
            }
            Err(e) => return Err(e),
        }
    }
    Ok((deleted, ids.len() as u64 >= GC_BATCH))
}

/// A session always lives at least a second.
fn lifetime_secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}
