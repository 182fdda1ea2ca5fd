//! Fleet's errors: [`ConfigError`] for a store URL that cannot be used, [`StoreError`] for a
//! store step that did not happen.
//!
//! A [`StoreError`] follows redis-rs and ripgrep: a [`#[non_exhaustive]`](ErrorKind) kind that
//! callers decide on (never the text), the endpoint (without credentials), the source error
//! kept for [`std::error::Error::source`], and a message that states the facts. The message
//! is complete on its own (it includes the cause's text), so print it, not the chain. Advice
//! that names a PHP setting is not core's to give: the extension adds it in one place
//! (`ext/src/advice.rs`), and fleetctl adds its own.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use thiserror::Error;

use crate::id::InvalidId;

/// A `session.save_path` that cannot be used. Messages quote the offending part but never a
/// password. They name `session.save_path` because the store URL's syntax is that setting's:
/// fleetctl's `--store` and `fleet.lease_store` are documented as written as session.save_path.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    #[error("session.save_path is empty; set it to e.g. \"redis://127.0.0.1:6379\"")]
    /// Nothing was given.
    Empty,
    #[error("session.save_path \"{value}\" has no scheme; write it as redis://host:port, rediss://host:port, unix:///path/to/redis.sock, redis+sentinel://s1:26379,s2:26379/mymaster, redis+cluster://n1:7000,n2:7001 or mysql://user@host/database")]
    /// No `scheme://` in front.
    NoScheme {
        /// The value given.
        value: String,
    },
    #[error("session.save_path scheme \"{scheme}://\" is not supported; use redis://, rediss://, unix://, redis+sentinel://, rediss+sentinel://, redis+cluster://, rediss+cluster:// or mysql://")]
    /// A scheme Fleet has no backend for.
    UnknownScheme {
        /// The scheme given.
        scheme: String,
    },
    #[error("session.save_path: \"{part}\": {reason}")]
    /// One part (a host, a port, an option's value) is not valid.
    Invalid {
        /// The part, as given.
        part: String,
        /// What a valid one looks like.
        reason: &'static str,
    },
    #[error("session.save_path: unknown option \"{option}\"; known options are {known}")]
    /// An option this backend does not take.
    UnknownOption {
        /// The option given.
        option: String,
        /// The options this backend takes.
        known: &'static str,
    },
    /// `option` is `password_file` or `sentinel_password_file`.
    #[error("session.save_path: cannot read {option} \"{path}\": {cause}")]
    PasswordFile {
        /// The option that names the file.
        option: &'static str,
        /// The file.
        path: String,
        /// Why it cannot be read.
        cause: String,
    },
    /// `option` is `encryption_key_file` or `hash_key_file`. The cause never quotes the file.
    #[error("session.save_path: cannot use {option} \"{path}\": {cause}")]
    KeyFile {
        /// The option that names the file.
        option: &'static str,
        /// The file.
        path: String,
        /// Why it cannot be used.
        cause: String,
    },
    /// `option` is `password_env` or `sentinel_password_env`.
    #[error("session.save_path: {option} names environment variable \"{name}\", but {cause} (for PHP-FPM, pass it with env[{name}] in the pool config, or clear_env = no)")]
    PasswordEnv {
        /// The option that names the variable.
        option: &'static str,
        /// The variable.
        name: String,
        /// Why it cannot be used (unset, empty).
        cause: &'static str,
    },
    #[error("session.save_path: the {what} has a bad %-escape; write a literal % as %25")]
    /// A `%` not followed by two hex digits.
    BadEscape {
        /// Which part holds it.
        what: &'static str,
    },
    /// The file guard (PHP's open_basedir, in the extension) refused a file a setting names.
    #[error("session.save_path: {option} \"{path}\" is not within open_basedir: Fleet does not read files PHP itself may not open")]
    OutsideOpenBasedir {
        /// The option that names the file.
        option: &'static str,
        /// The file.
        path: String,
    },
    /// An error whose quote of the value was dropped because it overlapped a part that may
    /// hold a password (an unencoded `/ ? # @ &` makes where a password ends ambiguous).
    #[error("session.save_path: {problem} (the part is not quoted, as it may hold a password; percent-encode any / ? # @ & = % in a password)")]
    Redacted {
        /// The problem, without the quote.
        problem: String,
    },
}

