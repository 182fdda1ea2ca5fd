//! The options of a save_path's query string: what every backend shares ([`CommonConfig`]),
//! and the tables that map each option name to the code that takes it. A backend's table
//! drives both its parsing and the "known options are …" of an unknown option, so the two
//! cannot drift apart. A table is a static: its entries are names and function pointers.

use std::sync::OnceLock;
use std::time::Duration;

use super::{parse_seconds, parse_seconds_long, query_pairs, Credentials, Lifetimes, Timeouts};
use crate::compress::Compression;
use crate::error::ConfigError;

/// What every backend's save_path can set, whatever the backend.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommonConfig {
    /// `connect_timeout=`; `None`: the caller's default (`fleet.connect_timeout` in PHP).
    pub connect_timeout: Option<Duration>,
    /// `timeout=` or `read_timeout=`; `None`: the caller's default (`fleet.read_timeout`).
    pub command_timeout: Option<Duration>,
    /// Replace a connection older than this when a request starts.
    pub max_connection_age: Option<Duration>,
    /// Shorter lifetimes for new sessions and crawlers.
    pub lifetimes: Lifetimes,
    /// `compression`, `compression_min_size`.
    pub compression: Compression,
    /// `locking=`: how requests on this store hold their sessions; `None`: the caller's
    /// default (`fleet.locking` in PHP).
    pub locking: Option<Locking>,
    /// `encryption_key_file`, `hash_ids`, `hash_key_file`: shared, as a worker's stores
    /// all hold the same keys.
    pub sealing: std::sync::Arc<crate::seal::Sealing>,
    /// `hash_ids=1` was given: checked once every option is read (it needs a secret).
    pub(crate) hash_ids: bool,
    /// `hash_key_file=` was given, read (its secret is in `sealing` once checked).
    pub(crate) hash_key: Option<crate::seal::IdHasher>,
}

/// How requests hold their session while they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Locking {
    /// No lock: the last writer wins, and parallel changes are lost.
    Off,
    /// A lock from read to write: parallel requests of one session wait for each other.
    On,
    /// No lock: a write lands only on the session as read, or merged with what other
    /// requests stored meanwhile, per top-level variable.
    Merge,
}

impl Locking {
    /// `1`/`on`/`yes`/`true`, `0`/`off`/`no`/`false`, or `merge`, as INI booleans are written.
    pub fn parse(text: &str) -> Option<Locking> {
        match text.trim().to_ascii_lowercase().as_str() {
            "1" | "on" | "yes" | "true" => Some(Locking::On),
            "0" | "off" | "no" | "false" | "" => Some(Locking::Off),
            "merge" => Some(Locking::Merge),
            _ => None,
        }
    }
}

impl CommonConfig {
    /// Effective timeouts: save_path options where given, else `defaults`.
    pub fn timeouts(&self, defaults: Timeouts) -> Timeouts {
        Timeouts {
            connect: self.connect_timeout.unwrap_or(defaults.connect),
            command: self.command_timeout.unwrap_or(defaults.command),
        }
    }

    /// How a store's connection is used, with `defaults` where the URL sets nothing.
    pub fn connection(&self, defaults: Timeouts) -> ConnectionTerms {
        ConnectionTerms {
            timeouts: self.timeouts(defaults),
            max_age: self.max_connection_age,
        }
    }
}

/// How a backend uses its connection, resolved before it is opened: what the URL's options
/// and the caller's defaults (PHP's INI entries) come to. What a backend store takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionTerms {
    /// Connect and command timeouts.
    pub timeouts: Timeouts,
    /// Replace a connection older than this when a request starts (`max_connection_age=`).
    pub max_age: Option<Duration>,
}

/// What takes an option, for a backend whose partly parsed config is `P`.
pub(crate) enum Takes<P> {
    /// One of [`CommonConfig`]'s.
    Common(fn(&mut CommonConfig, &str, &str) -> Result<(), ConfigError>),
    /// A credential (`user`, `password_file`, `password_env`, an inline password), which
    /// [`Credentials`] gathers so that a password given two ways is refused.
    Credential,
    /// The backend's own.
    Own(fn(&mut P, &str, String) -> Result<(), ConfigError>),
    /// Accepted for compatibility with another handler's save_path, and ignored.
    Ignored,
}

/// One option of a backend's table.
pub(crate) struct Opt<P> {
    pub name: &'static str,
    /// Listed among the known options (aliases and ignored options are not).
    pub shown: bool,
    pub takes: Takes<P>,
}

/// A backend's config while its options are read.
pub(crate) trait Pending {
    fn common(&mut self) -> &mut CommonConfig;
    fn credentials(&mut self) -> &mut Credentials;
}

