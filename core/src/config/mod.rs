//! `session.save_path` parsing into a typed configuration.
//!
//! One module per backend: `redis` (standalone, TLS, unix socket, Sentinel, Cluster) and
//! `mysql` (one server or a failover host list). This module holds what they share: the
//! scheme dispatch, credentials (inline, from a file, from the environment), timeouts, the
//! query-string reader and `%`-decoding. Errors quote the offending part of the value, never
//! a password: the userinfo is taken out before anything else is parsed, and every error
//! leaves [`parse_save_path`] through `scrub`, which drops a quote that overlaps a part of
//! the value that may hold a password.
//!
//! Files a setting names (`password_file`, `sentinel_password_file`, `tls_ca_file`) pass the
//! process's file guard ([`set_file_guard`]; PHP's open_basedir in the extension) before
//! Fleet opens them, so a tenant of a shared host cannot make Fleet read another's file.

use std::fmt;
use std::path::Path;
use std::sync::RwLock;
use std::time::Duration;

use crate::error::ConfigError;

mod lifetimes;
mod mysql;
mod options;
mod redis;
mod scrub;

pub use lifetimes::{BotPattern, Lifetimes, DEFAULT_BOT_PATTERN};
pub use options::{CommonConfig, ConnectionTerms, Locking};
pub use scrub::redact_userinfo;
use scrub::{scrub, secret_regions};

pub use mysql::{
    validate_table_name, MySqlConfig, MySqlEndpoint, MySqlLockMode, MySqlProcedures, MySqlTls,
    DEFAULT_GC_INTERVAL, DEFAULT_TABLE, MAX_TABLE_FOR_PROCEDURES,
};
pub use redis::{
    host_port, RedisConfig, RedisEndpoint, RedisTls, DEFAULT_PREFIX, DEFAULT_SENTINEL_PORT,
};

/// A password. Its `Debug` and `Display` never show the value, so it cannot leak through
/// a log line or a warning by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The password itself, for the one place that must send it to the server.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The check installed by [`set_file_guard`]; `None` (fleetctl, tests) allows every file.
/// A lock rather than a `OnceLock` so a test can install a guard of its own.
static FILE_GUARD: RwLock<Option<FileGuard>> = RwLock::new(None);

/// Whether a file named by a setting may be opened.
type FileGuard = fn(&Path) -> bool;

/// Installs the check every file named by a setting must pass before Fleet opens it (the PHP extension installs PHP's open_basedir check). Returns whether it is allowed.
pub fn set_file_guard(guard: fn(&std::path::Path) -> bool) {
    // A fn pointer cannot be left half-written, so a poisoned lock still holds a valid value.
    let mut slot = FILE_GUARD
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    *slot = Some(guard);
}

fn installed_guard() -> fn(&Path) -> bool {
    let slot = FILE_GUARD
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    slot.unwrap_or(|_| true)
}

/// Whether the installed guard lets Fleet open `path`.
pub(crate) fn file_allowed(path: &Path) -> bool {
    installed_guard()(path)
}

/// Refuses `path`, named by setting `option`, unless `guard` allows it.
pub(crate) fn check_file_with(
    guard: fn(&Path) -> bool,
    option: &'static str,
    path: &str,
) -> Result<(), ConfigError> {
    match guard(Path::new(path)) {
        true => Ok(()),
        false => Err(ConfigError::OutsideOpenBasedir {
            option,
            path: path.to_owned(),
        }),
    }
}

/// Refuses `path`, named by setting `option`, unless the installed guard allows it.
pub(crate) fn check_file(option: &'static str, path: &str) -> Result<(), ConfigError> {
    check_file_with(installed_guard(), option, path)
}

/// save_path options override them per pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Bound on opening a connection (TCP connect, TLS and auth handshakes).
    pub connect: Duration,
    /// Bound on any single command's reply (blocking lock waits add their own wait on top).
    pub command: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(1),
            command: Duration::from_secs(1),
        }
    }
}

