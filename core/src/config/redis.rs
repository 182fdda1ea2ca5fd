//! Redis save paths.
//!
//! ```text
//! redis://[user[:password]@]host[:port][/db][?options]
//! rediss://…                      (TLS)
//! tcp://host:port?…               (phpredis spelling of redis://)
//! unix://[user[:password]@]/path/to/redis.sock[?options]
//! redis+sentinel://[user[:password]@]s1:26379,s2:26379,s3:26379/MASTER_NAME[/db][?options]
//! rediss+sentinel://…             (TLS to the sentinels and the data nodes)
//! redis+cluster://[user[:password]@]n1:7000,n2:7001,n3:7002[?options]   (seed nodes)
//! rediss+cluster://…              (TLS)
//! ```
//!
//! The user and password in the URL (or `user`, `auth`, `password_file`, `password_env`)
//! are the data nodes'. Sentinels often have their own: `sentinel_user`,
//! `sentinel_password_file`, `sentinel_password_env`.
//!
//! Options: the table [`OPTIONS`] (those every backend has are [`CommonConfig`]'s).
//! phpredis options that do not apply to Fleet (`persistent`, `weight`, `retry_interval`)
//! are accepted and ignored so an existing phpredis save_path keeps working.

use std::fmt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use super::options::{self, common, credential, ignored, own, CommonConfig, Opt, Pending};
use super::{
    check_file, parse_bool, parse_host_list, parse_host_port, parse_seconds, percent_decode,
    read_password_env, read_password_file, split_query, Credentials, Secret,
};
use crate::error::ConfigError;

/// phpredis's default key prefix; Fleet uses it too so a site can switch without logging
/// anyone out.
pub const DEFAULT_PREFIX: &str = "PHPREDIS_SESSION:";

/// The port sentinels listen on unless the save_path says otherwise.
pub const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// How long a write waits for `wait_replicas` acknowledgements unless `wait_timeout` says.
/// A replica on the same network acknowledges within a millisecond; the timeout matters
/// when one is missing (after a failover, until the old master rejoins as a replica), when
/// every write waits it out, so it is short.
const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_millis(250);

/// TLS settings of the Sentinel and Cluster forms (`rediss+sentinel://`, `rediss+cluster://`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisTls {
    /// Check the server's certificate and name.
    pub verify: bool,
    /// The CA to check it against (`tls_ca_file=`); `None`: the system's.
    pub ca_file: Option<PathBuf>,
}

/// Where the Redis server is, or how to find it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisEndpoint {
    /// One server over TCP.
    Tcp {
        /// A name or an address.
        host: String,
        /// 6379 unless given.
        port: u16,
    },
    /// One server over TLS (`rediss://`).
    Tls {
        /// A name or an address; the certificate must name it when `verify` is on.
        host: String,
        /// 6379 unless given.
        port: u16,
        /// Check the server's certificate and name (`tls_verify=`).
        verify: bool,
        /// The CA to check it against (`tls_ca_file=`); `None`: the system's.
        ca_file: Option<PathBuf>,
    },
    /// A local server's unix socket (`unix://`).
    Unix {
        /// The socket's absolute path.
        path: PathBuf,
    },
    /// The master of `master` as the sentinels (any one that answers) name it.
    Sentinel {
        /// Host and port of each sentinel, in the order given.
        sentinels: Vec<(String, u16)>,
        /// The master's name as the sentinels know it.
        master: String,
        /// TLS to the sentinels and the data nodes (`rediss+sentinel://`).
        tls: Option<RedisTls>,
    },
    /// A Redis Cluster, found through any of its `seeds`.
    Cluster {
        /// Host and port of each seed node, in the order given.
        seeds: Vec<(String, u16)>,
        /// TLS to every node (`rediss+cluster://`).
        tls: Option<RedisTls>,
    },
}

impl RedisEndpoint {
    fn tls_mut(&mut self) -> Option<(&mut bool, &mut Option<PathBuf>)> {
        match self {
            RedisEndpoint::Tls {
                verify, ca_file, ..
            } => Some((verify, ca_file)),
            RedisEndpoint::Sentinel { tls: Some(t), .. }
            | RedisEndpoint::Cluster { tls: Some(t), .. } => Some((&mut t.verify, &mut t.ca_file)),
            _ => None,
        }
    }
}

