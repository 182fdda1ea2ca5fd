//! The handlers under comparison (Fleet's forms, phpredis, files, memcached, a userland
//! PDO handler) and the scenarios: each one's FPM pool INI and page.

use super::*;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum Scenario {
    A,
    B,
    C,
    D,
}

impl Scenario {
    pub(crate) fn title(self) -> &'static str {
        match self {
            Scenario::A => "(a) many sessions, one increment per request",
            Scenario::B => "(b) read-mostly, lazy_write (session read, not changed)",
            Scenario::C => "(c) one hot session, 16 clients, page holds it 20 ms",
            Scenario::D => "(d) = (a) with 0.25 ms added each way to the backend",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handler {
    NoSession,
    Files,
    PhpRedis,
    PhpRedisLocking,
    Memcached,
    PdoUserland,
    FleetRedis,
    FleetMySql,
    /// Fleet MySQL without its stored procedures: four round trips per request, not two.
    FleetMySqlStatements,
    /// Fleet through Redis Sentinel, and on a Redis Cluster (`--topologies` only).
    FleetSentinel,
    FleetCluster,
    /// Fleet Redis with `fleet.lock_renewal=0` (`--renewal` only).
    FleetRedisNoRenewal,
    /// Fleet Redis built from an older commit (`--baseline` only): `$FLEET_BASELINE_EXT`,
    /// which `bench/run.sh --baseline REV` builds.
    FleetRedisBaseline,
    /// Fleet MySQL with `gc_interval=1` and `gc_interval=0` (`--gc` only).
    FleetMySqlGcEverySecond,
    FleetMySqlNoGc,
    /// Fleet with `fleet.locking = merge` (`--merge` only).
    FleetRedisMerge,
    FleetMySqlMerge,
}

pub(crate) const HANDLERS: [Handler; 9] = [
    Handler::NoSession,
    Handler::Files,
    Handler::PhpRedis,
    Handler::PhpRedisLocking,
    Handler::Memcached,
    Handler::PdoUserland,
    Handler::FleetRedis,
    Handler::FleetMySql,
    Handler::FleetMySqlStatements,
];

impl Handler {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Handler::NoSession => "no session",
            Handler::Files => "files",
            Handler::PhpRedis => "phpredis, locking off",
            Handler::PhpRedisLocking => "phpredis, locking on",
            Handler::Memcached => "php-memcached",
            Handler::PdoUserland => "userland PDO + GET_LOCK",
            Handler::FleetRedis => "Fleet Redis",
            Handler::FleetMySql => "Fleet MySQL (advisory)",
            Handler::FleetMySqlStatements => "Fleet MySQL, procedures=0",
            Handler::FleetSentinel => "Fleet Redis via Sentinel",
            Handler::FleetCluster => "Fleet Redis Cluster (3 masters)",
            Handler::FleetRedisNoRenewal => "Fleet Redis, lock_renewal=0",
            Handler::FleetRedisBaseline => "Fleet Redis at the baseline commit",
            Handler::FleetMySqlGcEverySecond => "Fleet MySQL, gc_interval=1",
            Handler::FleetMySqlNoGc => "Fleet MySQL, gc_interval=0",
            Handler::FleetRedisMerge => "Fleet Redis, locking=merge",
            Handler::FleetMySqlMerge => "Fleet MySQL, locking=merge",
        }
    }

    pub(crate) fn uses_redis(self) -> bool {
        matches!(
            self,
            Handler::PhpRedis
                | Handler::PhpRedisLocking
                | Handler::FleetRedis
                | Handler::FleetSentinel
                | Handler::FleetRedisNoRenewal
                | Handler::FleetRedisBaseline
                | Handler::FleetRedisMerge
        )
    }

    pub(crate) fn uses_mysql(self) -> bool {
        matches!(
            self,
            Handler::PdoUserland
                | Handler::FleetMySql
                | Handler::FleetMySqlStatements
                | Handler::FleetMySqlGcEverySecond
                | Handler::FleetMySqlNoGc
                | Handler::FleetMySqlMerge
        )
    }