/// A parsed `session.save_path`: what every backend's URL can set, and the backend with
/// everything needed to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Timeouts, connection age, lifetimes, compression: the same options on every backend.
    pub common: CommonConfig,
    /// Which backend, and how to reach it.
    pub backend: BackendConfig,
}

/// The backend of a [`StoreConfig`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendConfig {
    /// `redis://`, `rediss://`, `tcp://`, `unix://`, `redis+sentinel://`, `redis+cluster://`.
    Redis(RedisConfig),
    /// `mysql://` (MySQL or MariaDB).
    MySql(MySqlConfig),
}

impl StoreConfig {
    /// How the store's connection is used, with `defaults` (PHP's `fleet.*` INI entries, or
    /// `Timeouts::default()`) where the URL sets nothing: resolved once, before opening.
    pub fn connection(&self, defaults: Timeouts) -> ConnectionTerms {
        self.common.connection(defaults)
    }

    /// The compression options of this save_path.
    pub fn compression(&self) -> crate::compress::Compression {
        self.common.compression
    }

    /// The save_path's `locking=`, if it has one.
    pub fn locking(&self) -> Option<Locking> {
        self.common.locking
    }

    /// The lifetime options (`first_lifetime`, `bot_lifetime`, …) of this save_path.
    pub fn lifetimes(&self) -> &Lifetimes {
        &self.common.lifetimes
    }

    /// Where the backend is, for warnings; never contains a password.
    pub fn endpoint(&self) -> String {
        match &self.backend {
            BackendConfig::Redis(c) => c.endpoint.to_string(),
            BackendConfig::MySql(c) => c.describe(),
        }
    }
}

/// Parses a `session.save_path` value. Errors quote the offending part of the value, but
/// never a password.
pub fn parse_save_path(save_path: &str) -> Result<StoreConfig, ConfigError> {
    let save_path = save_path.trim();
    parse_unscrubbed(save_path).map_err(|e| scrub(e, &secret_regions(save_path)))
}

fn parse_unscrubbed(save_path: &str) -> Result<StoreConfig, ConfigError> {
    if save_path.is_empty() {
        return Err(ConfigError::Empty);
    }
    let Some((scheme, rest)) = split_scheme(save_path) else {
        return Err(ConfigError::NoScheme {
            value: redact_userinfo(save_path),
        });
    };
    let scheme = scheme.to_ascii_lowercase();
    let (userinfo, rest) = split_userinfo(&scheme, rest);
    match scheme.as_str() {
        "redis" | "tcp" | "rediss" | "tls" | "unix" | "redis+sentinel" | "rediss+sentinel"
        | "redis+cluster" | "rediss+cluster" => {
            redis::parse(&scheme, userinfo, rest).map(|(common, c)| StoreConfig {
                common,
                backend: BackendConfig::Redis(c),
            })
        }
        "mysql" | "mariadb" => mysql::parse(userinfo, rest).map(|(common, c)| StoreConfig {
            common,
            backend: BackendConfig::MySql(c),
        }),
        _ => Err(ConfigError::UnknownScheme { scheme }),
    }
}

/// `scheme` and what follows `://`, if the value starts with a scheme. A "scheme" with
/// characters no scheme has (`u:pw@h://…`) is not one, and is not quoted as one.
fn split_scheme(value: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = value.split_once("://")?;
    let plain = scheme
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    (!scheme.is_empty() && plain).then_some((scheme, rest))
}