/// One of [`CommonConfig`]'s options, taken by `takes` (one of the functions below).
pub(crate) const fn common<P>(
    name: &'static str,
    takes: fn(&mut CommonConfig, &str, &str) -> Result<(), ConfigError>,
) -> Opt<P> {
    Opt {
        name,
        shown: true,
        takes: Takes::Common(takes),
    }
}

/// `connect_timeout=`.
pub(crate) fn connect_timeout(
    c: &mut CommonConfig,
    name: &str,
    value: &str,
) -> Result<(), ConfigError> {
    c.connect_timeout = Some(parse_seconds(name, value)?);
    Ok(())
}

/// `timeout=`, `read_timeout=`.
pub(crate) fn command_timeout(
    c: &mut CommonConfig,
    name: &str,
    value: &str,
) -> Result<(), ConfigError> {
    c.command_timeout = Some(parse_seconds(name, value)?);
    Ok(())
}

/// `max_connection_age=`.
pub(crate) fn max_connection_age(
    c: &mut CommonConfig,
    name: &str,
    value: &str,
) -> Result<(), ConfigError> {
    c.max_connection_age = Some(parse_seconds_long(name, value)?);
    Ok(())
}

/// `locking=`.
pub(crate) fn locking(c: &mut CommonConfig, name: &str, value: &str) -> Result<(), ConfigError> {
    c.locking = Some(Locking::parse(value).ok_or_else(|| ConfigError::Invalid {
        part: format!("{name}={value}"),
        reason: "use 1 (lock), 0 (no lock) or merge",
    })?);
    Ok(())
}

/// `compression=`, `compression_min_size=`.
pub(crate) fn compression(
    c: &mut CommonConfig,
    name: &str,
    value: &str,
) -> Result<(), ConfigError> {
    taken(name, c.compression.take_option(name, value)?)
}

/// `encryption_key_file=`: the keys, read now (the file guard checked), so a missing or
/// malformed file stops session_start() with the option's name.
pub(crate) fn encryption_key_file(
    c: &mut CommonConfig,
    name: &str,
    value: &str,
) -> Result<(), ConfigError> {
    let option = "encryption_key_file";
    let contents = crate::seal::read_key_file(option, value)?;
    let keys = crate::seal::Keyring::parse(&contents).map_err(|cause| ConfigError::KeyFile {
        option,
        path: value.to_owned(),
        cause,
    })?;
    let _ = name;
    std::sync::Arc::make_mut(&mut c.sealing).keys = Some(keys);
    Ok(())
}

/// `hash_key_file=`: the secret of `hash_ids=1`.
pub(crate) fn hash_key_file(c: &mut CommonConfig, _: &str, value: &str) -> Result<(), ConfigError> {
    let option = "hash_key_file";
    let contents = crate::seal::read_key_file(option, value)?;
    let hasher = crate::seal::IdHasher::parse(&contents).map_err(|cause| ConfigError::KeyFile {
        option,
        path: value.to_owned(),
        cause,
    })?;
    c.hash_key = Some(hasher);
    Ok(())
}

/// `hash_ids=`: 1 or 0.
pub(crate) fn hash_ids(c: &mut CommonConfig, name: &str, value: &str) -> Result<(), ConfigError> {
    c.hash_ids = flag(name, value)?;
    Ok(())
}

impl CommonConfig {
    /// Once every option is read: `hash_ids=1` takes its secret from `hash_key_file=`, which
    /// it requires. (Deriving it from the encryption key would rename every session, so log
    /// everybody out, the day that key is rotated.)
    pub(crate) fn finish_sealing(&mut self) -> Result<(), ConfigError> {
        let hasher = self.hash_key.take();
        match (self.hash_ids, hasher) {
            (false, None) => Ok(()),
            (false, Some(_)) => Err(ConfigError::Invalid {
                part: "hash_key_file".into(),
                reason: "it is the secret of hash_ids=1; add hash_ids=1, or drop it",
            }),
            (true, None) => Err(ConfigError::Invalid {
                part: "hash_ids=1".into(),
                reason: "it needs its own secret: give hash_key_file= (a file like encryption_key_file's, kept when encryption keys rotate)",
            }),
            (true, Some(hasher)) => {
                std::sync::Arc::make_mut(&mut self.sealing).hasher = Some(hasher);
                Ok(())
            }
        }
    }
}

/// `require_encryption=`: 1 or 0.
pub(crate) fn require_encryption(
    c: &mut CommonConfig,
    name: &str,
    value: &str,
) -> Result<(), ConfigError> {
    std::sync::Arc::make_mut(&mut c.sealing).required = flag(name, value)?;
    Ok(())
}

