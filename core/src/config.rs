//! `session.save_path` parsing into a typed configuration.
//!
//! Accepted forms:
//!
//! ```text
//! redis://[user[:password]@]host[:port][/db][?options]
//! rediss://…                      (TLS)
//! tcp://host:port?…               (phpredis spelling of redis://)
//! unix:///path/to/redis.sock[?options]
//! ```
//!
//! Options: `prefix`, `database`, `connect_timeout`, `timeout` (alias `read_timeout`),
//! `auth`, `user`, `password_file`, `password_env`, `tls_verify`, `tls_ca_file`.
//! phpredis options that do not apply to Fleet (`persistent`, `weight`, `retry_interval`)
//! are accepted and ignored so an existing phpredis save_path keeps working.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::ConfigError;

mod mysql;

pub use mysql::{
    MySqlConfig, MySqlEndpoint, MySqlLockMode, MySqlProcedures, MySqlTls, DEFAULT_TABLE,
    MAX_TABLE_FOR_PROCEDURES,
};

/// phpredis's default key prefix; Fleet uses it too so a site can switch without logging
/// anyone out.
pub const DEFAULT_PREFIX: &str = "PHPREDIS_SESSION:";

const REDIS_OPTIONS: &str = "prefix, database, connect_timeout, timeout, read_timeout, auth, user, password_file, password_env, tls_verify, tls_ca_file";

/// A password. Its `Debug` and `Display` never show the value, so it cannot leak through
/// a log line or a warning by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
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

/// Where the Redis server is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisEndpoint {
    Tcp {
        host: String,
        port: u16,
    },
    Tls {
        host: String,
        port: u16,
        verify: bool,
        ca_file: Option<PathBuf>,
    },
    Unix {
        path: PathBuf,
    },
}

impl fmt::Display for RedisEndpoint {
    /// The endpoint as an admin would recognise it, never with credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisEndpoint::Tcp { host, port } => write!(f, "redis://{}:{port}", bracket_v6(host)),
            RedisEndpoint::Tls { host, port, .. } => {
                write!(f, "rediss://{}:{port}", bracket_v6(host))
            }
            RedisEndpoint::Unix { path } => write!(f, "unix://{}", path.display()),
        }
    }
}

fn bracket_v6(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// Timeouts that bound every wait on the backend. Defaults come from `fleet.*` INI entries;
/// save_path options override them per pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
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

/// Everything needed to reach one Redis server and lay out keys on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisConfig {
    pub endpoint: RedisEndpoint,
    pub db: i64,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub prefix: String,
    /// Options given in save_path override the INI defaults; `None` means "not given".
    pub connect_timeout: Option<Duration>,
    pub command_timeout: Option<Duration>,
}

impl RedisConfig {
    /// A config for a plain TCP endpoint with every option at its default.
    pub fn tcp(host: impl Into<String>, port: u16) -> Self {
        RedisConfig {
            endpoint: RedisEndpoint::Tcp {
                host: host.into(),
                port,
            },
            db: 0,
            username: None,
            password: None,
            prefix: DEFAULT_PREFIX.to_owned(),
            connect_timeout: None,
            command_timeout: None,
        }
    }

    /// Effective timeouts: save_path options where given, else `defaults`.
    pub fn timeouts(&self, defaults: Timeouts) -> Timeouts {
        Timeouts {
            connect: self.connect_timeout.unwrap_or(defaults.connect),
            command: self.command_timeout.unwrap_or(defaults.command),
        }
    }
}

/// A parsed `session.save_path`: which backend, and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreConfig {
    Redis(RedisConfig),
    MySql(MySqlConfig),
}

impl StoreConfig {
    /// Where the backend is, for warnings; never contains a password.
    pub fn endpoint(&self) -> String {
        match self {
            StoreConfig::Redis(c) => c.endpoint.to_string(),
            StoreConfig::MySql(c) => c.describe(),
        }
    }
}

/// Parses a `session.save_path` value. Errors quote the offending part of the value, but
/// never a password.
pub fn parse_save_path(save_path: &str) -> Result<StoreConfig, ConfigError> {
    let save_path = save_path.trim();
    if save_path.is_empty() {
        return Err(ConfigError::Empty);
    }
    let Some((scheme, rest)) = save_path.split_once("://") else {
        return Err(ConfigError::NoScheme {
            value: redact_userinfo(save_path),
        });
    };
    match scheme.to_ascii_lowercase().as_str() {
        "redis" | "tcp" => parse_redis_network(rest, false).map(StoreConfig::Redis),
        "rediss" | "tls" => parse_redis_network(rest, true).map(StoreConfig::Redis),
        "unix" => parse_redis_unix(rest).map(StoreConfig::Redis),
        "mysql" | "mariadb" => mysql::parse(rest).map(StoreConfig::MySql),
        other => Err(ConfigError::UnknownScheme {
            scheme: other.to_owned(),
        }),
    }
}