/// Takes the userinfo (`user:password`) off what follows `scheme://`, before anything else
/// is parsed, so no later step sees it.
///
/// A password should have `/ ? # @` percent-encoded, but often does not (base64 has `/`).
/// So the userinfo ends at the last `@`, not at the first `/` or `?`, except that an `@`
/// after `?name=` is in the query (`?prefix=a@b`, `?auth=p@ss`), and `unix:///path` has
/// none. Where this guess is wrong the value does not parse, and [`scrub`] keeps the error
/// from quoting the password.
fn split_userinfo<'a>(scheme: &str, rest: &'a str) -> (Option<&'a str>, &'a str) {
    if scheme == "unix" && rest.starts_with('/') {
        return (None, rest);
    }
    let in_query = |before: &str| before.find('?').is_some_and(|q| before[q..].contains('='));
    match rest
        .match_indices('@')
        .rev()
        .map(|(at, _)| at)
        .find(|&at| !in_query(&rest[..at]))
    {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    }
}

pub(crate) fn split_query(rest: &str) -> (&str, &str) {
    match rest.split_once('?') {
        Some((a, q)) => (a, q),
        None => (rest, ""),
    }
}

pub(crate) fn parse_host_port(
    hostport: &str,
    default_port: u16,
) -> Result<(String, u16), ConfigError> {
    if hostport.is_empty() {
        return Err(ConfigError::Invalid {
            part: String::new(),
            reason: "the host is missing",
        });
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let Some((host, after)) = v6.split_once(']') else {
            return Err(ConfigError::Invalid {
                part: hostport.to_owned(),
                reason: "an IPv6 address must be closed with ']'",
            });
        };
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => {
                return Err(ConfigError::Invalid {
                    part: hostport.to_owned(),
                    reason: "expected ':port' after the IPv6 address",
                })
            }
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c))
    {
        return Err(ConfigError::Invalid {
            part: hostport.to_owned(),
            reason: "not a valid host name or address",
        });
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                return Err(ConfigError::Invalid {
                    part: p.to_owned(),
                    reason: "the port must be a number from 1 to 65535",
                })
            }
        },
    };
    Ok((host.to_owned(), port))
}

/// A comma-separated list of `host[:port]` (sentinels, cluster seeds, a MySQL failover
/// list), in the order given.
pub(crate) fn parse_host_list(
    list: &str,
    default_port: u16,
) -> Result<Vec<(String, u16)>, ConfigError> {
    list.split(',')
        .map(|hostport| parse_host_port(hostport.trim(), default_port))
        .collect()
}

pub(crate) fn parse_seconds(name: &str, value: &str) -> Result<Duration, ConfigError> {
    match value.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 3600.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(ConfigError::Invalid {
            part: format!("{name}={value}"),
            reason: "expected a number of seconds greater than 0 and at most 3600, e.g. 1.5",
        }),
    }
}

/// Seconds for settings that may be long (a connection's age): up to a day.
pub(crate) fn parse_seconds_long(name: &str, value: &str) -> Result<Duration, ConfigError> {
    match value.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(ConfigError::Invalid {
            part: format!("{name}={value}"),
            reason: "expected a number of seconds greater than 0 and at most 86400",
        }),
    }
}

pub(crate) fn parse_bool(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::Invalid {
            part: format!("{name}={value}"),
            reason: "expected 1 or 0",
        }),
    }
}

/// A user name and password as a save_path gives them: `user:password@` in the URL, or
/// options (the password inline, from a file, or from an environment variable). The
/// password may come one way only, so it is never ambiguous which one is used.
#[derive(Default)]
pub(crate) struct Credentials {
    user: Option<String>,
    password: Option<Secret>,
    password_sources: u8,
}

