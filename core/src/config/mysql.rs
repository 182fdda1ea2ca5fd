//! `mysql://` save paths.
//!
//! ```text
//! mysql://[user[:password]@]host[:port]/database[?options]
//! mysql://[user[:password]@]h1[:port],h2[:port],…/database[?options]   (failover list)
//! mysql://[user[:password]@]/database?socket=/run/mysqld/mysqld.sock[&options]
//! ```
//!
//! The table name is spliced into SQL text, so [`validate_table_name`] admits only plain
//! identifiers; `fleetctl schema --table` applies the same check.
//!
//! Options: the table [`OPTIONS`] (those every backend has are [`CommonConfig`]'s): `lock`
//! is `advisory`, `row` or `none`, `procedures` is `auto`, `1` or `0`.
//!
//! With a host list, Fleet uses the first host in the list that is writable
//! (`@@read_only = 0`; MySQL's `super_read_only` implies `read_only`), so every worker of
//! every app server converges on the same primary.

use std::fmt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use super::options::{self, common, credential, own, CommonConfig, Opt, Pending};
use super::{
    check_file, host_port, parse_bool, parse_host_list, parse_seconds_long, percent_decode,
    split_query, Credentials, Secret,
};
use crate::error::ConfigError;

/// The table sessions live in unless `table=` says otherwise.
pub const DEFAULT_TABLE: &str = "fleet_sessions";

const DEFAULT_PORT: u16 = 3306;
/// Where Debian's and most distributions' MariaDB and MySQL servers put their socket.
const DEFAULT_SOCKET: &str = "/run/mysqld/mysqld.sock";

/// How often some worker deletes expired rows unless `gc_interval` says otherwise.
pub const DEFAULT_GC_INTERVAL: Duration = Duration::from_secs(60);

/// Where the MySQL or MariaDB server is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MySqlEndpoint {
    /// One server over TCP.
    Tcp {
        /// A name or an address.
        host: String,
        /// 3306 unless given.
        port: u16,
    },
    /// A failover list: the first writable one is used.
    Hosts {
        /// Host and port of each server, in the order given.
        hosts: Vec<(String, u16)>,
    },
    /// A local server's unix socket (`socket=`).
    Unix {
        /// The socket's absolute path.
        path: PathBuf,
    },
}

/// TLS to the server (`tls=1`). Verification is on unless `tls_verify=0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MySqlTls {
    /// Check the server's certificate and name.
    pub verify: bool,
    /// The CA to check it against (`tls_ca_file=`); `None`: the system's.
    pub ca_file: Option<PathBuf>,
}

/// How a request holds its session while it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MySqlLockMode {
    /// A named lock (`GET_LOCK`) per session, held by the worker's connection.
    Advisory,
    /// A transaction holding the session row's lock (`SELECT … FOR UPDATE`).
    Row,
    /// No locking: last writer wins.
    None,
}

/// Whether `lock=advisory` uses Fleet's stored procedures, which lock and read a session in
/// one round trip and write and unlock it in another (four without them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MySqlProcedures {
    /// Use them where they exist or can be created, else plain statements (the default).
    Auto,
    /// Use them; a request fails with a hint if they are missing or not executable.
    Required,
    /// Never create or call them.
    Off,
}

/// The longest table name that leaves room for the procedure names derived from it.
pub const MAX_TABLE_FOR_PROCEDURES: usize = 64 - "fleet1__write".len();

impl fmt::Display for MySqlLockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MySqlLockMode::Advisory => "advisory",
            MySqlLockMode::Row => "row",
            MySqlLockMode::None => "none",
        })
    }
}