/// Replaces the userinfo of something that looks like a URL with `***`, for error messages.
pub fn redact_userinfo(value: &str) -> String {
    let (head, tail) = match value.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), value),
    };
    let authority_end = tail.find(['/', '?']).unwrap_or(tail.len());
    match tail[..authority_end].rfind('@') {
        Some(at) => format!("{head}***@{}", &tail[at + 1..]),
        None => format!("{head}{tail}"),
    }
}

fn parse_redis_network(rest: &str, tls: bool) -> Result<RedisConfig, ConfigError> {
    let (before_query, query) = split_query(rest);
    let (authority, path) = match before_query.find('/') {
        Some(i) => (&before_query[..i], &before_query[i + 1..]),
        None => (before_query, ""),
    };
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let (host, port) = parse_host_port(hostport, 6379)?;
    let endpoint = if tls {
        RedisEndpoint::Tls {
            host,
            port,
            verify: true,
            ca_file: None,
        }
    } else {
        RedisEndpoint::Tcp { host, port }
    };
    let mut config = RedisConfig {
        endpoint,
        ..RedisConfig::tcp("", 0)
    };
    if !path.is_empty() {
        config.db = parse_db(path)?;
    }
    apply_options(&mut config, Credentials::from_userinfo(userinfo)?, query)?;
    Ok(config)
}