    /// INI for this handler's FPM pools; `lan`: through the latency proxies.
    pub(crate) fn ini(self, b: &Backends, lan: bool) -> Vec<(String, String)> {
        // This machine's PHP, by its php-config: no version written here.
        let ext_dir = fleet_harness::php::extension_dir();
        let ext = |name: &str| {
            let path = ext_dir.join(format!("{name}.so"));
            ("extension".to_owned(), path.display().to_string())
        };
        let kv = |k: &str, v: String| (k.to_owned(), v);
        let redis_port = if lan { b.redis_lan.port } else { b.redis.port };
        let mysql_port = if lan { b.mysql_lan.port } else { b.db.port };
        let memcached_port = if lan {
            b.memcached_lan.port
        } else {
            b.memcached_port
        };
        let mut ini = vec![
            kv(
                "zend_extension",
                ext_dir.join("opcache.so").display().to_string(),
            ),
            kv("opcache.enable", "1".into()),
            kv("opcache.validate_timestamps", "0".into()),
        ];
        match self {
            Handler::NoSession => {}
            Handler::Files => {
                ini.push(kv("session.save_handler", "files".into()));
                ini.push(kv(
                    "session.save_path",
                    b.files_dir.path().display().to_string(),
                ));
            }
            Handler::PhpRedis | Handler::PhpRedisLocking => {
                ini.extend([ext("igbinary"), ext("redis")]);
                ini.push(kv("session.save_handler", "redis".into()));
                ini.push(kv(
                    "session.save_path",
                    format!("tcp://127.0.0.1:{redis_port}"),
                ));
                if self == Handler::PhpRedisLocking {
                    ini.push(kv("redis.session.locking_enabled", "1".into()));
                    // Told to wait as long as it takes (the default gives up after 10 tries
                    // 2 ms apart and then writes without the lock).
                    ini.push(kv("redis.session.lock_retries", "-1".into()));
                }
            }
            Handler::Memcached => {
                ini.extend([ext("igbinary"), ext("msgpack"), ext("memcached")]);
                ini.push(kv("session.save_handler", "memcached".into()));
                ini.push(kv(
                    "session.save_path",
                    format!("127.0.0.1:{memcached_port}"),
                ));
            }
            Handler::PdoUserland => {
                ini.extend([ext("mysqlnd"), ext("pdo"), ext("pdo_mysql")]);
                ini.push(kv(
                    "auto_prepend_file",
                    repo_root()
                        .join("bench/php/pdo_session.php")
                        .display()
                        .to_string(),
                ));
                ini.push(kv(
                    "session.save_path",
                    format!("127.0.0.1;{mysql_port};{DATABASE};{USER};{PASSWORD};php_sessions"),
                ));
            }
            Handler::FleetRedis
            | Handler::FleetRedisNoRenewal
            | Handler::FleetRedisBaseline
            | Handler::FleetRedisMerge => {
                if self == Handler::FleetRedisNoRenewal {
                    ini.push(kv("fleet.lock_renewal", "0".into()));
                }
                if self == Handler::FleetRedisMerge {
                    ini.push(kv("fleet.locking", "merge".into()));
                }
                let extension = if self == Handler::FleetRedisBaseline {
                    baseline_extension()
                } else {
                    extension()
                };
                ini.push(kv("extension", extension.display().to_string()));
                ini.push(kv("session.save_handler", "fleet".into()));
                ini.push(kv(
                    "session.save_path",
                    format!("redis://127.0.0.1:{redis_port}"),
                ));
            }
            Handler::FleetSentinel | Handler::FleetCluster => {
                let Some(t) = &b.topologies else {
                    panic!("{} needs --topologies", self.name());
                };
                let save_path = match self {
                    Handler::FleetSentinel => t.sentinel_save_path(),
                    _ => t.cluster.save_path(""),
                };
                ini.push(kv("extension", extension().display().to_string()));
                ini.push(kv("session.save_handler", "fleet".into()));
                ini.push(kv("session.save_path", save_path));
            }
            Handler::FleetMySql
            | Handler::FleetMySqlStatements
            | Handler::FleetMySqlGcEverySecond
            | Handler::FleetMySqlNoGc
            | Handler::FleetMySqlMerge => {
                if self == Handler::FleetMySqlMerge {
                    ini.push(kv("fleet.locking", "merge".into()));
                }
                let procedures = match self {
                    Handler::FleetMySqlStatements => "&procedures=0",
                    Handler::FleetMySqlGcEverySecond => "&gc_interval=1",
                    Handler::FleetMySqlNoGc => "&gc_interval=0",
                    _ => "",
                };
                ini.push(kv("extension", extension().display().to_string()));
                ini.push(kv("session.save_handler", "fleet".into()));
                ini.push(kv(
                    "session.save_path",
                    format!("mysql://{USER}:{PASSWORD}@127.0.0.1:{mysql_port}/{DATABASE}?table=fleet_sessions{procedures}"),
                ));
            }
        }
        ini
    }
}

/// The older build `--baseline` compares with, and its commit.
pub(crate) fn baseline_extension() -> PathBuf {
    match std::env::var_os("FLEET_BASELINE_EXT") {
        Some(path) => PathBuf::from(path),
        None => {
            eprintln!("fleet-bench --baseline: FLEET_BASELINE_EXT is not set; run it as bench/run.sh --baseline [COMMIT], which builds that commit's extension");
            std::process::exit(2);
        }
    }
}

pub(crate) fn pool_ini(handler: Handler, b: &Backends, lan: bool) -> Vec<(String, String)> {
    handler.ini(b, lan)
}

pub(crate) fn start_stack(ini: &[(String, String)]) -> WebStack {
    let ini: Vec<(&str, &str)> = ini.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    WebStack::start(&["app-a", "app-b"], WORKERS_PER_POOL, &ini)
}

pub(crate) fn script() -> PathBuf {
    repo_root().join("bench/sessions.lua")
}

pub(crate) fn page(handler: Handler, scenario: Scenario) -> String {
    match (handler, scenario) {
        (Handler::NoSession, _) => "nosession.php".into(),
        (_, Scenario::B) => "read.php".into(),
        (_, Scenario::C) => format!("counter.php?hold_ms={HOLD_MS}"),
        _ => "counter.php".into(),
    }
}
