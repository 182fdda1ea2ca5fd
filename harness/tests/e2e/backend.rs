//! The backends the scenarios run on: a real server each, how Fleet's save_path points at
//! it, and what the tests read from it directly (stored data, TTLs, lock tokens,
//! connection counts).

use fleet_harness::{MariaDbServer, RedisCluster, RedisServer};

/// A real backend server and how Fleet is pointed at it.
pub enum Backend {
    Redis(RedisServer),
    Cluster(RedisCluster),
    MySql(MariaDbServer, &'static str),
}

/// The constructors are the backends `matrix!` (main.rs) names, and the names of their tests:
/// a new backend is one constructor here, plus a variant and match arms where its server
/// differs from these.
impl Backend {
    pub fn redis() -> Backend {
        Backend::Redis(RedisServer::start())
    }

    /// A Redis Cluster of three masters.
    pub fn cluster() -> Backend {
        Backend::Cluster(RedisCluster::start(3, 0))
    }

    /// MariaDB with `lock=<mode>`.
    pub fn mysql(mode: &'static str) -> Backend {
        Backend::MySql(MariaDbServer::start(), mode)
    }

    /// MariaDB with named locks (`lock=advisory`), through the stored procedures.
    pub fn mysql_advisory() -> Backend {
        Backend::mysql("advisory")
    }

    /// MariaDB with named locks through plain statements (`procedures=0`).
    pub fn mysql_advisory_without_procedures() -> Backend {
        Backend::mysql("advisory&procedures=0")
    }

    /// MariaDB with row locks (`lock=row`).
    pub fn mysql_row() -> Backend {
        Backend::mysql("row")
    }

    pub fn save_path(&self) -> String {
        match self {
            Backend::Redis(r) => r.url(),
            Backend::Cluster(c) => c.save_path(""),
            Backend::MySql(db, mode) => db.save_path(&format!("lock={mode}")),
        }
    }

    /// The stored data of session `sid`, read directly from the server.
    pub fn stored(&self, sid: &str) -> String {
        match self {
            Backend::Redis(r) => r.command(&["GET", &format!("PHPREDIS_SESSION:{sid}")]),
            Backend::Cluster(c) => c.get(&format!("PHPREDIS_SESSION:{{{sid}}}")),
            Backend::MySql(db, _) => db.query(&format!(
                "SELECT data FROM fleet_sessions WHERE id = '{sid}'"
            )),
        }
    }

    /// Seconds until session `sid` expires (Redis TTL, or MySQL `expires` minus now).
    pub fn ttl(&self, sid: &str) -> i64 {
        let reply = match self {
            Backend::Redis(r) => r.command(&["TTL", &format!("PHPREDIS_SESSION:{sid}")]),
            Backend::Cluster(c) => c.nodes[c.master_of(&format!("PHPREDIS_SESSION:{{{sid}}}"))]
                .command(&["TTL", &format!("PHPREDIS_SESSION:{{{sid}}}")]),
            Backend::MySql(db, _) => db.query(&format!(
                "SELECT expires - UNIX_TIMESTAMP() FROM fleet_sessions WHERE id = '{sid}'"
            )),
        };
        reply.trim_start_matches(':').parse().unwrap_or(-2)
    }

    /// The token of session `sid`'s Redis lock (the part of its value before the holder
    /// record, `<token>|<since>|<holder>`), or an empty reply.
    pub fn lock_token(&self, sid: &str) -> String {
        let value = match self {
            Backend::Redis(r) => r.command(&["GET", &format!("PHPREDIS_SESSION:{sid}_LOCK")]),
            Backend::Cluster(c) => c.get(&format!("PHPREDIS_SESSION:{{{sid}}}_LOCK")),
            Backend::MySql(..) => unreachable!("MySQL locks are not keys"),
        };
        value.split('|').next().unwrap_or_default().to_owned()
    }

    /// Connections one worker opens: one, except on a cluster, where it asks a seed node
    /// for the slot map and then connects to the master that owns the session.
    pub fn connections_per_worker(&self) -> u64 {
        match self {
            Backend::Cluster(_) => 2,
            _ => 1,
        }
    }

    /// Connections the server has accepted so far.
    pub fn connections(&self) -> u64 {
        match self {
            Backend::Redis(r) => r.info_field("total_connections_received"),
            // Each node's count includes the one connection `info_field` opens there.
            Backend::Cluster(c) => {
                c.nodes
                    .iter()
                    .map(|n| n.info_field("total_connections_received") - 1)
                    .sum::<u64>()
                    + 1
            }
            Backend::MySql(db, _) => db
                .admin("SHOW GLOBAL STATUS LIKE 'Connections'")
                .split('\t')
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Backend::Redis(_) => "redis".to_owned(),
            Backend::Cluster(_) => "redis cluster".to_owned(),
            Backend::MySql(_, mode) => format!("mysql lock={mode}"),
        }
    }
}