fn flag(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "1" | "on" | "yes" | "true" => Ok(true),
        "0" | "off" | "no" | "false" | "" => Ok(false),
        _ => Err(ConfigError::Invalid {
            part: format!("{name}={value}"),
            reason: "use 1 or 0",
        }),
    }
}

/// `first_lifetime=`, `bot_lifetime=`, `bot_first_lifetime=`, `bot_pattern=`.
pub(crate) fn lifetime(c: &mut CommonConfig, name: &str, value: &str) -> Result<(), ConfigError> {
    taken(name, c.lifetimes.take_option(name, value)?)
}

/// An error if a table sent option `name` to code that does not take it: a mistake in the
/// table, which the tests of each table rule out.
fn taken(name: &str, was_taken: bool) -> Result<(), ConfigError> {
    match was_taken {
        true => Ok(()),
        false => Err(ConfigError::Invalid {
            part: name.to_owned(),
            reason:
                "this option reached code that does not take it (a defect in Fleet's option table)",
        }),
    }
}

/// A credential option, listed or not.
pub(crate) const fn credential<P>(name: &'static str, shown: bool) -> Opt<P> {
    Opt {
        name,
        shown,
        takes: Takes::Credential,
    }
}

/// A backend's own option, listed or not.
pub(crate) const fn own<P>(
    name: &'static str,
    shown: bool,
    takes: fn(&mut P, &str, String) -> Result<(), ConfigError>,
) -> Opt<P> {
    Opt {
        name,
        shown,
        takes: Takes::Own(takes),
    }
}

/// An option accepted and ignored, never listed.
pub(crate) const fn ignored<P>(name: &'static str) -> Opt<P> {
    Opt {
        name,
        shown: false,
        takes: Takes::Ignored,
    }
}

/// Reads `query`'s options into `pending` through `table`. `inline_passwords` are the
/// options whose value is a password (decoded as one, so an error never quotes it);
/// `known` keeps the known-options message, made from the table once.
pub(crate) fn apply<P: Pending>(
    table: &[Opt<P>],
    known: &'static OnceLock<String>,
    pending: &mut P,
    query: &str,
    inline_passwords: &[&str],
) -> Result<(), ConfigError> {
    for pair in query_pairs(query, inline_passwords) {
        let (name, value) = pair?;
        let Some(opt) = table.iter().find(|o| o.name == name) else {
            return Err(ConfigError::UnknownOption {
                option: name,
                known: known_options(table, known),
            });
        };
        match opt.takes {
            Takes::Common(take) => take(pending.common(), &name, &value)?,
            Takes::Credential => {
                let was_taken =
                    pending
                        .credentials()
                        .take_option(&name, &value, inline_passwords)?;
                taken(&name, was_taken)?;
            }
            Takes::Own(take) => take(pending, &name, value)?,
            Takes::Ignored => {}
        }
    }
    pending.common().finish_sealing()
}

/// The options `table` lists, in its order: "a, b, c".
pub(crate) fn known_options<P>(table: &[Opt<P>], known: &'static OnceLock<String>) -> &'static str {
    known.get_or_init(|| {
        table
            .iter()
            .filter(|o| o.shown)
            .map(|o| o.name)
            .collect::<Vec<_>>()
            .join(", ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every option a table sends to shared code is one that code takes: none reaches the
    /// "defect in Fleet's option table" refusal, whatever its value.
    fn check_table<P: Pending>(table: &[Opt<P>], mut pending: impl FnMut() -> P) {
        for opt in table {
            for value in ["1", "lz4", "x"] {
                let mut p = pending();
                let outcome = match opt.takes {
                    Takes::Common(take) => take(p.common(), opt.name, value),
                    Takes::Credential => p
                        .credentials()
                        .take_option(opt.name, value, &["auth", "password"])
                        .and_then(|t| taken(opt.name, t)),
                    Takes::Own(_) | Takes::Ignored => Ok(()),
                };
                if let Err(e) = outcome {
                    assert!(
                        !e.to_string().contains("defect"),
                        "{}={value}: {e}",
                        opt.name
                    );
                }
            }
        }
    }

    #[test]
    fn every_shared_option_of_each_table_reaches_code_that_takes_it() {
        check_table(
            super::super::redis::OPTIONS,
            super::super::redis::test_pending,
        );
        check_table(
            super::super::mysql::OPTIONS,
            super::super::mysql::test_pending,
        );
    }

    #[test]
    fn the_known_options_are_the_tables_listed_names_in_order() {
        let known = OnceLock::new();
        let listed = known_options(super::super::redis::OPTIONS, Box::leak(Box::new(known)));
        assert!(
            listed.starts_with("prefix, database, connect_timeout, timeout, read_timeout, auth,"),
            "{listed}"
        );
        assert!(
            !listed.contains("persistent") && !listed.contains("db,"),
            "{listed}"
        );
    }
}
