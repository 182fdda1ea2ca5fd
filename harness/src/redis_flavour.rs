//! Which Redis-protocol server the tests start: Redis (`redis-server`, the default) or
//! Valkey (`valkey-server`, the fork that ElastiCache, Memorystore and Debian 13 now offer),
//! chosen for the whole test process by `FLEET_REDIS_SERVER=redis|valkey`. Every server,
//! replica, sentinel and cluster the harness starts is then of that flavour, and so is the
//! CLI it drives them with: scripts/test.sh runs the Redis suites once with each.

use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedisFlavour {
    Redis,
    Valkey,
}

impl RedisFlavour {
    /// The flavour `FLEET_REDIS_SERVER` names (Redis when unset). An unknown name panics:
    /// a test run that silently fell back to Redis would claim Valkey coverage it lacks.
    pub fn of_this_run() -> RedisFlavour {
        static FLAVOUR: OnceLock<RedisFlavour> = OnceLock::new();
        *FLAVOUR.get_or_init(|| match std::env::var("FLEET_REDIS_SERVER").as_deref() {
            Err(_) | Ok("") | Ok("redis") => RedisFlavour::Redis,
            Ok("valkey") => RedisFlavour::Valkey,
            Ok(other) => panic!("FLEET_REDIS_SERVER={other}: expected redis or valkey"),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            RedisFlavour::Redis => "redis",
            RedisFlavour::Valkey => "valkey",
        }
    }

    /// The server binary (`--sentinel` makes it a sentinel).
    pub fn server(self) -> &'static str {
        match self {
            RedisFlavour::Redis => "redis-server",
            RedisFlavour::Valkey => "valkey-server",
        }
    }

    /// The command-line client (`--cluster create`, one-off commands).
    pub fn cli(self) -> &'static str {
        match self {
            RedisFlavour::Redis => "redis-cli",
            RedisFlavour::Valkey => "valkey-cli",
        }
    }
}

/// The server binary of this run's flavour.
pub fn server() -> &'static str {
    RedisFlavour::of_this_run().server()
}

/// The command-line client of this run's flavour.
pub fn cli() -> &'static str {
    RedisFlavour::of_this_run().cli()
}
