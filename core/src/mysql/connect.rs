//! How the MySQL store finds the server to talk to: one host (its name resolved again on
//! every connect, so an Aurora/RDS endpoint whose name moves on failover is followed), or
//! the first writable host of a failover list.
//!
//! Every new connection asks `SELECT @@global.read_only` (one round trip per connection,
//! not per request) and refuses a read-only server: a named lock taken there would be
//! worthless, since the writes that follow it would be refused. MySQL's `super_read_only`
//! implies `read_only`, so one variable covers both servers.

use std::time::Duration;

use ::mysql::prelude::Queryable;
use ::mysql::{Conn, Error as MySqlError, Opts, OptsBuilder};

use super::errors::ER_TABLEACCESS_DENIED;
use super::MAX_TABLE_FOR_PROCEDURES;
use super::{classify, create_procedures_sql, create_table_sql, StatementTexts, Statements};
use crate::config::{host_port, MySqlConfig, MySqlEndpoint, MySqlProcedures, Timeouts};
use crate::error::{cause, StoreError};
use crate::keeper::{Connector, Failure};

/// An open connection and the statements prepared on it.
pub(super) struct Live {
    pub conn: Conn,
    pub sql: Statements,
}

/// Finds and opens the connection of one MySQL store, and creates the schema on first use.
pub(super) struct MySqlConnector {
    pub endpoint: String,
    /// One entry per host to try, in order: how to name it in messages, and how to open it.
    targets: Vec<(String, Opts)>,
    pub table: String,
    texts: StatementTexts,
    create_table: bool,
    table_ready: bool,
    /// `procedures=` as it applies here: `Off` unless `lock=advisory`.
    pub procedures: MySqlProcedures,
    /// Whether to call the procedures; `procedures=auto` clears it for good (for this
    /// worker) when the server says they are missing or not executable.
    pub calls_usable: bool,
    pub timeouts: Timeouts,
    /// The connection's socket read timeout (see `MySqlStore::new`).
    pub read_timeout: Duration,
}

impl MySqlConnector {
    pub fn new(
        config: &MySqlConfig,
        base: OptsBuilder,
        timeouts: Timeouts,
        read_timeout: Duration,
    ) -> MySqlConnector {
        let endpoint = config.describe();
        let targets = match &config.endpoint {
            MySqlEndpoint::Tcp { host, port } => vec![(
                endpoint.clone(),
                base.ip_or_hostname(Some(host)).tcp_port(*port).into(),
            )],
            MySqlEndpoint::Hosts { hosts } => hosts
                .iter()
                .map(|(host, port)| {
                    let opts = base.clone().ip_or_hostname(Some(host)).tcp_port(*port);
                    (host_port(host, *port), opts.into())
                })
                .collect(),
            MySqlEndpoint::Unix { path } => vec![(
                endpoint.clone(),
                base.socket(Some(path.to_string_lossy())).into(),
            )],
        };
        let procedures = match config.procedures {
            _ if config.lock != crate::config::MySqlLockMode::Advisory => MySqlProcedures::Off,
            MySqlProcedures::Auto if config.table.len() > MAX_TABLE_FOR_PROCEDURES => {
                MySqlProcedures::Off
            }
            p => p,
        };
        MySqlConnector {
            endpoint,
            targets,
            table: config.table.clone(),
            texts: StatementTexts::new(&config.table),
            create_table: config.create_table,
            table_ready: false,
            procedures,
            calls_usable: procedures != MySqlProcedures::Off,
            timeouts,
            read_timeout,
        }
    }

    /// Whether Fleet creates its tables (`create_table=1`).
    pub fn creates_tables(&self) -> bool {
        self.create_table
    }

    pub fn classify(&self, e: MySqlError, connecting: bool) -> StoreError {
        classify(
            &self.endpoint,
            &self.table,
            e,
            self.timeouts,
            self.read_timeout,
            connecting,
        )
    }

    /// Opens `opts` and checks that the server takes writes.
    fn open_writable(&self, name: &str, opts: &Opts) -> Result<Conn, StoreError> {
        let at = |e| classify(name, &self.table, e, self.timeouts, self.read_timeout, true);
        let mut conn = Conn::new(opts.clone()).map_err(at)?;
        let read_only: Option<i64> = conn
            .query_first("SELECT @@global.read_only")
            .map_err(|e| self.classify(e, false))?;
        if read_only.unwrap_or(0) != 0 {
            return Err(StoreError::not_primary(name, cause("the server is read-only (@@read_only = 1): it is a replica, or a demoted primary")));
        }
        Ok(conn)
    }

    /// Creates the table and the procedures if they are missing, as far as the user's
    /// privileges allow: without them the DBA made the objects (or will be told what is
    /// missing by the first statement that needs it, or the procedures are not used).
    fn create_schema(&self, conn: &mut Conn) -> Result<(), StoreError> {
        match conn.query_drop(create_table_sql(&self.table)) {
            Ok(()) => {}
            Err(MySqlError::MySqlError(e)) if e.code == ER_TABLEACCESS_DENIED => {}
            Err(e) => return Err(self.classify(e, false)),
        }
        if self.procedures == MySqlProcedures::Off {
            return Ok(());
        }
        for ddl in create_procedures_sql(&self.table) {
            match conn.query_drop(ddl) {
                // No CREATE ROUTINE privilege, or a server without `CREATE PROCEDURE IF NOT
                // EXISTS` (MySQL before 8.0.29): whether the procedures can be called is
                // found out by calling them.
                Ok(()) | Err(MySqlError::MySqlError(_)) => {}
                Err(e) => return Err(self.classify(e, false)),
            }
        }
        Ok(())
    }
}

impl Connector for MySqlConnector {
    type Conn = Live;
    type Error = MySqlError;

    /// The first host that answers and is writable.
    fn open(&mut self) -> Result<Live, StoreError> {
        let mut conn = self.open_first_writable()?;
        if self.create_table && !self.table_ready {
            self.create_schema(&mut conn)?;
        }
        self.table_ready = true;
        let sql = Statements::prepare(&mut conn, &self.texts, self.calls_usable)
            .map_err(|e| self.classify(e, false))?;
        Ok(Live { conn, sql })
    }

    fn judge(&self, e: MySqlError) -> Failure {
        Failure {
            // The server's error reply leaves the connection usable; anything else leaves it
            // in an unknown state.
            keep: matches!(e, MySqlError::MySqlError(_)),
            error: self.classify(e, false),
        }
    }
}

impl MySqlConnector {
    /// A bare connection to the first host that answers and is writable: no schema check,
    /// no statements prepared (the short-lived gc connection needs neither).
    pub(super) fn open_first_writable(&self) -> Result<Conn, StoreError> {
        let mut passed_over = Vec::new();
        let mut first_error = None;
        let mut conn = None;
        for (name, opts) in &self.targets {
            match self.open_writable(name, opts) {
                Ok(c) => {
                    conn = Some(c);
                    break;
                }
                // Wrong credentials are wrong on every host: say so, not "no host".
                Err(e) if e.kind() == crate::ErrorKind::Auth => return Err(e),
                Err(e) => {
                    passed_over.push(format!("{name}: {e}"));
                    first_error.get_or_insert(e);
                }
            }
        }
        let Some(conn) = conn else {
            return Err(match (self.targets.len(), first_error) {
                (1, Some(e)) => e,
                _ => StoreError::connect(
                    &self.endpoint,
                    cause(format!(
                        "no host of the list is a writable primary ({})",
                        passed_over.join("; ")
                    )),
                ),
            });
        };
        Ok(conn)
    }
}