impl fmt::Display for RedisEndpoint {
    /// The endpoint as an admin would recognise it, never with credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |tls: &Option<RedisTls>| if tls.is_some() { "s" } else { "" };
        match self {
            RedisEndpoint::Tcp { host, port } => write!(f, "redis://{}", host_port(host, *port)),
            RedisEndpoint::Tls { host, port, .. } => {
                write!(f, "rediss://{}", host_port(host, *port))
            }
            RedisEndpoint::Unix { path } => write!(f, "unix://{}", path.display()),
            RedisEndpoint::Sentinel {
                sentinels,
                master,
                tls,
            } => write!(
                f,
                "redis{}+sentinel://{}/{master}",
                s(tls),
                host_list(sentinels)
            ),
            RedisEndpoint::Cluster { seeds, tls } => {
                write!(f, "redis{}+cluster://{}", s(tls), host_list(seeds))
            }
        }
    }
}

/// `host:port`, with an IPv6 address in brackets.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn host_list(hosts: &[(String, u16)]) -> String {
    hosts
        .iter()
        .map(|(h, p)| host_port(h, *p))
        .collect::<Vec<_>>()
        .join(",")
}

/// Everything needed to reach Redis and lay out keys on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisConfig {
    /// Where the server is, or how to find it.
    pub endpoint: RedisEndpoint,
    /// The database number (`/N` or `database=`); always 0 on a Cluster.
    pub db: i64,
    /// The data nodes' ACL user, from the URL or `user=`.
    pub username: Option<String>,
    /// The data nodes' password, from the URL, `auth=`, `password_file=` or `password_env=`.
    pub password: Option<Secret>,
    /// Credentials for the sentinels (Sentinel form only).
    pub sentinel_username: Option<String>,
    /// The sentinels' password (`sentinel_password_file=` or `sentinel_password_env=`).
    pub sentinel_password: Option<Secret>,
    /// Put before every key (`prefix=`; phpredis's `PHPREDIS_SESSION:` by default).
    pub prefix: String,
    /// `WAIT` for this many replicas after each write or destroy (0: do not wait).
    pub wait_replicas: u32,
    /// How long a `WAIT` waits for them (`wait_timeout=`).
    pub wait_timeout: Duration,
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
            sentinel_username: None,
            sentinel_password: None,
            prefix: DEFAULT_PREFIX.to_owned(),
            wait_replicas: 0,
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
        }
    }
}

/// Parses what follows `scheme://` of a Redis save_path (`scheme` in lower case), with its
/// `userinfo` already taken off `rest`.
pub(super) fn parse(
    scheme: &str,
    userinfo: Option<&str>,
    rest: &str,
) -> Result<(CommonConfig, RedisConfig), ConfigError> {
    let tls = scheme.starts_with("rediss") || scheme == "tls";
    let plain_tls = || RedisTls {
        verify: true,
        ca_file: None,
    };
    match scheme {
        "unix" => parse_unix(userinfo, rest),
        "redis+sentinel" | "rediss+sentinel" => {
            let (config, path, query) = network(userinfo, rest, |hosts| {
                Ok(RedisEndpoint::Sentinel {
                    sentinels: parse_host_list(hosts, DEFAULT_SENTINEL_PORT)?,
                    master: String::new(),
                    tls: tls.then(plain_tls),
                })
            })?;
            let mut config = config;
            let (master, db) = match path.split_once('/') {
                Some((m, db)) => (m, Some(db)),
                None => (path, None),
            };
            if master.is_empty() {
                return Err(ConfigError::Invalid {
                    part: format!("{scheme}://…/"),
                    reason:
                        "the master name is missing: redis+sentinel://s1:26379,s2:26379/MASTER_NAME",
                });
            }
            if let RedisEndpoint::Sentinel { master: m, .. } = &mut config.endpoint {
                *m = percent_decode(master, "master name")?;
            }
            if let Some(db) = db.filter(|d| !d.is_empty()) {
                config.db = parse_db(db)?;
            }
            apply_options(config, query)
        }
        "redis+cluster" | "rediss+cluster" => {
            let (config, path, query) = network(userinfo, rest, |hosts| {
                Ok(RedisEndpoint::Cluster {
                    seeds: parse_host_list(hosts, 6379)?,
                    tls: tls.then(plain_tls),
                })
            })?;
            if !path.is_empty() {
                return Err(ConfigError::Invalid {
                    part: path.to_owned(),
                    reason:
                        "a Redis Cluster has only database 0; remove the path after the seed nodes",
                });
            }
            let (common, config) = apply_options(config, query)?;
            if config.db != 0 {
                return Err(ConfigError::Invalid {
                    part: format!("database={}", config.db),
                    reason: "a Redis Cluster has only database 0",
                });
            }
            // Fleet puts each session's keys in one slot with a hash tag around the id; a
            // brace in the prefix would make Redis hash the prefix instead, and put every
            // session in the same slot.
            if config.prefix.contains(['{', '}']) {
                return Err(ConfigError::Invalid {
                    part: format!("prefix={}", config.prefix),
                    reason: "with redis+cluster:// the prefix may not contain { or }: Fleet adds the hash tag itself",
                });
            }
            Ok((common, config))
        }
        _ => {
            let (mut config, path, query) = network(userinfo, rest, |hostport| {
                let (host, port) = parse_host_port(hostport, 6379)?;
                Ok(match tls {
                    true => RedisEndpoint::Tls {
                        host,
                        port,
                        verify: true,
                        ca_file: None,
                    },
                    false => RedisEndpoint::Tcp { host, port },
                })
            })?;
            if !path.is_empty() {
                config.db = parse_db(path)?;
            }
            apply_options(config, query)
        }
    }
}