fn parse_redis_unix(rest: &str) -> Result<RedisConfig, ConfigError> {
    let (path, query) = split_query(rest);
    if !path.starts_with('/') {
        return Err(ConfigError::Invalid {
            part: format!("unix://{path}"),
            reason: "a unix socket path must be absolute, e.g. unix:///run/redis/redis.sock",
        });
    }
    let mut config = RedisConfig {
        endpoint: RedisEndpoint::Unix {
            path: PathBuf::from(percent_decode(path, "socket path")?),
        },
        ..RedisConfig::tcp("", 0)
    };
    apply_options(&mut config, Credentials::default(), query)?;
    Ok(config)
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

fn parse_db(value: &str) -> Result<i64, ConfigError> {
    match value.parse::<i64>() {
        Ok(db) if (0..=1_000_000).contains(&db) => Ok(db),
        _ => Err(ConfigError::Invalid {
            part: value.to_owned(),
            reason: "the database must be a non-negative number, e.g. /0",
        }),
    }
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

fn apply_options(
    config: &mut RedisConfig,
    mut credentials: Credentials,
    query: &str,
) -> Result<(), ConfigError> {
    for pair in query_pairs(query, &["auth", "password"]) {
        let (name, value) = pair?;
        if credentials.take_option(&name, &value, &["auth", "password"])? {
            continue;
        }
        match name.as_str() {
            "prefix" => {
                if value.len() > 512 {
                    return Err(ConfigError::Invalid {
                        part: format!("{name}={value}"),
                        reason: "the prefix is longer than 512 bytes",
                    });
                }
                config.prefix = value;
            }
            "database" | "db" => config.db = parse_db(&value)?,
            "connect_timeout" => config.connect_timeout = Some(parse_seconds(&name, &value)?),
            "timeout" | "read_timeout" => {
                config.command_timeout = Some(parse_seconds(&name, &value)?)
            }
            "tls_verify" | "tls_ca_file" => {
                let RedisEndpoint::Tls {
                    verify, ca_file, ..
                } = &mut config.endpoint
                else {
                    return Err(ConfigError::Invalid {
                        part: format!("{name}={value}"),
                        reason: "TLS options need a rediss:// save_path",
                    });
                };
                if name == "tls_verify" {
                    *verify = parse_bool(&name, &value)?;
                } else {
                    *ca_file = Some(PathBuf::from(value));
                }
            }
            // phpredis options with no meaning here: a Fleet connection is always per worker
            // and persistent, and there is one server per save_path.
            "persistent" | "weight" | "retry_interval" => {}
            _ => {
                return Err(ConfigError::UnknownOption {
                    option: name,
                    known: REDIS_OPTIONS,
                })
            }
        }
    }
    (config.username, config.password) = credentials.finish(
        "give the password one way only: in the URL, auth=, password_file= or password_env=",
    )?;
    Ok(())
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
            "password_file" => self.set_password(Some(read_password_file(value)?)),
            "password_env" => self.set_password(Some(read_password_env(value)?)),
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

pub(crate) fn read_password_file(path: &str) -> Result<Secret, ConfigError> {
    let contents = std::fs::read_to_string(path).map_err(|e| ConfigError::PasswordFile {
        path: path.to_owned(),
        cause: e.to_string(),
    })?;
    // Secrets files written by `echo` or orchestrators end in a newline that is not part
    // of the password.
    let password = contents.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err(ConfigError::PasswordFile {
            path: path.to_owned(),
            cause: "the file is empty".into(),
        });
    }
    Ok(Secret::new(password))
}

pub(crate) fn read_password_env(name: &str) -> Result<Secret, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
        Ok(_) => Err(ConfigError::PasswordEnv {
            name: name.to_owned(),
            cause: "it is empty",
        }),
        Err(std::env::VarError::NotPresent) => Err(ConfigError::PasswordEnv {
            name: name.to_owned(),
            cause: "it is not set",
        }),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::PasswordEnv {
            name: name.to_owned(),
            cause: "it is not valid UTF-8",
        }),
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
mod tests {
    use super::*;

    fn redis(s: &str) -> RedisConfig {
        match parse_save_path(s) {
            Ok(StoreConfig::Redis(c)) => c,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn plain_host_gets_defaults() {
        let c = redis("redis://10.0.0.5");
        assert_eq!(
            c.endpoint,
            RedisEndpoint::Tcp {
                host: "10.0.0.5".into(),
                port: 6379
            }
        );
        assert_eq!(c.prefix, DEFAULT_PREFIX);
        assert_eq!(c.db, 0);
        assert_eq!(c.password, None);
    }

    #[test]
    fn full_url() {
        let c = redis(
            "redis://app:s%40cret@cache.local:6380/3?prefix=app:&connect_timeout=0.5&timeout=2",
        );
        assert_eq!(
            c.endpoint,
            RedisEndpoint::Tcp {
                host: "cache.local".into(),
                port: 6380
            }
        );
        assert_eq!(c.username.as_deref(), Some("app"));
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("s@cret"));
        assert_eq!(c.db, 3);
        assert_eq!(c.prefix, "app:");
        assert_eq!(c.connect_timeout, Some(Duration::from_millis(500)));
        assert_eq!(c.command_timeout, Some(Duration::from_secs(2)));
    }

    #[test]
    fn phpredis_spelling_is_accepted() {
        let c =
            redis("tcp://127.0.0.1:6379?auth=pw&database=2&persistent=1&weight=1&read_timeout=3");
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("pw"));
        assert_eq!(c.db, 2);
        assert_eq!(c.command_timeout, Some(Duration::from_secs(3)));
    }

    #[test]
    fn tls_and_unix_and_ipv6() {
        let c = redis("rediss://h:6390?tls_verify=0&tls_ca_file=/etc/ca.pem");
        assert_eq!(
            c.endpoint,
            RedisEndpoint::Tls {
                host: "h".into(),
                port: 6390,
                verify: false,
                ca_file: Some("/etc/ca.pem".into())
            }
        );
        let c = redis("unix:///run/redis/redis.sock?prefix=x:&database=1");
        assert_eq!(
            c.endpoint,
            RedisEndpoint::Unix {
                path: "/run/redis/redis.sock".into()
            }
        );
        assert_eq!((c.prefix.as_str(), c.db), ("x:", 1));
        let c = redis("redis://[::1]:7000");
        assert_eq!(
            c.endpoint,
            RedisEndpoint::Tcp {
                host: "::1".into(),
                port: 7000
            }
        );
        assert_eq!(c.endpoint.to_string(), "redis://[::1]:7000");
    }

    #[test]
    fn password_from_env_and_file() {
        std::env::set_var("FLEET_TEST_PW_ENV", "from-env");
        let c = redis("redis://h?password_env=FLEET_TEST_PW_ENV");
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("from-env"));

        let file = std::env::temp_dir().join(format!("fleet-pw-{}", std::process::id()));
        std::fs::write(&file, "from-file\n").unwrap();
        let c = redis(&format!("redis://h?password_file={}", file.display()));
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("from-file"));
        std::fs::remove_file(&file).unwrap();

        let e = parse_save_path("redis://h?password_env=FLEET_TEST_UNSET_VAR").unwrap_err();
        assert!(e.to_string().contains("FLEET_TEST_UNSET_VAR"), "{e}");
        let e = parse_save_path("redis://h?password_file=/nonexistent/pw").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/pw"), "{e}");
    }

    #[test]
    fn errors_quote_the_bad_part_but_never_the_password() {
        let cases = [
            ("redis://h:notaport", "notaport"),
            ("redis://h:0", "0"),
            ("redis://h/abc", "abc"),
            ("redis://h?timeout=-1", "timeout=-1"),
            ("redis://h?bogus=1", "bogus"),
            ("memcached://h", "memcached"),
            ("redis://h?table=x", "table"),
            ("redis://bad host", "bad host"),
            ("unix://relative.sock", "relative.sock"),
            ("redis://h?tls_verify=0", "tls_verify=0"),
        ];
        for (input, quoted) in cases {
            let e = parse_save_path(input).expect_err(input).to_string();
            assert!(e.contains(quoted), "{input}: {e}");
        }
        for input in [
            "h:6379",
            "redis://u:hunter2@h:bad",
            "redis://h?auth=hunter2&password_env=X",
        ] {
            let e = parse_save_path(input).expect_err(input).to_string();
            assert!(!e.contains("hunter2"), "{input}: {e}");
        }
        let e = parse_save_path("u:hunter2@h:6379").unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn secret_never_formats() {
        let c = redis("redis://u:hunter2@h");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(
            redact_userinfo("redis://u:hunter2@h:1/0"),
            "redis://***@h:1/0"
        );
    }
}
