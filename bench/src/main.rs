//! `fleet-bench`: every session handler, one run, side by side.
//!
//! Starts Redis, MariaDB and memcached, then for each handler two PHP-FPM pools behind nginx
//! (the harness's web stack), and drives them with `wrk`:
//!
//! - (a) many sessions (2000), one counter increment per request;
//! - (b) read-mostly: the same sessions read and not changed (lazy_write);
//! - (c) one hot session, 16 clients, a page that holds the session 20 ms;
//! - (d) (a) again with 0.25 ms added each way between PHP and the backend.
//!
//! Writes `bench/results/results.md`, `results.csv` and `chart.png` (gnuplot).
//!
//! `--topologies` instead runs (a) for Fleet on standalone Redis, Sentinel and Cluster, and
//! `--renewal` for Fleet Redis with lock renewal on and off, and `--gc` for Fleet MySQL's
//! automatic gc (see [`forms`]); they write `bench/results/topologies.md`, `renewal.md` and
//! `gc.md`. `--lifetimes` measures what one-hit sessions leave in Redis with and without
//! short first lifetimes (`lifetimes.md`), and `--busy` one hammered session next to other
//! visitors with and without `fleet.max_waiters` (`busy.md`).

mod forms;
mod proxy;
mod wrk;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fleet_harness::mariadb_server::{DATABASE, PASSWORD, USER};
use fleet_harness::paths::{extension, free_port, repo_root, wait_for_port};
use fleet_harness::process::Process;
use fleet_harness::{MariaDbServer, RedisServer, WebStack};

use proxy::LatencyProxy;
use wrk::WrkResult;

const SESSIONS: usize = 2000;
const CLIENTS: usize = 32;
const HOT_CLIENTS: usize = 16;
const HOLD_MS: u64 = 20;
const LAN_DELAY: Duration = Duration::from_micros(250);
const WORKERS_PER_POOL: usize = 8;
const PHP_EXT_DIR: &str = "/usr/lib/php/20220829";

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Scenario {
    A,
    B,
    C,
    D,
}

impl Scenario {
    fn title(self) -> &'static str {
        match self {
            Scenario::A => "(a) many sessions, one increment per request",
            Scenario::B => "(b) read-mostly, lazy_write (session read, not changed)",
            Scenario::C => "(c) one hot session, 16 clients, page holds it 20 ms",
            Scenario::D => "(d) = (a) with 0.25 ms added each way to the backend",
        }
    }
}