/// A partly filled config for a network form: the endpoint `endpoint` makes from the
/// authority's host part, and the credentials from the `userinfo` (pending until the options
/// are read). Returns it with the path (without the leading `/`) and the query.
fn network<'a>(
    userinfo: Option<&str>,
    rest: &'a str,
    endpoint: impl FnOnce(&str) -> Result<RedisEndpoint, ConfigError>,
) -> Result<(PendingConfig, &'a str, &'a str), ConfigError> {
    let (before_query, query) = split_query(rest);
    let (hosts, path) = match before_query.find('/') {
        Some(i) => (&before_query[..i], &before_query[i + 1..]),
        None => (before_query, ""),
    };
    let config = PendingConfig::new(
        RedisConfig {
            endpoint: endpoint(hosts)?,
            ..RedisConfig::tcp("", 0)
        },
        userinfo,
    )?;
    Ok((config, path, query))
}

/// A config whose credentials are still being gathered from the URL and the options.
pub(crate) struct PendingConfig {
    config: RedisConfig,
    common: CommonConfig,
    credentials: Credentials,
    /// The sentinels' password, and how many options gave one.
    sentinel_password: Option<Secret>,
    sentinel_password_sources: u32,
}

impl PendingConfig {
    fn new(config: RedisConfig, userinfo: Option<&str>) -> Result<PendingConfig, ConfigError> {
        Ok(PendingConfig {
            config,
            common: CommonConfig::default(),
            credentials: Credentials::from_userinfo(userinfo)?,
            sentinel_password: None,
            sentinel_password_sources: 0,
        })
    }
}

impl Pending for PendingConfig {
    fn common(&mut self) -> &mut CommonConfig {
        &mut self.common
    }

    fn credentials(&mut self) -> &mut Credentials {
        &mut self.credentials
    }
}

impl std::ops::Deref for PendingConfig {
    type Target = RedisConfig;
    fn deref(&self) -> &RedisConfig {
        &self.config
    }
}

impl std::ops::DerefMut for PendingConfig {
    fn deref_mut(&mut self) -> &mut RedisConfig {
        &mut self.config
    }
}