/// Everything needed to reach one MySQL/MariaDB database and its session table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MySqlConfig {
    /// Where the server is.
    pub endpoint: MySqlEndpoint,
    /// The database the session table is in.
    pub database: String,
    /// The user, from the URL or `user=`.
    pub user: Option<String>,
    /// The password, from the URL, `password=`, `password_file=` or `password_env=`.
    pub password: Option<Secret>,
    /// Validated as a plain identifier, so it can be spliced into SQL text (back-quoted).
    pub table: String,
    /// `lock=`: how a request holds its session.
    pub lock: MySqlLockMode,
    /// `procedures=`: whether the advisory lock path runs through Fleet's procedures.
    pub procedures: MySqlProcedures,
    /// Whether to `CREATE TABLE IF NOT EXISTS` on first use (`create_table=0` for DBAs who
    /// create it themselves and grant only DML).
    pub create_table: bool,
    /// TLS to the server (`tls=1`); `None`: plain TCP.
    pub tls: Option<MySqlTls>,
    /// Delete expired rows at most this often across all workers, whatever PHP's
    /// `session.gc_probability` (`None`: leave gc to PHP).
    pub gc_interval: Option<Duration>,
}

impl MySqlConfig {
    /// A config for a TCP server with every option at its default.
    pub fn tcp(host: impl Into<String>, port: u16, database: impl Into<String>) -> Self {
        MySqlConfig {
            endpoint: MySqlEndpoint::Tcp {
                host: host.into(),
                port,
            },
            database: database.into(),
            user: None,
            password: None,
            table: DEFAULT_TABLE.to_owned(),
            lock: MySqlLockMode::Advisory,
            procedures: MySqlProcedures::Auto,
            create_table: true,
            tls: None,
            gc_interval: Some(DEFAULT_GC_INTERVAL),
        }
    }

    /// The server and database as an admin would recognise them, never with credentials.
    pub fn describe(&self) -> String {
        match &self.endpoint {
            MySqlEndpoint::Tcp { host, port } if host.contains(':') => {
                format!("mysql://[{host}]:{port}/{}", self.database)
            }
            MySqlEndpoint::Tcp { host, port } => format!("mysql://{host}:{port}/{}", self.database),
            MySqlEndpoint::Hosts { hosts } => format!(
                "mysql://{}/{}",
                hosts
                    .iter()
                    .map(|(h, p)| host_port(h, *p))
                    .collect::<Vec<_>>()
                    .join(","),
                self.database
            ),
            MySqlEndpoint::Unix { path } => {
                format!("mysql:///{}?socket={}", self.database, path.display())
            }
        }
    }
}

/// Parses what follows `mysql://`, with its `userinfo` already taken off `rest`.
pub(super) fn parse(
    userinfo: Option<&str>,
    rest: &str,
) -> Result<(CommonConfig, MySqlConfig), ConfigError> {
    let (before_query, query) = split_query(rest);
    let Some((hostport, database)) = before_query.split_once('/') else {
        return Err(ConfigError::Invalid {
            part: format!("mysql://{before_query}"),
            reason: "the database is missing; write mysql://user@host/database",
        });
    };
    let database = percent_decode(database, "database name")?;
    if database.is_empty() || database.len() > 64 || database.contains(['/', '\\', '.', '\0']) {
        return Err(ConfigError::Invalid {
            part: database,
            reason: "not a database name; write mysql://user@host/database",
        });
    }
    let endpoint = if hostport.is_empty() {
        MySqlEndpoint::Unix {
            path: PathBuf::from(DEFAULT_SOCKET),
        }
    } else {
        let mut hosts = parse_host_list(hostport, DEFAULT_PORT)?;
        match hosts.len() {
            1 => {
                let (host, port) = hosts.remove(0);
                MySqlEndpoint::Tcp { host, port }
            }
            _ => MySqlEndpoint::Hosts { hosts },
        }
    };
    let config = MySqlConfig {
        endpoint,
        ..MySqlConfig::tcp("", 0, database)
    };
    let mut pending = PendingConfig {
        config,
        common: CommonConfig::default(),
        credentials: Credentials::from_userinfo(userinfo)?,
        tls: false,
        tls_verify: None,
        tls_ca_file: None,
    };
    options::apply(OPTIONS, &KNOWN, &mut pending, query, INLINE_PASSWORDS)?;
    let PendingConfig {
        mut config,
        common,
        credentials,
        tls,
        tls_verify,
        tls_ca_file,
    } = pending;
    (config.user, config.password) = credentials.finish(
        "give the password one way only: in the URL, password=, password_file= or password_env=",
    )?;
    if tls {
        config.tls = Some(MySqlTls {
            verify: tls_verify.unwrap_or(true),
            ca_file: tls_ca_file,
        });
    } else if tls_verify.is_some() || tls_ca_file.is_some() {
        return Err(ConfigError::Invalid {
            part: "tls_verify/tls_ca_file".to_owned(),
            reason: "TLS options need tls=1 as well",
        });
    }
    if config.procedures == MySqlProcedures::Required {
        if config.lock != MySqlLockMode::Advisory {
            return Err(ConfigError::Invalid {
                part: "procedures=1".to_owned(),
                reason: "the procedures are for lock=advisory; leave procedures out with other lock modes",
            });
        }
        if config.table.len() > MAX_TABLE_FOR_PROCEDURES {
            return Err(ConfigError::Invalid {
                part: format!("table={}", config.table),
                reason: "with procedures=1 a table name may be at most 51 characters, so the procedure names fit in 64",
            });
        }
    }
    Ok((common, config))
}