/// The backends and the latency proxies in front of them.
struct Backends {
    redis: RedisServer,
    db: MariaDbServer,
    memcached_port: u16,
    _memcached: Process,
    redis_lan: LatencyProxy,
    mysql_lan: LatencyProxy,
    memcached_lan: LatencyProxy,
    files_dir: tempfile::TempDir,
    /// Sentinels and a cluster, for `--topologies`.
    topologies: Option<forms::Topologies>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Handler {
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
    /// Fleet MySQL with `gc_interval=1` and `gc_interval=0` (`--gc` only).
    FleetMySqlGcEverySecond,
    FleetMySqlNoGc,
}

const HANDLERS: [Handler; 9] = [
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
    fn name(self) -> &'static str {
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
            Handler::FleetMySqlGcEverySecond => "Fleet MySQL, gc_interval=1",
            Handler::FleetMySqlNoGc => "Fleet MySQL, gc_interval=0",
        }
    }

    fn uses_redis(self) -> bool {
        matches!(
            self,
            Handler::PhpRedis
                | Handler::PhpRedisLocking
                | Handler::FleetRedis
                | Handler::FleetSentinel
                | Handler::FleetRedisNoRenewal
        )
    }

    fn uses_mysql(self) -> bool {
        matches!(
            self,
            Handler::PdoUserland
                | Handler::FleetMySql
                | Handler::FleetMySqlStatements
                | Handler::FleetMySqlGcEverySecond
                | Handler::FleetMySqlNoGc
        )
    }

    /// INI for this handler's FPM pools; `lan`: through the latency proxies.
    fn ini(self, b: &Backends, lan: bool) -> Vec<(String, String)> {
        let ext = |name: &str| ("extension".to_owned(), format!("{PHP_EXT_DIR}/{name}.so"));
        let kv = |k: &str, v: String| (k.to_owned(), v);
        let redis_port = if lan { b.redis_lan.port } else { b.redis.port };
        let mysql_port = if lan { b.mysql_lan.port } else { b.db.port };
        let memcached_port = if lan {
            b.memcached_lan.port
        } else {
            b.memcached_port
        };
        let mut ini = vec![
            kv("zend_extension", format!("{PHP_EXT_DIR}/opcache.so")),
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
            Handler::FleetRedis | Handler::FleetRedisNoRenewal => {
                if self == Handler::FleetRedisNoRenewal {
                    ini.push(kv("fleet.lock_renewal", "0".into()));
                }
                ini.push(kv("extension", extension().display().to_string()));
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
            | Handler::FleetMySqlNoGc => {
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

/// One measured run.
#[derive(Clone, Debug, Default)]
struct Measurement {
    wrk: WrkResult,
    /// Backend operations per request: Redis commands (those Fleet's Lua scripts run
    /// included), MySQL statements or memcached commands, from the server's counters.
    backend_calls: Option<f64>,
    /// Round trips per request to the backend, counted by the latency proxy ((d) only).
    round_trips: Option<f64>,
    /// CPU time per request of the PHP-FPM workers, and of the backend server process.
    worker_cpu: Option<Duration>,
    backend_cpu: Option<Duration>,
    /// Lowest and highest req/s over the rounds.
    rps_range: Option<(f64, f64)>,
}

#[derive(Default, Clone)]
struct HandlerResults {
    runs: BTreeMap<Scenario, Measurement>,
    rss_before_kb: u64,
    rss_after_kb: u64,
    requests_between_rss: u64,
}

struct Options {
    duration: Duration,
    rss_requests: u64,
    /// Comma-separated parts of handler names to run (for a quick look); all by default.
    only: Option<String>,
    /// Every handler is measured this many times, in turn; the report gives the median.
    rounds: usize,
    /// Run one comparison of Fleet forms instead of the handler comparison.
    comparison: Option<&'static forms::Comparison>,
    /// Run the one-hit lifetimes comparison instead.
    lifetimes: bool,
    /// Run the busy-session comparison instead.
    busy: bool,
}

fn main() {
    let mut options = Options {
        duration: Duration::from_secs(5),
        rss_requests: 100_000,
        only: None,
        rounds: 3,
        comparison: None,
        lifetimes: false,
        busy: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        match (args[i].as_str(), args.get(i + 1)) {
            ("--duration", Some(v)) => {
                options.duration = Duration::from_secs(v.parse().unwrap_or(10))
            }
            ("--rss-requests", Some(v)) => options.rss_requests = v.parse().unwrap_or(100_000),
            ("--only", Some(v)) => options.only = Some(v.clone()),
            ("--rounds", Some(v)) => options.rounds = v.parse().unwrap_or(3).max(1),
            ("--topologies", _) => {
                options.comparison = Some(&forms::TOPOLOGIES);
                i += 1;
                continue;
            }
            ("--renewal", _) => {
                options.comparison = Some(&forms::RENEWAL);
                i += 1;
                continue;
            }
            ("--busy", _) => {
                options.busy = true;
                i += 1;
                continue;
            }
            ("--lifetimes", _) => {
                options.lifetimes = true;
                i += 1;
                continue;
            }
            ("--gc", _) => {
                options.comparison = Some(&forms::GC);
                i += 1;
                continue;
            }
            _ => {
                eprintln!(
                    "usage: fleet-bench [--duration SECONDS] [--rounds N] [--rss-requests N] [--only NAME,…] [--topologies | --renewal | --gc | --lifetimes | --busy]"
                );
                std::process::exit(2);
            }
        }
        i += 2;
    }
    let started = Instant::now();
    let mut backends = start_backends();
    if options.lifetimes || options.busy {
        let (report, file) = match options.busy {
            true => (forms::busy(&backends, &options), "busy.md"),
            false => (forms::lifetimes(&backends, &options), "lifetimes.md"),
        };
        let out = repo_root().join("bench/results").join(file);
        std::fs::write(&out, &report).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
        println!("{report}");
        return;
    }
    if let Some(comparison) = options.comparison {
        if comparison.topologies {
            backends.topologies = Some(forms::Topologies::start(&backends));
        }
        let report = forms::run(&backends, &options, comparison);
        let out = repo_root().join("bench/results").join(comparison.file);
        std::fs::write(&out, &report).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
        println!("{report}");
        eprintln!(
            "bench: done in {:?}; results in {}",
            started.elapsed(),
            out.display()
        );
        return;
    }
    let lan_rtt = measure_proxy_rtt(&backends);
    eprintln!("bench: proxy adds {lan_rtt:?} per round trip (measured with Redis PING)");

    // Rounds interleave the handlers, so a slow spell of this shared machine hits all of
    // them rather than one; the report takes each handler's median.
    let mut rounds: BTreeMap<&'static str, Vec<HandlerResults>> = BTreeMap::new();
    for round in 0..options.rounds {
        for handler in HANDLERS {
            let wanted = options.only.as_deref().is_none_or(|o| {
                handler == Handler::NoSession || o.split(',').any(|o| handler.name().contains(o))
            });
            if !wanted {
                continue;
            }
            eprintln!(
                "bench: round {} of {}: {}",
                round + 1,
                options.rounds,
                handler.name()
            );
            let r = bench_handler(handler, &backends, &options, round);
            rounds.entry(handler.name()).or_default().push(r);
        }
    }
    let results: BTreeMap<&'static str, HandlerResults> = rounds
        .into_iter()
        .map(|(name, runs)| (name, median_of(runs)))
        .collect();
    let rss = rss_over_many_requests(&backends, &options, &results);
    let report = report(&results, &options, lan_rtt, &rss);
    let out = repo_root().join("bench/results");
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    std::fs::write(out.join("results.md"), &report)
        .unwrap_or_else(|e| panic!("write results.md: {e}"));
    write_csv_and_chart(&results, &out);
    println!("{report}");
    eprintln!(
        "bench: done in {:?}; results in {}",
        started.elapsed(),
        out.display()
    );
}

fn start_backends() -> Backends {
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
fn measure_proxy_rtt(b: &Backends) -> Duration {
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

fn pool_ini(handler: Handler, b: &Backends, lan: bool) -> Vec<(String, String)> {
    handler.ini(b, lan)
}

fn start_stack(ini: &[(String, String)]) -> WebStack {
    let ini: Vec<(&str, &str)> = ini.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    WebStack::start(&["app-a", "app-b"], WORKERS_PER_POOL, &ini)
}

fn script() -> PathBuf {
    repo_root().join("bench/sessions.lua")
}

fn page(handler: Handler, scenario: Scenario) -> String {
    match (handler, scenario) {
        (Handler::NoSession, _) => "nosession.php".into(),
        (_, Scenario::B) => "read.php".into(),
        (_, Scenario::C) => format!("counter.php?hold_ms={HOLD_MS}"),
        _ => "counter.php".into(),
    }
}

/// Each scenario's median-throughput run out of the rounds (so its other numbers come from
/// the same run), with the range of req/s across rounds; memory from the last round.
/// The median of some measurements (the lower middle one of an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0.0)
}

fn median_of(rounds: Vec<HandlerResults>) -> HandlerResults {
    let mut out = rounds.last().cloned().unwrap_or_default();
    for (scenario, m) in out.runs.iter_mut() {
        let mut runs: Vec<&Measurement> =
            rounds.iter().filter_map(|r| r.runs.get(scenario)).collect();
        runs.sort_by(|a, b| a.wrk.rps.total_cmp(&b.wrk.rps));
        let (lo, hi) = (
            runs.first().map(|r| r.wrk.rps),
            runs.last().map(|r| r.wrk.rps),
        );
        if let Some(median) = runs.get(runs.len() / 2) {
            *m = Measurement {
                rps_range: lo.zip(hi),
                ..(*median).clone()
            };
        }
    }
    out
}

fn bench_handler(
    handler: Handler,
    b: &Backends,
    options: &Options,
    round: usize,
) -> HandlerResults {
    let mut results = HandlerResults::default();
    // Sessions of this handler only: another handler's leftovers (a lock held by a request
    // cut off when its stack stopped) must not slow it down.
    let prefix = format!("h{}r{round}s", handler as u8);
    let sessions = [
        ("FLEET_BENCH_SESSIONS", SESSIONS.to_string()),
        ("FLEET_BENCH_PREFIX", prefix.clone()),
    ];
    let hot = [
        ("FLEET_BENCH_SESSIONS", "1".to_owned()),
        (
            "FLEET_BENCH_PREFIX",
            format!("h{}r{round}hot", handler as u8),
        ),
    ];
    {
        let web = start_stack(&pool_ini(handler, b, false));
        let warm = Duration::from_secs(2);
        wrk::run(
            &web.url(&page(handler, Scenario::A)),
            CLIENTS,
            warm,
            Some(&script()),
            &sessions,
        );
        results.rss_before_kb = workers_rss_kb(&web).iter().sum();
        let mut requests = 0;
        for scenario in [Scenario::A, Scenario::B, Scenario::C] {
            if handler == Handler::NoSession && scenario == Scenario::C {
                continue;
            }
            let (clients, env) = match scenario {
                Scenario::C => (HOT_CLIENTS, hot.clone()),
                _ => (CLIENTS, sessions.clone()),
            };
            let m = measure(handler, b, &web, || {
                wrk::run(
                    &web.url(&page(handler, scenario)),
                    clients,
                    options.duration,
                    Some(&script()),
                    &env,
                )
            });
            requests += m.wrk.requests;
            report_problems(&web, handler, scenario, &m);
            results.runs.insert(scenario, m);
        }
        // Let requests still in flight (waiting for the hot session) finish before the
        // stack stops.
        std::thread::sleep(Duration::from_secs(1));
        results.rss_after_kb = workers_rss_kb(&web).iter().sum();
        results.requests_between_rss = requests;
    }
    {
        let web = start_stack(&pool_ini(handler, b, true));
        wrk::run(
            &web.url(&page(handler, Scenario::A)),
            CLIENTS,
            Duration::from_secs(1),
            Some(&script()),
            &sessions,
        );
        let proxy = lan_proxy(handler, b);
        let before = proxy.map(LatencyProxy::client_messages);
        let mut m = measure(handler, b, &web, || {
            wrk::run(
                &web.url(&page(handler, Scenario::D)),
                CLIENTS,
                options.duration,
                Some(&script()),
                &sessions,
            )
        });
        if let (Some(p), Some(before)) = (proxy, before) {
            m.round_trips =
                Some((p.client_messages() - before) as f64 / m.wrk.requests.max(1) as f64);
        }
        report_problems(&web, handler, Scenario::D, &m);
        results.runs.insert(Scenario::D, m);
        std::thread::sleep(Duration::from_secs(1));
    }
    results
}

fn report_problems(web: &WebStack, handler: Handler, scenario: Scenario, m: &Measurement) {
    if m.wrk.errors > 0 {
        let log = web.php_log();
        let first: String = log.lines().take(3).collect::<Vec<_>>().join("\n");
        eprintln!(
            "bench: {} {scenario:?}: {} failed requests; PHP log starts:\n{first}",
            handler.name(),
            m.wrk.errors
        );
    }
}

/// Runs `load`, counting the backend operations it caused.
fn measure(
    handler: Handler,
    b: &Backends,
    web: &WebStack,
    load: impl FnOnce() -> WrkResult,
) -> Measurement {
    let workers = worker_pids(web);
    let backend = backend_pid(handler, b);
    let (calls_before, workers_before, backend_before) = (
        backend_calls(handler, b),
        cpu_of(&workers),
        backend.map(|p| cpu_of(&[p])),
    );
    let wrk = load();
    let (calls_after, workers_after, backend_after) = (
        backend_calls(handler, b),
        cpu_of(&workers),
        backend.map(|p| cpu_of(&[p])),
    );
    let requests = wrk.requests.max(1);
    let per_request = |before: Duration, after: Duration| {
        after.saturating_sub(before) / u32::try_from(requests).unwrap_or(u32::MAX)
    };
    let backend_calls = match (calls_before, calls_after) {
        (Some(x), Some(y)) if wrk.requests > 0 => {
            Some((y.saturating_sub(x)) as f64 / wrk.requests as f64)
        }
        _ => None,
    };
    Measurement {
        wrk,
        backend_calls,
        round_trips: None,
        rps_range: None,
        worker_cpu: Some(per_request(workers_before, workers_after)),
        backend_cpu: backend_before
            .zip(backend_after)
            .map(|(x, y)| per_request(x, y)),
    }
}

/// The backend server process a handler talks to.
fn backend_pid(handler: Handler, b: &Backends) -> Option<u32> {
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

/// User + system CPU time the processes have used so far.
fn cpu_of(pids: &[u32]) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks: u64 = pids
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| cpu_ticks(&stat))
        .sum();
    Duration::from_micros(ticks * 1_000_000 / ticks_per_second)
}

/// utime + stime, in clock ticks, from the text of `/proc/PID/stat`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    // Fields after the parenthesised command name, from 0: state, ppid, pgrp, session,
    // tty_nr, tpgid, …, utime at 11, stime at 12. Index them as they are: tpgid is -1 for a
    // process without a terminal, and skipping what does not parse as unsigned shifted
    // every later field (the bench once reported stime + cutime as CPU time that way).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(field(11)? + field(12)?)
}

/// The backend's latency proxy, for handlers that have one.
fn lan_proxy(handler: Handler, b: &Backends) -> Option<&LatencyProxy> {
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
fn backend_calls(handler: Handler, b: &Backends) -> Option<u64> {
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

fn memcached_calls(port: u16) -> Option<u64> {
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

/// The FPM workers of the stack: the children of each pool's master.
fn worker_pids(web: &WebStack) -> Vec<u32> {
    let masters: Vec<u32> = web.pools.iter().map(|p| p.master_pid()).collect();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The parent PID is the second field after the parenthesised command name.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid.is_some_and(|p| masters.contains(&p)) {
            pids.push(pid);
        }
    }
    pids
}

/// RSS (kB) of each FPM worker of the stack.
fn workers_rss_kb(web: &WebStack) -> Vec<u64> {
    worker_pids(web)
        .iter()
        .filter_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// Fleet Redis workers' RSS before and after `options.rss_requests` requests of scenario (a).
struct RssRun {
    requests: u64,
    before_kb: Vec<u64>,
    after_kb: Vec<u64>,
}

fn rss_over_many_requests(
    b: &Backends,
    options: &Options,
    results: &BTreeMap<&'static str, HandlerResults>,
) -> RssRun {
    let rps = results
        .get(Handler::FleetRedis.name())
        .and_then(|r| r.runs.get(&Scenario::A))
        .map(|m| m.wrk.rps)
        .unwrap_or(1000.0);
    let seconds = ((options.rss_requests as f64 / rps) * 1.15).ceil() as u64 + 1;
    eprintln!(
        "bench: Fleet Redis worker RSS over {} requests (~{seconds} s)",
        options.rss_requests
    );
    let web = start_stack(&pool_ini(Handler::FleetRedis, b, false));
    let env = [
        ("FLEET_BENCH_SESSIONS", SESSIONS.to_string()),
        ("FLEET_BENCH_PREFIX", "rss".to_owned()),
    ];
    wrk::run(
        &web.url("counter.php"),
        CLIENTS,
        Duration::from_secs(3),
        Some(&script()),
        &env,
    );
    let before_kb = workers_rss_kb(&web);
    let run = wrk::run(
        &web.url("counter.php"),
        CLIENTS,
        Duration::from_secs(seconds),
        Some(&script()),
        &env,
    );
    let after_kb = workers_rss_kb(&web);
    RssRun {
        requests: run.requests,
        before_kb,
        after_kb,
    }
}

fn us(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 10_000.0 {
        format!("{:.0} ms", us / 1000.0)
    } else if us >= 1000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let version = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .map(|o| {
                let text = if o.stdout.is_empty() {
                    o.stderr
                } else {
                    o.stdout
                };
                String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            })
            .unwrap_or_default()
    };
    format!(
        "{cores} cores ({cpu}), Linux {}; {}; {}; {}; {}; {}; wrk {}",
        version("uname", &["-r"]),
        version("php8.2", &["-v"]).split(" (").next().unwrap_or(""),
        version("redis-server", &["--version"])
            .split(" sha")
            .next()
            .unwrap_or(""),
        version("mariadbd", &["--version"])
            .split(" for ")
            .next()
            .unwrap_or(""),
        version("memcached", &["-V"]),
        version("nginx", &["-v"]),
        version("wrk", &["--version"])
            .split_whitespace()
            .nth(1)
            .unwrap_or(""),
    )
}

/// CPU a handler's sessions cost per request: its workers' CPU beyond the same page without
/// a session, plus the backend server's. Steadier than throughput on a shared machine.
fn session_cpu(m: &Measurement, no_session: Option<&Measurement>) -> Option<Duration> {
    let base = no_session?.worker_cpu?;
    Some(m.worker_cpu?.saturating_sub(base) + m.backend_cpu.unwrap_or_default())
}

fn report(
    results: &BTreeMap<&'static str, HandlerResults>,
    options: &Options,
    lan_rtt: Duration,
    rss: &RssRun,
) -> String {
    let get = |h: Handler, s: Scenario| results.get(h.name()).and_then(|r| r.runs.get(&s));
    let mut md = String::new();
    let _ = writeln!(md, "# Fleet benchmark results\n");
    let _ = writeln!(md, "Machine: {}.\n", machine());
    let _ = writeln!(
        md,
        "Setup: nginx round robin over two PHP-FPM pools × {WORKERS_PER_POOL} workers (opcache on); \
         wrk, {CLIENTS} connections ({HOT_CLIENTS} for (c)), {} s per run after a warm-up. {SESSIONS} sessions in (a), (b), (d). \
         {} rounds, each running every handler in turn; each row is the handler's median round by req/s, and *range* is the lowest and highest req/s over the rounds. \
         Fleet is a release build. (d) goes through a delaying TCP proxy that added {} per round trip (Redis PING, median).\n",
        options.duration.as_secs(),
        options.rounds,
        us(lan_rtt)
    );
    let _ = writeln!(md, "*Overhead* = 1/rps(handler) − 1/rps(same page without a session), same scenario, medians of the same rounds. *Ops/req* = Redis commands (including those Fleet's Lua scripts run inside Redis), MySQL statements or memcached commands per request, from the server's counters. *Round trips/req*, in (d), = client-to-server messages counted by the proxy per request. *PHP CPU/req* and *backend CPU/req* = user+system CPU time of all FPM workers, and of the backend server process, per request (from /proc; 10 ms ticks, so only meaningful over whole runs). *Session CPU/req* = PHP CPU/req minus the no-session page's, plus backend CPU/req: what sessions cost the machine, which varies far less between runs than req/s does.\n");
    for scenario in [Scenario::A, Scenario::B, Scenario::C, Scenario::D] {
        let _ = writeln!(md, "## {}\n", scenario.title());
        let _ = writeln!(
            md,
            "| handler | req/s | range | p50 | p99 | overhead | ops/req | round trips/req | PHP CPU/req | backend CPU/req | session CPU/req | failed |"
        );
        let _ = writeln!(
            md,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        let base = get(Handler::NoSession, scenario).map(|m| m.wrk.rps);
        for h in HANDLERS {
            let Some(m) = get(h, scenario) else { continue };
            let overhead = match (base, h) {
                (Some(b), h) if h != Handler::NoSession && scenario != Scenario::C => us(
                    Duration::from_secs_f64((1.0 / m.wrk.rps - 1.0 / b).max(0.0)),
                ),
                _ => "".into(),
            };
            let calls = m
                .backend_calls
                .map(|c| format!("{c:.2}"))
                .unwrap_or_default();
            let trips = m.round_trips.map(|c| format!("{c:.2}")).unwrap_or_default();
            let php_cpu = m.worker_cpu.map(us).unwrap_or_default();
            let cpu = match h {
                Handler::NoSession => String::new(),
                _ => session_cpu(m, get(Handler::NoSession, scenario))
                    .map(us)
                    .unwrap_or_default(),
            };
            let range = m
                .rps_range
                .map(|(lo, hi)| format!("{lo:.0}–{hi:.0}"))
                .unwrap_or_default();
            let backend_cpu = m.backend_cpu.map(us).unwrap_or_default();
            let _ = writeln!(
                md,
                "| {} | {:.0} | {range} | {} | {} | {overhead} | {calls} | {trips} | {php_cpu} | {backend_cpu} | {cpu} | {} |",
                h.name(),
                m.wrk.rps,
                us(m.wrk.p50),
                us(m.wrk.p99),
                m.wrk.errors
            );
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(md, "## Worker memory\n");
    let _ = writeln!(
        md,
        "| handler | RSS of all 16 workers before (a)–(c) | after | requests in between |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|");
    for h in HANDLERS {
        if let Some(r) = results.get(h.name()) {
            let _ = writeln!(
                md,
                "| {} | {} kB | {} kB | {} |",
                h.name(),
                r.rss_before_kb,
                r.rss_after_kb,
                r.requests_between_rss
            );
        }
    }
    let deltas: Vec<i64> = rss
        .before_kb
        .iter()
        .zip(&rss.after_kb)
        .map(|(a, b)| *b as i64 - *a as i64)
        .collect();
    let _ = writeln!(
        md,
        "\nFleet Redis, {} requests of (a) after a 3 s warm-up: per-worker RSS before {:?} kB, after {:?} kB; largest growth {} kB.\n",
        rss.requests,
        rss.before_kb,
        rss.after_kb,
        deltas.iter().max().copied().unwrap_or(0)
    );
    let _ = writeln!(md, "## Targets (ratios from this run)\n");
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "n/a".into(),
    };
    let rps = |h: Handler, s: Scenario| get(h, s).map(|m| m.wrk.rps);
    let overhead = |h: Handler, s: Scenario| match (rps(h, s), rps(Handler::NoSession, s)) {
        (Some(r), Some(b)) => Some((1.0 / r - 1.0 / b).max(1e-9)),
        _ => None,
    };
    let cpu = |h: Handler, s: Scenario| {
        get(h, s)
            .and_then(|m| session_cpu(m, get(Handler::NoSession, s)))
            .map(|d| d.as_secs_f64())
    };
    // `metric` of handler `h` as a multiple of `base`'s, in scenario `s`.
    let vs = |metric: &dyn Fn(Handler, Scenario) -> Option<f64>,
              h: Handler,
              base: Handler,
              s: Scenario| ratio(metric(h, s), metric(base, s));
    let fleet_c = get(Handler::FleetRedis, Scenario::C);
    let _ = writeln!(md, "| target | measured |");
    let _ = writeln!(md, "|---|---|");
    let _ = writeln!(
        md,
        "| (a) Fleet Redis ≥ 1.2× phpredis-with-locking req/s | {} |",
        vs(
            &rps,
            Handler::FleetRedis,
            Handler::PhpRedisLocking,
            Scenario::A
        )
    );
    let _ = writeln!(
        md,
        "| (a) Fleet Redis overhead ≤ 0.6× phpredis-with-locking's | {} (session CPU: {}) |",
        vs(
            &overhead,
            Handler::FleetRedis,
            Handler::PhpRedisLocking,
            Scenario::A
        ),
        vs(
            &cpu,
            Handler::FleetRedis,
            Handler::PhpRedisLocking,
            Scenario::A
        )
    );
    let _ = writeln!(
        md,
        "| (a) Fleet Redis ≥ 1.0× phpredis without locking | {} (its session CPU: {} of phpredis's) |",
        vs(&rps, Handler::FleetRedis, Handler::PhpRedis, Scenario::A),
        vs(&cpu, Handler::FleetRedis, Handler::PhpRedis, Scenario::A)
    );
    let _ = writeln!(
        md,
        "| (c) Fleet Redis ≥ 0.9× the 50 req/s serial limit, p99 ≤ 500 ms | {} |",
        fleet_c
            .map(|m| format!(
                "{:.2}× ({:.1} req/s), p99 {}",
                m.wrk.rps / 50.0,
                m.wrk.rps,
                us(m.wrk.p99)
            ))
            .unwrap_or_default()
    );
    let trips = |h: Handler| {
        get(h, Scenario::D)
            .and_then(|m| m.round_trips)
            .map(|c| format!("{c:.2}"))
            .unwrap_or_default()
    };
    let _ = writeln!(
        md,
        "| (d) Fleet ≤ 2 round trips per request (phpredis with locking: 4) | Fleet Redis {}, phpredis with locking {}, phpredis without {} (Fleet MySQL {}, with procedures=0 {}) |",
        trips(Handler::FleetRedis),
        trips(Handler::PhpRedisLocking),
        trips(Handler::PhpRedis),
        trips(Handler::FleetMySql),
        trips(Handler::FleetMySqlStatements)
    );
    let _ = writeln!(
        md,
        "| (d) Fleet Redis req/s vs phpredis with locking, 0.25 ms each way | {} |",
        vs(
            &rps,
            Handler::FleetRedis,
            Handler::PhpRedisLocking,
            Scenario::D
        )
    );
    let _ =
        writeln!(
        md,
        "| Fleet MySQL overhead ≤ 1/3 of the userland PDO handler's (a) | {} (session CPU: {}); with procedures=0 {} (session CPU: {}) |",
        vs(&overhead, Handler::FleetMySql, Handler::PdoUserland, Scenario::A),
        vs(&cpu, Handler::FleetMySql, Handler::PdoUserland, Scenario::A),
        vs(&overhead, Handler::FleetMySqlStatements, Handler::PdoUserland, Scenario::A),
        vs(&cpu, Handler::FleetMySqlStatements, Handler::PdoUserland, Scenario::A)
    );
    let _ = writeln!(
        md,
        "| Worker RSS flat (within 1 MB) over {} requests | largest per-worker growth {} kB |",
        rss.requests,
        deltas.iter().max().copied().unwrap_or(0)
    );
    md
}

fn write_csv_and_chart(results: &BTreeMap<&'static str, HandlerResults>, out: &Path) {
    // Columns: handler, req/s in (a), (b), (c), (d); no header line, which gnuplot would
    // draw as an empty group.
    let mut csv = String::new();
    for h in HANDLERS {
        let Some(r) = results.get(h.name()) else {
            continue;
        };
        let v = |s: Scenario| {
            r.runs
                .get(&s)
                .map(|m| format!("{:.0}", m.wrk.rps))
                .unwrap_or_else(|| "0".into())
        };
        let _ = writeln!(
            csv,
            "\"{}\"\t{}\t{}\t{}\t{}",
            h.name(),
            v(Scenario::A),
            v(Scenario::B),
            v(Scenario::C),
            v(Scenario::D)
        );
    }
    let data = out.join("results.csv");
    std::fs::write(&data, csv).unwrap_or_else(|e| panic!("write results.csv: {e}"));
    let png = out.join("chart.png");
    let plot = format!(
        "set terminal pngcairo size 1100,560 font 'sans,10' noenhanced\nset output '{png}'\nset title 'Requests per second by session handler (higher is better)'\n\
         set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.85 border -1\nset boxwidth 0.9\n\
         set xtics rotate by -25 scale 0\nset ylabel 'req/s'\nset grid ytics\nset key top right\nset datafile separator '\\t'\n\
         plot '{data}' using 2:xtic(1) title '(a) increments, many sessions', '' using 3 title '(b) read-mostly (lazy_write)', \
         '' using 5 title '(d) = (a) + 0.25 ms each way'\n",
        png = png.display(),
        data = data.display()
    );
    let script = out.join("chart.gnuplot");
    std::fs::write(&script, plot).unwrap_or_else(|e| panic!("write chart.gnuplot: {e}"));
    match Command::new("gnuplot").arg(&script).status() {
        Ok(s) if s.success() => {}
        other => eprintln!(
            "bench: gnuplot did not draw the chart ({other:?}); is gnuplot-nox installed?"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::cpu_ticks;

    #[test]
    fn cpu_ticks_are_utime_plus_stime_for_a_process_without_a_terminal() {
        // A real line (PID 1 here): tpgid is -1; utime 264, stime 560, cutime 45277.
        let stat = "1 (process api) S 0 0 0 0 -1 4194560 18747 5056502 0 2400 264 560 45277 70991 10 -10 13 0 23";
        assert_eq!(cpu_ticks(stat), Some(264 + 560));
        assert_eq!(cpu_ticks("garbage"), None);
    }
}