fn parse_unix(
    userinfo: Option<&str>,
    rest: &str,
) -> Result<(CommonConfig, RedisConfig), ConfigError> {
    let (path, query) = split_query(rest);
    if !path.starts_with('/') {
        return Err(ConfigError::Invalid {
            part: format!("unix://{path}"),
            reason: "a unix socket path must be absolute, e.g. unix:///run/redis/redis.sock",
        });
    }
    let config = PendingConfig::new(
        RedisConfig {
            endpoint: RedisEndpoint::Unix {
                path: PathBuf::from(percent_decode(path, "socket path")?),
            },
            ..RedisConfig::tcp("", 0)
        },
        userinfo,
    )?;
    apply_options(config, query)
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

/// Every option of a Redis save_path, in the order the known-options message lists them.
pub(crate) static OPTIONS: &[Opt<PendingConfig>] = &[
    own("prefix", true, set_prefix),
    own("database", true, set_db),
    common("connect_timeout", options::connect_timeout),
    common("timeout", options::command_timeout),
    common("read_timeout", options::command_timeout),
    credential("auth", true),
    credential("user", true),
    credential("password_file", true),
    credential("password_env", true),
    own("tls_verify", true, set_tls),
    own("tls_ca_file", true, set_tls),
    own("wait_replicas", true, set_wait_replicas),
    own("wait_timeout", true, set_wait_timeout),
    common("max_connection_age", options::max_connection_age),
    own("sentinel_user", true, set_sentinel_user),
    own("sentinel_password_file", true, set_sentinel_password),
    own("sentinel_password_env", true, set_sentinel_password),
    common("first_lifetime", options::lifetime),
    common("bot_lifetime", options::lifetime),
    common("bot_first_lifetime", options::lifetime),
    common("bot_pattern", options::lifetime),
    common("compression", options::compression),
    common("compression_min_size", options::compression),
    common("locking", options::locking),
    common("encryption_key_file", options::encryption_key_file),
    common("hash_ids", options::hash_ids),
    common("hash_key_file", options::hash_key_file),
    common("require_encryption", options::require_encryption),
    // Aliases, not listed.
    own("db", false, set_db),
    credential("password", false),
    credential("username", false),
    // phpredis options with no meaning here: a Fleet connection is always per worker and
    // persistent.
    ignored("persistent"),
    ignored("weight"),
    ignored("retry_interval"),
];

/// The options that carry a password in their value.
const INLINE_PASSWORDS: &[&str] = &["auth", "password"];

static KNOWN: OnceLock<String> = OnceLock::new();

fn apply_options(
    mut pending: PendingConfig,
    query: &str,
) -> Result<(CommonConfig, RedisConfig), ConfigError> {
    options::apply(OPTIONS, &KNOWN, &mut pending, query, INLINE_PASSWORDS)?;
    if pending.sentinel_password_sources > 1 {
        return Err(ConfigError::Invalid {
            part: "sentinel_password".to_owned(),
            reason: "give the sentinel password one way only: sentinel_password_file= or sentinel_password_env=",
        });
    }
    let PendingConfig {
        mut config,
        common,
        credentials,
        sentinel_password,
        ..
    } = pending;
    config.sentinel_password = sentinel_password;
    (config.username, config.password) = credentials.finish(
        "give the password one way only: in the URL, auth=, password_file= or password_env=",
    )?;
    Ok((common, config))
}

fn set_prefix(p: &mut PendingConfig, name: &str, value: String) -> Result<(), ConfigError> {
    if value.len() > 512 {
        return Err(ConfigError::Invalid {
            part: format!("{name}={value}"),
            reason: "the prefix is longer than 512 bytes",
        });
    }
    p.config.prefix = value;
    Ok(())
}

fn set_db(p: &mut PendingConfig, _name: &str, value: String) -> Result<(), ConfigError> {
    p.config.db = parse_db(&value)?;
    Ok(())
}

fn set_tls(p: &mut PendingConfig, name: &str, value: String) -> Result<(), ConfigError> {
    let Some((verify, ca_file)) = p.config.endpoint.tls_mut() else {
        return Err(ConfigError::Invalid {
            part: format!("{name}={value}"),
            reason:
                "TLS options need a rediss://, rediss+sentinel:// or rediss+cluster:// save_path",
        });
    };
    if name == "tls_verify" {
        *verify = parse_bool(name, &value)?;
    } else {
        check_file("tls_ca_file", &value)?;
        *ca_file = Some(PathBuf::from(value));
    }
    Ok(())
}

fn set_wait_replicas(p: &mut PendingConfig, name: &str, value: String) -> Result<(), ConfigError> {
    p.config.wait_replicas = match value.parse::<u32>() {
        Ok(n) if n <= 100 => n,
        _ => {
            return Err(ConfigError::Invalid {
                part: format!("{name}={value}"),
                reason: "expected a number of replicas from 0 to 100",
            })
        }
    };
    Ok(())
}

fn set_wait_timeout(p: &mut PendingConfig, name: &str, value: String) -> Result<(), ConfigError> {
    p.config.wait_timeout = parse_seconds(name, &value)?;
    Ok(())
}

/// Refuses sentinel credentials on a save_path without sentinels.
fn sentinel_only(p: &PendingConfig, name: &str) -> Result<(), ConfigError> {
    match p.config.endpoint {
        RedisEndpoint::Sentinel { .. } => Ok(()),
        _ => Err(ConfigError::Invalid {
            part: name.to_owned(),
            reason: "sentinel credentials need a redis+sentinel:// save_path",
        }),
    }
}

fn set_sentinel_user(p: &mut PendingConfig, name: &str, value: String) -> Result<(), ConfigError> {
    sentinel_only(p, name)?;
    p.config.sentinel_username = Some(value).filter(|v| !v.is_empty());
    Ok(())
}

fn set_sentinel_password(
    p: &mut PendingConfig,
    name: &str,
    value: String,
) -> Result<(), ConfigError> {
    sentinel_only(p, name)?;
    p.sentinel_password = Some(match name {
        "sentinel_password_file" => read_password_file("sentinel_password_file", &value)?,
        _ => read_password_env("sentinel_password_env", &value)?,
    });
    p.sentinel_password_sources += 1;
    Ok(())
}

/// A pending config of the plain form, for the option tables' tests.
#[cfg(test)]
pub(crate) fn test_pending() -> PendingConfig {
    PendingConfig {
        config: RedisConfig::tcp("127.0.0.1", 6379),
        common: CommonConfig::default(),
        credentials: Credentials::default(),
        sentinel_password: None,
        sentinel_password_sources: 0,
    }
}

#[cfg(test)]
mod tests;
