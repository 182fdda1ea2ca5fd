//! Turning the driver's errors into [`StoreError`]s an admin can act on, by MySQL error
//! code and I/O error kind.

use std::time::Duration;

use ::mysql::Error as MySqlError;

use crate::config::Timeouts;
use crate::error::{cause, StoreError};

// MySQL/MariaDB error codes Fleet reacts to.
pub(super) const ER_DBACCESS_DENIED: u16 = 1044;
pub(super) const ER_ACCESS_DENIED: u16 = 1045;
pub(super) const ER_BAD_DB: u16 = 1049;
pub(super) const ER_TABLEACCESS_DENIED: u16 = 1142;
pub(super) const ER_NO_SUCH_TABLE: u16 = 1146;
pub(super) const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
pub(super) const ER_LOCK_DEADLOCK: u16 = 1213;
pub(super) const ER_SP_DOES_NOT_EXIST: u16 = 1305;
pub(super) const ER_PROCACCESS_DENIED: u16 = 1370;
/// `--read-only` (or `super_read_only`) refused a statement.
pub(super) const ER_OPTION_PREVENTS_STATEMENT: u16 = 1290;
/// The server is in read-only mode (MySQL).
pub(super) const ER_READ_ONLY_MODE: u16 = 1836;

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
    match e {
        MySqlError::MySqlError(e) => {
            let text = format!("{} (error {})", e.message, e.code);
            // What the admin can do about a missing object or privilege.
            let fix = match e.code {
                ER_ACCESS_DENIED | ER_DBACCESS_DENIED => {
                    return StoreError::auth(endpoint, cause(text))
                }
                ER_READ_ONLY_MODE => return StoreError::not_primary(endpoint, cause(text)),
                ER_OPTION_PREVENTS_STATEMENT
                    if e.message.contains("read-only") || e.message.contains("read_only") =>
                {
                    return StoreError::not_primary(endpoint, cause(text))
                }
                ER_BAD_DB => "Create the database, or fix its name in the store URL".to_owned(),
                ER_NO_SUCH_TABLE => format!(
                    "Create the table with the statement `fleetctl schema --table {table}` prints, or let Fleet create it (create_table=1, the default, needs the CREATE privilege)"
                ),
                ER_TABLEACCESS_DENIED => "Grant SELECT, INSERT, UPDATE, DELETE on the session table to the store URL's user".to_owned(),
                ER_SP_DOES_NOT_EXIST => format!(
                    "Create Fleet's procedures with the statements `fleetctl schema --table {table}` prints (this needs CREATE ROUTINE), or set procedures=auto in the store URL to use plain statements without them"
                ),
                ER_PROCACCESS_DENIED => "Grant EXECUTE on Fleet's procedures to the store URL's user, or set procedures=auto in the store URL".to_owned(),
                _ => return StoreError::server(endpoint, cause(text)),
            };
            StoreError::schema(endpoint, cause(text), &fix)
        }
        e if matches!(
            io_error_kind(&e),
            Some(std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock)
        ) =>
        {
            // A socket read timeout (EAGAIN), also while reading the server's greeting.
            StoreError::timed_out(endpoint, read_timeout)
        }
        MySqlError::DriverError(
            ::mysql::DriverError::ConnectTimeout | ::mysql::DriverError::Timeout,
        ) => StoreError::timed_out(endpoint, timeouts.connect),
        MySqlError::TlsError(e) => StoreError::tls(endpoint, Box::new(e)),
        e if connecting => {
            let text = e.to_string();
            if text.contains("SSL") || text.contains("TLS") || text.contains("certificate") {
                StoreError::tls(endpoint, Box::new(e))
            } else {
                StoreError::connect(endpoint, Box::new(e))
            }
        }
        e => StoreError::connection_lost(endpoint, Box::new(e)),
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