impl Credentials {
    /// From the URL's userinfo (`user`, `user:password`), if any.
    pub(crate) fn from_userinfo(userinfo: Option<&str>) -> Result<Credentials, ConfigError> {
        let mut credentials = Credentials::default();
        let Some(userinfo) = userinfo else {
            return Ok(credentials);
        };
        let (user, pass) = match userinfo.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (userinfo, None),
        };
        if !user.is_empty() {
            credentials.user = Some(percent_decode(user, "user name")?);
        }
        if let Some(pass) = pass.filter(|p| !p.is_empty()) {
            credentials.password = Some(Secret::new(percent_decode(pass, "password")?));
            credentials.password_sources += 1;
        }
        Ok(credentials)
    }

    /// Takes option `name` if it is a credential: `user`, one of `inline` (the password
    /// itself), `password_file` or `password_env`. Returns whether it was one.
    pub(crate) fn take_option(
        &mut self,
        name: &str,
        value: &str,
        inline: &[&str],
    ) -> Result<bool, ConfigError> {
        match name {
            "user" | "username" => self.user = Some(value.to_owned()).filter(|v| !v.is_empty()),
            "password_file" => self.set_password(Some(read_password_file("password_file", value)?)),
            "password_env" => self.set_password(Some(read_password_env("password_env", value)?)),
            _ if inline.contains(&name) => {
                self.set_password(Some(Secret::new(value)).filter(|s| !s.expose().is_empty()))
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn set_password(&mut self, password: Option<Secret>) {
        self.password_sources += 1;
        self.password = password;
    }

    /// The user and password; `one_way_only` is the error when the password came twice.
    pub(crate) fn finish(
        self,
        one_way_only: &'static str,
    ) -> Result<(Option<String>, Option<Secret>), ConfigError> {
        if self.password_sources > 1 {
            return Err(ConfigError::Invalid {
                part: "password".to_owned(),
                reason: one_way_only,
            });
        }
        Ok((self.user, self.password))
    }
}

/// The `name=value` options of a query string, %-decoded. The value of an option named in
/// `secret` is decoded as a password, so an error about it never quotes it.
pub(crate) fn query_pairs<'a>(
    query: &'a str,
    secret: &'a [&str],
) -> impl Iterator<Item = Result<(String, String), ConfigError>> + 'a {
    query.split('&').filter(|p| !p.is_empty()).map(move |pair| {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(raw_name, "option name")?;
        let what = if secret.contains(&name.as_str()) {
            "password"
        } else {
            "option value"
        };
        let value = percent_decode(raw_value, what)?;
        Ok((name, value))
    })
}

/// The password in file `path`, named by setting `option`, once the file guard allows it.
pub(crate) fn read_password_file(option: &'static str, path: &str) -> Result<Secret, ConfigError> {
    read_password_file_with(installed_guard(), option, path)
}

pub(crate) fn read_password_file_with(
    guard: fn(&Path) -> bool,
    option: &'static str,
    path: &str,
) -> Result<Secret, ConfigError> {
    check_file_with(guard, option, path)?;
    let contents = std::fs::read_to_string(path).map_err(|e| ConfigError::PasswordFile {
        option,
        path: path.to_owned(),
        cause: e.to_string(),
    })?;
    // Secrets files written by `echo` or orchestrators end in a newline that is not part
    // of the password.
    let password = contents.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err(ConfigError::PasswordFile {
            option,
            path: path.to_owned(),
            cause: "the file is empty".into(),
        });
    }
    Ok(Secret::new(password))
}

/// The password in environment variable `name`, named by setting `option`.
pub(crate) fn read_password_env(option: &'static str, name: &str) -> Result<Secret, ConfigError> {
    let refuse = |cause| ConfigError::PasswordEnv {
        option,
        name: name.to_owned(),
        cause,
    };
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
        Ok(_) => Err(refuse("it is empty")),
        Err(std::env::VarError::NotPresent) => Err(refuse("it is not set")),
        Err(std::env::VarError::NotUnicode(_)) => Err(refuse("it is not valid UTF-8")),
    }
}

/// Decodes `%XX` escapes. `what` names the part for the error, which never quotes a
/// password's text.
pub(crate) fn percent_decode(value: &str, what: &'static str) -> Result<String, ConfigError> {
    if !value.contains('%') {
        return Ok(value.to_owned());
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => return Err(ConfigError::BadEscape { what }),
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ConfigError::BadEscape { what })
}

#[cfg(test)]
mod tests;