/// What kind of failure a [`StoreError`] is. New kinds may be added.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The server could not be reached or refused the connection.
    Connect,
    /// The TLS handshake failed (often a certificate the CA given does not sign).
    Tls,
    /// The server did not answer in time.
    TimedOut,
    /// An established connection broke; the step surely did not happen on it.
    ConnectionLost,
    /// The server refused the credentials.
    Auth,
    /// The server answered with an error, or with a reply Fleet does not understand.
    Server,
    /// The server is not (or no longer) the primary: a replica, or a demoted node.
    NotPrimary,
    /// Another request held the session's lock for longer than this one may wait.
    LockWaitTimeout,
    /// This request's lock was gone when it wrote: its changes were not saved.
    LockLost,
    /// The connection that held a connection-bound lock (MySQL) was lost, and the lock with it.
    LockConnectionLost,
    /// The store was handed a lock another backend took (a bug).
    ForeignLock,
    /// A database object or privilege Fleet needs is missing.
    Schema,
    /// The stored data cannot be read (a damaged frame); it is left as it is.
    DamagedData,
    /// The stored session is larger than this process can take now.
    TooLarge,
    /// A session id outside PHP's id alphabet or length.
    InvalidId,
    /// A lease name outside the allowed characters.
    InvalidLeaseName,
    /// The operating system failed Fleet (its random number generator, starting a thread).
    System,
    /// The backend does not offer what was asked of it (`locking=merge` on a store without
    /// conditional writes).
    Unsupported,
    /// A merge-mode write kept being overtaken by other requests' writes, with no lock left to
    /// fall back to; it was not saved.
    Overtaken,
}

/// The message of a lost lock, held for `held`, that was gone because `why`: core words `why`
/// with a [`LockLoss`], the extension with PHP's settings in it.
pub fn lock_lost_text(held: Duration, why: &dyn fmt::Display) -> String {
    format!("this request's session lock was gone when it wrote or destroyed the session: it held the lock for {:.1} s, and {why}. Another request may have changed the session, so this request's changes (or its session_destroy()) were not saved", held.as_secs_f64())
}

/// Why a session operation did not happen: what kind of failure, where, and the facts.
pub struct StoreError {
    kind: ErrorKind,
    endpoint: Option<String>,
    message: String,
    detail: Detail,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

/// What a caller may need beyond the kind, for the kinds that have more to say.
#[derive(Debug)]
enum Detail {
    None,
    Waited(Duration),
    /// Why, and how long it had been held (boxed: errors are returned everywhere, and are
    /// kept small).
    LockLost(Box<(LockLoss, Duration)>),
    InvalidId(InvalidId),
}

/// Why a lock was gone when its holder wrote (the [`ErrorKind::LockLost`] errors).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum LockLoss {
    /// Renewal is off, so the lock ended when its TTL ran out.
    NotRenewed {
        /// The lock's TTL.
        ttl: Duration,
    },
    /// Renewal stopped at the maximum hold, and the lock ended a TTL later.
    MaxHold {
        /// The maximum hold.
        max: Duration,
        /// The lock's TTL.
        ttl: Duration,
    },
    /// Renewing failed until the TTL ran out.
    RenewalFailing {
        /// Why the last renewal failed.
        cause: String,
        /// The lock's TTL.
        ttl: Duration,
    },
    /// The lock was renewed but gone at the write: deleted or expired on the server.
    Vanished {
        /// How many times it had been renewed.
        renewals: u64,
        /// The lock's TTL.
        ttl: Duration,
    },
    /// A statement failed inside the transaction that held a MySQL row lock.
    TransactionFailed,
    /// No transaction of this request holds its MySQL row lock.
    NoTransaction,
}

impl fmt::Display for LockLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = |d: &Duration| d.as_secs_f64();
        match self {
            LockLoss::NotRenewed { ttl } => write!(
                f,
                "it was not renewed (renewal is off), so it ended when its TTL of {:.1} s ran out",
                secs(ttl)
            ),
            LockLoss::MaxHold { max, ttl } => write!(
                f,
                "renewal stopped at the maximum hold of {:.1} s, and it ended {:.1} s later",
                secs(max),
                secs(ttl)
            ),
            LockLoss::RenewalFailing { cause, ttl } => write!(
                f,
                "renewing it failed ({cause}) until its TTL of {:.1} s ran out",
                secs(ttl)
            ),
            LockLoss::Vanished { renewals, ttl } => write!(
                f,
                "it was renewed {renewals} times but was gone at the write: it was deleted or expired on the server (a failover to a replica that had not received it, a flush, or a stall of the worker or the network longer than the TTL of {:.1} s)",
                secs(ttl)
            ),
            LockLoss::TransactionFailed => f.write_str(
                "a statement failed inside the transaction that held its row lock, which may have rolled the transaction back (a deadlock always does; a lock wait timeout does with innodb_rollback_on_timeout) and so ended the lock",
            ),
            LockLoss::NoTransaction => {
                f.write_str("no transaction of this request holds its row lock")
            }
        }
    }
}

/// A cause known only as text (a reply Fleet does not understand, a list of hosts passed
/// over), kept as the source so every cause is reached the same way.
#[derive(Debug)]
struct Cause(String);

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Cause {}