/// A config whose credentials and TLS options are still being gathered.
pub(crate) struct PendingConfig {
    config: MySqlConfig,
    common: CommonConfig,
    credentials: Credentials,
    tls: bool,
    tls_verify: Option<bool>,
    tls_ca_file: Option<PathBuf>,
}

impl Pending for PendingConfig {
    fn common(&mut self) -> &mut CommonConfig {
        &mut self.common
    }

    fn credentials(&mut self) -> &mut Credentials {
        &mut self.credentials
    }
}

/// Every option of a `mysql://` save_path, in the order the known-options message lists
/// them.
pub(crate) static OPTIONS: &[Opt<PendingConfig>] = &[
    own("table", true, |p, _, v| {
        p.config.table = validate_table_name(&v)?;
        Ok(())
    }),
    own("lock", true, |p, _, v| {
        p.config.lock = parse_lock_mode(&v)?;
        Ok(())
    }),
    own("procedures", true, |p, _, v| {
        p.config.procedures = parse_procedures(&v)?;
        Ok(())
    }),
    own("create_table", true, |p, n, v| {
        p.config.create_table = parse_bool(n, &v)?;
        Ok(())
    }),
    common("connect_timeout", options::connect_timeout),
    common("timeout", options::command_timeout),
    common("read_timeout", options::command_timeout),
    credential("user", true),
    credential("password_file", true),
    credential("password_env", true),
    own("socket", true, set_socket),
    own("tls", true, set_tls),
    own("tls_verify", true, |p, n, v| {
        p.tls_verify = Some(parse_bool(n, &v)?);
        Ok(())
    }),
    own("tls_ca_file", true, |p, _, v| {
        // The mysql crate reads it when it connects; refuse it here, where the setting is
        // named, so it is never read.
        check_file("tls_ca_file", &v)?;
        p.tls_ca_file = Some(PathBuf::from(v));
        Ok(())
    }),
    common("max_connection_age", options::max_connection_age),
    own("gc_interval", true, |p, n, v| {
        p.config.gc_interval = match v.as_str() {
            "0" => None,
            _ => Some(parse_seconds_long(n, &v)?),
        };
        Ok(())
    }),
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
    credential("password", false),
    credential("username", false),
    own("ssl", false, set_tls),
];

/// The options that carry a password in their value.
const INLINE_PASSWORDS: &[&str] = &["password"];

static KNOWN: OnceLock<String> = OnceLock::new();

fn set_tls(p: &mut PendingConfig, name: &str, value: String) -> Result<(), ConfigError> {
    p.tls = parse_bool(name, &value)?;
    Ok(())
}

fn set_socket(p: &mut PendingConfig, _name: &str, value: String) -> Result<(), ConfigError> {
    if !value.starts_with('/') {
        return Err(ConfigError::Invalid {
            part: format!("socket={value}"),
            reason: "the socket path must be absolute, e.g. socket=/run/mysqld/mysqld.sock",
        });
    }
    match &p.config.endpoint {
        MySqlEndpoint::Hosts { .. } => Err(ConfigError::Invalid {
            part: format!("socket={value}"),
            reason: "a socket is local; it cannot be combined with a host list",
        }),
        MySqlEndpoint::Tcp { host, .. } if host != "localhost" => Err(ConfigError::Invalid {
            part: format!("socket={value}"),
            reason: "a socket is local; leave the host out, e.g. mysql:///database?socket=/run/mysqld/mysqld.sock",
        }),
        _ => {
            p.config.endpoint = MySqlEndpoint::Unix {
                path: PathBuf::from(value),
            };
            Ok(())
        }
    }
}

