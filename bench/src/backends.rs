//! The servers every handler talks to (Redis, MariaDB, memcached, the latency proxies), and
//! their counters: process ids for CPU, commands or statements per request.

use super::*;

/// The backends and the latency proxies in front of them.
pub(crate) struct Backends {
    pub(crate) redis: RedisServer,
    pub(crate) db: MariaDbServer,
    pub(crate) memcached_port: u16,
    pub(crate) _memcached: Process,
    pub(crate) redis_lan: LatencyProxy,
    pub(crate) mysql_lan: LatencyProxy,
    pub(crate) memcached_lan: LatencyProxy,
    pub(crate) files_dir: tempfile::TempDir,
    /// Sentinels and a cluster, for `--topologies`.
    pub(crate) topologies: Option<forms::Topologies>,
}

pub(crate) fn start_backends() -> Backends {
    let redis = RedisServer::start();
    let db = MariaDbServer::start();
    // The tables, as a DBA would make them with `fleetctl schema`.
    for table in ["fleet_sessions", "php_sessions"] {
        let ddl = Command::new(fleet_harness::paths::fleetctl())
            .args(["schema", "--table", table])
            .output()
            .unwrap_or_else(|e| panic!("fleetctl: {e}"));
        db.query(&String::from_utf8_lossy(&ddl.stdout));
    }
    let memcached_port = free_port();
    let mut command = Command::new("memcached");
    command.args([
        "-l",
        "127.0.0.1",
        "-p",
        &memcached_port.to_string(),
        "-U",
        "0",
        "-m",
        "256",
        "-u",
        "root",
        "-t",
        "2",
    ]);
    let memcached = Process::spawn("memcached", &mut command);
    wait_for_port(memcached_port, Duration::from_secs(10), "memcached");
    Backends {
        redis_lan: LatencyProxy::start(redis.port, LAN_DELAY),
        mysql_lan: LatencyProxy::start(db.port, LAN_DELAY),
        memcached_lan: LatencyProxy::start(memcached_port, LAN_DELAY),
        redis,
        db,
        memcached_port,
        _memcached: memcached,
        files_dir: tempfile::Builder::new()
            .prefix("fleet-bench-files-")
            .tempdir()
            .unwrap_or_else(|e| panic!("{e}")),
        topologies: None,
    }
}

/// Median time of a Redis PING through the proxy minus one sent directly.
pub(crate) fn measure_proxy_rtt(b: &Backends) -> Duration {
    let ping = |port: u16| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("ping: {e}"));
        let _ = s.set_nodelay(true);
        let mut times: Vec<Duration> = (0..200)
            .map(|_| {
                let t = Instant::now();
                let _ = s.write_all(b"PING\r\n");
                let mut buf = [0u8; 7];
                let _ = s.read_exact(&mut buf);
                t.elapsed()
            })
            .collect();
        times.sort();
        times[times.len() / 2]
    };
    ping(b.redis_lan.port).saturating_sub(ping(b.redis.port))
}

/// The backend server process a handler talks to.
pub(crate) fn backend_pid(handler: Handler, b: &Backends) -> Option<u32> {
    if handler.uses_redis() {
        b.redis.pid()
    } else if handler.uses_mysql() {
        b.db.pid()
    } else if handler == Handler::Memcached {
        Some(b._memcached.pid())
    } else {
        None
    }
}

/// The backend's latency proxy, for handlers that have one.
pub(crate) fn lan_proxy(handler: Handler, b: &Backends) -> Option<&LatencyProxy> {
    if handler.uses_redis() {
        Some(&b.redis_lan)
    } else if handler.uses_mysql() {
        Some(&b.mysql_lan)
    } else if handler == Handler::Memcached {
        Some(&b.memcached_lan)
    } else {
        None
    }
}

/// Total operations the handler's backend has served so far, excluding our own probes.
pub(crate) fn backend_calls(handler: Handler, b: &Backends) -> Option<u64> {
    if handler.uses_redis() {
        let calls: u64 = b
            .redis
            .command_calls()
            .iter()
            .filter(|(c, _)| !c.starts_with("info") && !c.starts_with("config"))
            .map(|(_, n)| n)
            .sum();
        Some(calls)
    } else if handler.uses_mysql() {
        // Statements clients sent (prepared executions included); each is a round trip.
        let out = b.db.admin("SHOW GLOBAL STATUS LIKE 'Questions'");
        out.split('\t').nth(1).and_then(|n| n.parse::<u64>().ok())
    } else if handler == Handler::Memcached {
        memcached_calls(b.memcached_port)
    } else {
        None
    }
}

pub(crate) fn memcached_calls(port: u16) -> Option<u64> {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"stats\r\n").ok()?;
    let mut total = 0;
    for line in BufReader::new(s).lines() {
        let line = line.ok()?;
        if line == "END" {
            break;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if let ["STAT", name, value] = f.as_slice() {
            if [
                "cmd_get",
                "cmd_set",
                "cmd_touch",
                "delete_hits",
                "delete_misses",
                "incr_hits",
                "incr_misses",
            ]
            .contains(name)
            {
                total += value.parse::<u64>().unwrap_or(0);
            }
        }
    }
    Some(total)
}
