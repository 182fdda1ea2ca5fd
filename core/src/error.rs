//! Typed errors. Every message names the problem and the setting that fixes it, because
//! the reader is a PHP admin looking at a warning in a log, not a Rust programmer.

use std::time::Duration;

use thiserror::Error;

use crate::id::InvalidId;

/// A `session.save_path` that cannot be used. Messages quote the offending part but never a
/// password.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    #[error("session.save_path is empty; set it to e.g. \"redis://127.0.0.1:6379\"")]
    Empty,
    #[error("session.save_path \"{value}\" has no scheme; write it as redis://host:port, rediss://host:port, unix:///path/to/redis.sock, redis+sentinel://s1:26379,s2:26379/mymaster, redis+cluster://n1:7000,n2:7001 or mysql://user@host/database")]
    NoScheme { value: String },
    #[error("session.save_path scheme \"{scheme}://\" is not supported; use redis://, rediss://, unix://, redis+sentinel://, rediss+sentinel://, redis+cluster://, rediss+cluster:// or mysql://")]
    UnknownScheme { scheme: String },
    #[error("session.save_path: \"{part}\": {reason}")]
    Invalid { part: String, reason: &'static str },
    #[error("session.save_path: unknown option \"{option}\"; known options are {known}")]
    UnknownOption { option: String, known: &'static str },
    /// `option` is `password_file` or `sentinel_password_file`.
    #[error("session.save_path: cannot read {option} \"{path}\": {cause}")]
    PasswordFile {
        option: &'static str,
        path: String,
        cause: String,
    },
    /// `option` is `password_env` or `sentinel_password_env`.
    #[error("session.save_path: {option} names environment variable \"{name}\", but {cause} (for PHP-FPM, pass it with env[{name}] in the pool config, or clear_env = no)")]
    PasswordEnv {
        option: &'static str,
        name: String,
        cause: &'static str,
    },
    #[error("session.save_path: the {what} has a bad %-escape; write a literal % as %25")]
    BadEscape { what: &'static str },
    /// The file guard (PHP's open_basedir, in the extension) refused a file a setting names.
    #[error("session.save_path: {option} \"{path}\" is not within open_basedir: Fleet does not read files PHP itself may not open")]
    OutsideOpenBasedir { option: &'static str, path: String },
    /// An error whose quote of the value was dropped because it overlapped a part that may
    /// hold a password (an unencoded `/ ? # @ &` makes where a password ends ambiguous).
    #[error("session.save_path: {problem} (the part is not quoted, as it may hold a password; percent-encode any / ? # @ & = % in a password)")]
    Redacted { problem: String },
}

/// Why a session operation did not happen. The endpoint is always without credentials.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot connect to {endpoint}: {cause}. Check that the server runs and session.save_path points at it; raise fleet.connect_timeout (or connect_timeout= in session.save_path) if it is only slow to accept")]
    Connect { endpoint: String, cause: String },
    #[error("TLS with {endpoint} failed: {cause}. Set tls_ca_file= in session.save_path to the CA that signed the server certificate (tls_verify=0 skips verification)")]
    Tls { endpoint: String, cause: String },
    #[error("{endpoint} did not answer within {waited:?}. Raise fleet.read_timeout (or timeout= in session.save_path) if the server is only slow")]
    TimedOut { endpoint: String, waited: Duration },
    #[error("lost the connection to {endpoint}: {cause}. The next request reconnects")]
    ConnectionLost { endpoint: String, cause: String },
    #[error("{endpoint} refused the credentials: {cause}. Check the user and password given in session.save_path (user=, password_file=, password_env=)")]
    Auth { endpoint: String, cause: String },
    #[error("{endpoint} answered with an error: {cause}")]
    Server { endpoint: String, cause: String },
    #[error("{endpoint} is not (or no longer) the primary: {cause}. Fleet dropped that connection and looks for the primary again on the next step; if this persists, point session.save_path at the primary (its managed endpoint name, the sentinels, or a host list)")]
    NotPrimary { endpoint: String, cause: String },
    #[error("session {session} {}: it did not finish within {waited:?} (fleet.lock_wait_timeout), so this request has no session. Raise fleet.lock_wait_timeout if requests on one session really take that long", holder_text(holder))]
    LockWaitTimeout {
        waited: Duration,
        /// The session id, abbreviated (an id is a credential).
        session: String,
        holder: Option<crate::lease::Holder>,
    },
    #[error("this request's session lock was gone when it wrote or destroyed the session: it held the lock for {:.1} s, and {why}. Another request may have changed the session, so this request's changes (or its session_destroy()) were not saved", held.as_secs_f64())]
    LockLost { held: Duration, why: String },
    #[error("the connection to {endpoint} that held this session's lock was lost, so the server released the lock and another request may have changed the session; this request's changes were not saved")]
    LockConnectionLost { endpoint: String },
    #[error("{endpoint} was handed a session lock it did not take (a bug in Fleet); this request's changes were not saved")]
    ForeignLock { endpoint: String },
    #[error("{endpoint}: {cause}")]
    Schema { endpoint: String, cause: String },
    #[error("{endpoint}: session {session}: {cause}; it was left as it is and this request has no session. Delete it (fleetctl sessions destroy) if it stays unreadable")]
    DamagedData {
        endpoint: String,
        session: String,
        cause: String,
    },
    #[error("{endpoint}: session {session} is {size} bytes once read (inflated), more than the {limit} bytes this process can take now; it was left as it is and this request has no session")]
    TooLarge {
        endpoint: String,
        session: String,
        size: usize,
        limit: usize,
    },
    #[error("session id rejected: {0}")]
    InvalidId(#[from] InvalidId),
    #[error(
        "lease name \"{name}\" is not allowed: use 1 to 128 characters of a-z A-Z 0-9 . _ : / @ -"
    )]
    LeaseName { name: String },
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

fn holder_text(holder: &Option<crate::lease::Holder>) -> String {
    match holder {
        Some(h) => h.to_string(),
        None => "is locked by another request".to_owned(),
    }
}

impl StoreError {
    /// Whether the same call may succeed on a fresh connection, having surely not been
    /// carried out on the old one.
    pub fn is_connection_failure(&self) -> bool {
        matches!(self, StoreError::ConnectionLost { .. })
    }

    /// Whether the server said it is not the primary (a demoted node, a replica, a
    /// read-only database): the step was refused, and the primary is elsewhere.
    pub fn is_not_primary(&self) -> bool {
        matches!(self, StoreError::NotPrimary { .. })
    }
}