/// A source error: the driver's own error type, or text.
pub(crate) type Source = Box<dyn StdError + Send + Sync + 'static>;

/// Text as a source error.
pub(crate) fn cause(text: impl Into<String>) -> Source {
    Box::new(Cause(text.into()))
}

impl StoreError {
    fn new(kind: ErrorKind, endpoint: Option<&str>, message: String) -> StoreError {
        StoreError {
            kind,
            endpoint: endpoint.map(str::to_owned),
            message,
            detail: Detail::None,
            source: None,
        }
    }

    fn caused(mut self, source: Source) -> StoreError {
        self.source = Some(source);
        self
    }

    /// The server at `endpoint` could not be reached.
    pub(crate) fn connect(endpoint: &str, source: Source) -> StoreError {
        StoreError::new(
            ErrorKind::Connect,
            Some(endpoint),
            format!("cannot connect to {endpoint}: {source}"),
        )
        .caused(source)
    }

    /// The TLS handshake with `endpoint` failed.
    pub(crate) fn tls(endpoint: &str, source: Source) -> StoreError {
        StoreError::new(
            ErrorKind::Tls,
            Some(endpoint),
            format!("TLS with {endpoint} failed: {source}"),
        )
        .caused(source)
    }

    /// `endpoint` did not answer within `waited`.
    pub(crate) fn timed_out(endpoint: &str, waited: Duration) -> StoreError {
        let mut e = StoreError::new(
            ErrorKind::TimedOut,
            Some(endpoint),
            format!("{endpoint} did not answer within {waited:?}"),
        );
        e.detail = Detail::Waited(waited);
        e
    }

    /// The connection to `endpoint` broke.
    pub(crate) fn connection_lost(endpoint: &str, source: Source) -> StoreError {
        StoreError::new(
            ErrorKind::ConnectionLost,
            Some(endpoint),
            format!("lost the connection to {endpoint}: {source}. The next request reconnects"),
        )
        .caused(source)
    }

    /// `endpoint` refused the credentials.
    pub(crate) fn auth(endpoint: &str, source: Source) -> StoreError {
        StoreError::new(
            ErrorKind::Auth,
            Some(endpoint),
            format!("{endpoint} refused the credentials: {source}"),
        )
        .caused(source)
    }

    /// `endpoint` answered with an error, or with a reply Fleet does not understand.
    pub(crate) fn server(endpoint: &str, source: Source) -> StoreError {
        StoreError::new(
            ErrorKind::Server,
            Some(endpoint),
            format!("{endpoint} answered with an error: {source}"),
        )
        .caused(source)
    }

    /// `endpoint` is not the primary.
    pub(crate) fn not_primary(endpoint: &str, source: Source) -> StoreError {
        // The message goes on after the cause.
        let text = source.to_string();
        let text = text.trim_end_matches('.');
        StoreError::new(
            ErrorKind::NotPrimary,
            Some(endpoint),
            format!("{endpoint} is not (or no longer) the primary: {text}. Fleet dropped that connection and looks for the primary again on the next step"),
        )
        .caused(source)
    }

    /// Session `session` (abbreviated: an id is a credential) stayed locked for `waited`.
    pub(crate) fn lock_wait_timeout(
        session: &str,
        holder: Option<&crate::lease::Holder>,
        waited: Duration,
    ) -> StoreError {
        let holder = match holder {
            Some(h) => h.to_string(),
            None => "is locked by another request".to_owned(),
        };
        StoreError::new(
            ErrorKind::LockWaitTimeout,
            None,
            format!("session {session} {holder}: it did not finish within {waited:?}"),
        )
    }

    /// This request's lock, held for `held`, was gone at the write, because of `loss`.
    pub(crate) fn lock_lost(held: Duration, loss: LockLoss) -> StoreError {
        let mut e = StoreError::new(ErrorKind::LockLost, None, lock_lost_text(held, &loss));
        e.detail = Detail::LockLost(Box::new((loss, held)));
        e
    }

    /// The connection to `endpoint` that held a connection-bound lock was lost.
    pub(crate) fn lock_connection_lost(endpoint: &str) -> StoreError {
        StoreError::new(
            ErrorKind::LockConnectionLost,
            Some(endpoint),
            format!("the connection to {endpoint} that held this session's lock was lost, so the server released the lock and another request may have changed the session; this request's changes were not saved"),
        )
    }

    /// `endpoint` was handed a lock another backend took.
    pub(crate) fn foreign_lock(endpoint: &str) -> StoreError {
        StoreError::new(
            ErrorKind::ForeignLock,
            Some(endpoint),
            format!("{endpoint} was handed a session lock it did not take (a bug in Fleet); this request's changes were not saved"),
        )
    }