/// A table name goes into SQL text (back-quoted), so only plain identifiers are accepted:
/// ASCII letters, digits and `_`, 1 to 64 of them. The one check for `table=` and for
/// `fleetctl schema --table`.
pub fn validate_table_name(value: &str) -> Result<String, ConfigError> {
    let plain = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if value.is_empty() || value.len() > 64 || !plain {
        return Err(ConfigError::Invalid {
            part: format!("table={value}"),
            reason: "a table name may only hold letters, digits and _ (at most 64)",
        });
    }
    Ok(value.to_owned())
}

fn parse_procedures(value: &str) -> Result<MySqlProcedures, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "auto" => Ok(MySqlProcedures::Auto),
        "1" | "true" | "yes" | "on" => Ok(MySqlProcedures::Required),
        "0" | "false" | "no" | "off" => Ok(MySqlProcedures::Off),
        _ => Err(ConfigError::Invalid {
            part: format!("procedures={value}"),
            reason: "expected procedures=auto (the default), 1 or 0",
        }),
    }
}

fn parse_lock_mode(value: &str) -> Result<MySqlLockMode, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "advisory" | "get_lock" => Ok(MySqlLockMode::Advisory),
        "row" => Ok(MySqlLockMode::Row),
        "none" | "0" | "off" => Ok(MySqlLockMode::None),
        _ => Err(ConfigError::Invalid {
            part: format!("lock={value}"),
            reason: "expected lock=advisory (the default), lock=row or lock=none",
        }),
    }
}

/// A pending config of the plain form, for the option tables' tests.
#[cfg(test)]
pub(crate) fn test_pending() -> PendingConfig {
    PendingConfig {
        config: MySqlConfig::tcp("127.0.0.1", 3306, "db"),
        common: CommonConfig::default(),
        credentials: Credentials::default(),
        tls: false,
        tls_verify: None,
        tls_ca_file: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_save_path, StoreConfig};

    /// A parsed save_path of this backend: its own config, with the common options beside it.
    #[derive(Debug)]
    struct Parsed {
        common: crate::config::CommonConfig,
        config: MySqlConfig,
    }

    impl std::ops::Deref for Parsed {
        type Target = MySqlConfig;
        fn deref(&self) -> &MySqlConfig {
            &self.config
        }
    }

    fn mysql(s: &str) -> Parsed {
        match parse_save_path(s) {
            Ok(StoreConfig {
                common,
                backend: crate::config::BackendConfig::MySql(config),
            }) => Parsed { common, config },
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let c = mysql("mysql://app:pw@db.local/shop");
        assert_eq!(
            c.endpoint,
            MySqlEndpoint::Tcp {
                host: "db.local".into(),
                port: 3306
            }
        );
        assert_eq!(c.database, "shop");
        assert_eq!(c.user.as_deref(), Some("app"));
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("pw"));
        assert_eq!(
            (c.table.as_str(), c.lock, c.create_table, &c.tls),
            (DEFAULT_TABLE, MySqlLockMode::Advisory, true, &None)
        );
        assert_eq!(c.procedures, MySqlProcedures::Auto);
        assert_eq!(c.describe(), "mysql://db.local:3306/shop");
        assert!(!format!("{c:?}").contains("pw\""));
    }

    #[test]
    fn every_option() {
        let c = mysql(
            "mysql://u@10.0.0.5:3307/app?table=php_sessions&lock=row&create_table=0&connect_timeout=0.5&timeout=2&tls=1&tls_verify=0&tls_ca_file=/etc/ca.pem",
        );
        assert_eq!(
            c.endpoint,
            MySqlEndpoint::Tcp {
                host: "10.0.0.5".into(),
                port: 3307
            }
        );
        assert_eq!(
            (c.table.as_str(), c.lock, c.create_table),
            ("php_sessions", MySqlLockMode::Row, false)
        );
        assert_eq!(c.common.connect_timeout, Some(Duration::from_millis(500)));
        assert_eq!(c.common.command_timeout, Some(Duration::from_secs(2)));
        assert_eq!(
            c.tls,
            Some(MySqlTls {
                verify: false,
                ca_file: Some("/etc/ca.pem".into())
            })
        );
        assert_eq!(mysql("mysql://h/d?lock=none").lock, MySqlLockMode::None);
        for (value, procedures) in [
            ("auto", MySqlProcedures::Auto),
            ("1", MySqlProcedures::Required),
            ("on", MySqlProcedures::Required),
            ("0", MySqlProcedures::Off),
        ] {
            let c = mysql(&format!("mysql://h/d?procedures={value}"));
            assert_eq!(c.procedures, procedures, "{value}");
        }
        let longest = "t".repeat(MAX_TABLE_FOR_PROCEDURES);
        let c = mysql(&format!("mysql://h/d?procedures=1&table={longest}"));
        assert_eq!(c.table, longest);
    }

    #[test]
    fn procedure_names_fit_in_64_characters() {
        let longest = "t".repeat(MAX_TABLE_FOR_PROCEDURES);
        assert_eq!(format!("fleet1_{longest}_write").len(), 64);
    }

    #[test]
    fn host_list_for_failover() {
        let c = mysql("mysql://app@db1:3307,db2,[::1]:3308/app?max_connection_age=600");
        assert_eq!(
            c.endpoint,
            MySqlEndpoint::Hosts {
                hosts: vec![
                    ("db1".into(), 3307),
                    ("db2".into(), DEFAULT_PORT),
                    ("::1".into(), 3308)
                ]
            }
        );
        assert_eq!(c.describe(), "mysql://db1:3307,db2:3306,[::1]:3308/app");
        assert_eq!(c.common.max_connection_age, Some(Duration::from_secs(600)));
        assert_eq!(c.gc_interval, Some(DEFAULT_GC_INTERVAL));
        assert_eq!(mysql("mysql://h/app?gc_interval=0").gc_interval, None);
        assert_eq!(
            mysql("mysql://h/app?gc_interval=1.5").gc_interval,
            Some(Duration::from_millis(1500))
        );
        let e = parse_save_path("mysql://db1,db2/app?socket=/run/x.sock").unwrap_err();
        assert!(e.to_string().contains("host list"), "{e}");
    }

    #[test]
    fn unix_socket() {
        let c = mysql("mysql:///app?socket=/tmp/my.sock");
        assert_eq!(
            c.endpoint,
            MySqlEndpoint::Unix {
                path: "/tmp/my.sock".into()
            }
        );
        assert_eq!(c.describe(), "mysql:///app?socket=/tmp/my.sock");
        let c = mysql("mysql://root@/app");
        assert_eq!(
            c.endpoint,
            MySqlEndpoint::Unix {
                path: DEFAULT_SOCKET.into()
            }
        );
    }

    #[test]
    fn errors_name_the_part() {
        let long_table = format!("mysql://h/d?procedures=1&table={}", "t".repeat(52));
        let cases = [
            ("mysql://h", "database"),
            ("mysql://h/", "database"),
            ("mysql://h/d?table=a;drop", "table=a;drop"),
            ("mysql://h/d?table=a`b", "table=a`b"),
            ("mysql://h/d?lock=maybe", "lock=maybe"),
            ("mysql://h/d?procedures=maybe", "procedures=maybe"),
            ("mysql://h/d?procedures=1&lock=row", "procedures=1"),
            (&long_table, "at most 51"),
            ("mysql://h/d?tls_verify=0", "tls=1"),
            ("mysql://h/d?socket=/s", "socket=/s"),
            ("mysql://h/d?prefix=x", "prefix"),
            ("mysql://h:99999/d", "99999"),
        ];
        for (input, quoted) in cases {
            let e = parse_save_path(input).expect_err(input).to_string();
            assert!(e.contains(quoted), "{input}: {e}");
        }
        let e = parse_save_path("mysql://u:hunter2@h/d?password_env=X")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