    /// A database object or privilege is missing; `source` says which and `fix` what to do.
    pub(crate) fn schema(endpoint: &str, source: Source, fix: &str) -> StoreError {
        StoreError::new(
            ErrorKind::Schema,
            Some(endpoint),
            format!("{endpoint}: {source}. {fix}"),
        )
        .caused(source)
    }

    /// Session `session`'s stored data cannot be read.
    pub(crate) fn damaged(endpoint: &str, session: &str, source: Source) -> StoreError {
        StoreError::new(
            ErrorKind::DamagedData,
            Some(endpoint),
            format!("{endpoint}: session {session}: {source}; it was left as it is"),
        )
        .caused(source)
    }

    /// Session `session` is `size` bytes once read, more than the `limit` this process can take.
    pub(crate) fn too_large(
        endpoint: &str,
        session: &str,
        size: usize,
        limit: usize,
    ) -> StoreError {
        StoreError::new(
            ErrorKind::TooLarge,
            Some(endpoint),
            format!("{endpoint}: session {session} is {size} bytes once read (inflated), more than the {limit} bytes this process can take now; it was left as it is"),
        )
    }

    /// A lease name outside the allowed characters (`shown` is safe to print).
    pub(crate) fn lease_name(shown: &str) -> StoreError {
        StoreError::new(
            ErrorKind::InvalidLeaseName,
            None,
            format!("lease name \"{shown}\" is not allowed: use 1 to 128 characters of a-z A-Z 0-9 . _ : / @ -"),
        )
    }

    /// Session `session`'s merge-mode write was overtaken `attempts` times in a row.
    pub(crate) fn overtaken(endpoint: &str, session: &str, attempts: u32) -> StoreError {
        StoreError::new(
            ErrorKind::Overtaken,
            Some(endpoint),
            format!("{endpoint}: session {session} kept changing: {attempts} merge-mode writes in a row were overtaken by other requests' writes, and there was no lock to fall back to; this request's changes were not saved"),
        )
    }

    /// `endpoint`'s backend does not offer `what`.
    pub(crate) fn unsupported(endpoint: &str, what: &str) -> StoreError {
        StoreError::new(
            ErrorKind::Unsupported,
            Some(endpoint),
            format!("{endpoint}: this backend does not offer {what}"),
        )
    }

    /// The operating system failed at `what`.
    pub(crate) fn system(what: &str, source: Source) -> StoreError {
        StoreError::new(ErrorKind::System, None, format!("{what}: {source}")).caused(source)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The endpoint (without credentials) the failure happened at, where there is one.
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// Why the lock was gone, for [`ErrorKind::LockLost`].
    pub fn lock_loss(&self) -> Option<&LockLoss> {
        match &self.detail {
            Detail::LockLost(lost) => Some(&lost.0),
            _ => None,
        }
    }

    /// How long the lock had been held when it was found gone, for [`ErrorKind::LockLost`].
    pub fn lock_held(&self) -> Option<Duration> {
        match &self.detail {
            Detail::LockLost(lost) => Some(lost.1),
            _ => None,
        }
    }

    /// What was wrong with the id, for [`ErrorKind::InvalidId`].
    pub fn invalid_id(&self) -> Option<&InvalidId> {
        match &self.detail {
            Detail::InvalidId(id) => Some(id),
            _ => None,
        }
    }

    /// The cause in words: the source's text, or what the kind says where it has none
    /// (used to list the hosts passed over in a failover).
    pub(crate) fn cause_text(&self) -> String {
        match (&self.source, &self.detail) {
            // As in the message, where more text follows the cause.
            (Some(source), _) if self.kind == ErrorKind::NotPrimary => {
                source.to_string().trim_end_matches('.').to_owned()
            }
            (Some(source), _) => source.to_string(),
            (None, Detail::Waited(waited)) => format!("no answer within {waited:?}"),
            (None, _) => self.message.clone(),
        }
    }

    /// Whether the same call may succeed on a fresh connection, having surely not been
    /// carried out on the old one.
    pub fn is_connection_failure(&self) -> bool {
        self.kind == ErrorKind::ConnectionLost
    }

    /// Whether the server said it is not the primary (a demoted node, a replica, a
    /// read-only database): the step was refused, and the primary is elsewhere.
    pub fn is_not_primary(&self) -> bool {
        self.kind == ErrorKind::NotPrimary
    }
}

impl From<InvalidId> for StoreError {
    fn from(e: InvalidId) -> StoreError {
        let mut error = StoreError::new(
            ErrorKind::InvalidId,
            None,
            format!("session id rejected: {e}"),
        );
        error.detail = Detail::InvalidId(e);
        error
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreError")
            .field("kind", &self.kind)
            .field("endpoint", &self.endpoint)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}
