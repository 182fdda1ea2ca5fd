//! Forms of Fleet side by side in scenario (a), reported as ratios to the first:
//!
//! - `fleet-bench --topologies`: Fleet on Redis Sentinel and on a Redis Cluster beside the
//!   same Fleet on one standalone Redis. The sentinels watch the bench's own Redis, so the
//!   Sentinel form talks to the very server the standalone form does: the difference is only
//!   what the connection keeper does (it asks a sentinel and confirms the master once per
//!   worker). The cluster has three masters on this same machine, so its number says what
//!   routing costs, not what more servers buy.
//! - `fleet-bench --renewal`: Fleet on Redis with lock renewal on (the default) and off.
//! - `fleet-bench --gc`: Fleet on MySQL with the automatic gc off, at its default interval,
//!   and checked every second (each worker then asks the database once a second whether a
//!   run is due, and one of them runs it).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use fleet_harness::{RedisCluster, Sentinel};

use super::{
    measure, median, page, script, start_stack, us, wrk, Backends, Handler, Options, Scenario,
    CLIENTS, SESSIONS,
};

/// The servers only this mode needs.
pub struct Topologies {
    pub sentinels: Vec<Sentinel>,
    pub cluster: RedisCluster,
}

impl Topologies {
    pub fn start(b: &Backends) -> Topologies {
        let sentinels: Vec<Sentinel> = (0..3)
            .map(|_| Sentinel::start(&b.redis, "fleetbench", 2, 5000, &[]))
            .collect();
        Topologies {
            sentinels,
            cluster: RedisCluster::start(3, 0),
        }
    }

    pub fn sentinel_save_path(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/fleetbench", hosts.join(","))
    }
}

/// A comparison: its title, the forms (the first is the reference), the report's file in
/// `bench/results/`, and whether it needs the sentinels and the cluster.
pub struct Comparison {
    pub title: &'static str,
    pub forms: &'static [Handler],
    pub file: &'static str,
    pub topologies: bool,
}

pub const TOPOLOGIES: Comparison = Comparison {
    title: "Fleet on Redis topologies, scenario (a)",
    forms: &[
        Handler::FleetRedis,
        Handler::FleetSentinel,
        Handler::FleetCluster,
    ],
    file: "topologies.md",
    topologies: true,
};

pub const GC: Comparison = Comparison {
    title:
        "Fleet MySQL with the automatic gc off, every 60 s (default) and every second, scenario (a)",
    forms: &[
        Handler::FleetMySqlNoGc,
        Handler::FleetMySql,
        Handler::FleetMySqlGcEverySecond,
    ],
    file: "gc.md",
    topologies: false,
};

/// Today's Fleet Redis beside the same built from an older commit, with phpredis (locking on)
/// and no session in the same run: a regression of the per-request cost shows as a lower
/// ratio and a larger overhead over no session. `bench/run.sh --baseline [COMMIT]`; the
/// default commit is f4c0d3d, before the topologies, lock renewal, the holder record, the
/// busy-session cap, short lifetimes and metrics landed.
pub const BASELINE: Comparison = Comparison {
    title: "Fleet Redis now and at the baseline commit, beside phpredis (locking on) and no session, scenario (a)",
    forms: &[
        Handler::FleetRedisBaseline,
        Handler::FleetRedis,
        Handler::PhpRedisLocking,
        Handler::NoSession,
    ],
    file: "baseline.md",
    topologies: false,
};

pub const RENEWAL: Comparison = Comparison {
    title: "Fleet Redis with lock renewal on and off, scenario (a)",
    forms: &[Handler::FleetRedis, Handler::FleetRedisNoRenewal],
    file: "renewal.md",
    topologies: false,
};

/// Runs scenario (a) for each form, `options.rounds` times interleaved; returns the report.
pub fn run(b: &Backends, options: &Options, comparison: &Comparison) -> String {
    let mut rps: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let mut cpu: BTreeMap<&'static str, Vec<Duration>> = BTreeMap::new();
    let mut calls: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let mut backend_cpu: BTreeMap<&'static str, Vec<Duration>> = BTreeMap::new();
    for round in 0..options.rounds {
        for &handler in comparison.forms {
            eprintln!(
                "bench: {}, round {} of {}: {}",
                comparison.title,
                round + 1,
                options.rounds,
                handler.name()
            );
            let sessions = [
                ("FLEET_BENCH_SESSIONS", SESSIONS.to_string()),
                ("FLEET_BENCH_PREFIX", format!("t{}r{round}s", handler as u8)),
            ];
            let web = start_stack(&super::pool_ini(handler, b, false));
            let url = web.url(&page(handler, Scenario::A));
            wrk::run(
                &url,
                CLIENTS,
                Duration::from_secs(2),
                Some(&script()),
                &sessions,
            );
            let m = measure(handler, b, &web, || {
                wrk::run(&url, CLIENTS, options.duration, Some(&script()), &sessions)
            });
            if m.wrk.errors > 0 {
                eprintln!(
                    "bench: {}: {} failed requests",
                    handler.name(),
                    m.wrk.errors
                );
            }
            rps.entry(handler.name()).or_default().push(m.wrk.rps);
            if let Some(c) = m.worker_cpu {
                cpu.entry(handler.name()).or_default().push(c);
            }
            if let Some(n) = m.backend_calls {
                calls.entry(handler.name()).or_default().push(n);
            }
            if let Some(c) = m.backend_cpu {
                backend_cpu.entry(handler.name()).or_default().push(c);
            }
        }
    }
    let rps: BTreeMap<&str, f64> = rps.into_iter().map(|(k, v)| (k, median(v))).collect();
    let reference = comparison.forms[0];
    let base = rps.get(reference.name()).copied().unwrap_or(0.0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# {}\n\n{} rounds of {:?} each, interleaved; medians. {} clients, {} sessions, one increment per request, two FPM pools of 8 workers behind nginx, everything on this machine.\n",
        comparison.title, options.rounds, options.duration, CLIENTS, SESSIONS
    );
    if comparison.forms.contains(&Handler::FleetRedisBaseline) {
        let rev = std::env::var("FLEET_BASELINE_REV").unwrap_or_else(|_| "?".into());
        let _ = writeln!(
            out,
            "Baseline: commit {rev}, built from the same sources' history with the same Cargo profile.\n"
        );
    }
    // The time a request costs beyond serving the page without a session, from the
    // throughputs of one run: 1/req/s - 1/req/s without session.
    let no_session = rps.get(Handler::NoSession.name()).copied();
    let _ = writeln!(
        out,
        "| form | req/s | ratio to {} | cost over no session | PHP CPU per request | backend commands per request | backend CPU per request |\n|---|---|---|---|---|---|---|",
        reference.name()
    );
    let median_us = |v: Option<Vec<Duration>>| {
        v.map(|mut v| {
            v.sort();
            us(v[v.len() / 2])
        })
        .unwrap_or_else(|| "-".into())
    };
    for &handler in comparison.forms {
        let r = rps.get(handler.name()).copied().unwrap_or(0.0);
        let c = median_us(cpu.remove(handler.name()));
        let bc = median_us(backend_cpu.remove(handler.name()));
        let n = calls
            .remove(handler.name())
            .map(|v| format!("{:.2}", median(v)))
            .unwrap_or_else(|| "-".into());
        let overhead = match no_session {
            Some(ns) if handler != Handler::NoSession && r > 0.0 && ns > 0.0 => {
                format!("{:.0} µs", 1e6 / r - 1e6 / ns)
            }
            _ => "-".into(),
        };
        let ratio = if base > 0.0 { r / base } else { 0.0 };
        let _ = writeln!(
            out,
            "| {} | {r:.0} | {ratio:.2}× | {overhead} | {c} | {n} | {bc} |",
            handler.name()
        );
    }
    out
}

/// `fleet-bench --lifetimes`: one-hit visitors (every request a new session, a fifth of
/// them crawlers) against Fleet Redis with the normal lifetime, and with
/// `first_lifetime=2&bot_first_lifetime=1`; then what is left in Redis 3 s later.
pub fn lifetimes(b: &Backends, options: &Options) -> String {
    let forms = [
        ("normal lifetime (session.gc_maxlifetime = 1440 s)", ""),
        (
            "first_lifetime=2&bot_first_lifetime=1",
            "?first_lifetime=2&bot_first_lifetime=1",
        ),
    ];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# One-hit sessions and crawlers: store size with and without short first lifetimes\n\n{:?} of {} clients where every request is a new session (20% with Googlebot's User-Agent), then 3 s; Fleet Redis, two FPM pools of 8 workers behind nginx.\n",
        options.duration, CLIENTS
    );
    let _ = writeln!(
        out,
        "| save_path options | req/s | sessions written | keys left after 3 s | Redis used_memory after 3 s |\n|---|---|---|---|---|"
    );
    for (label, options_query) in forms {
        eprintln!("bench: lifetimes: {label}");
        b.redis.command(&["FLUSHALL"]);
        let ini = vec![
            (
                "extension".to_owned(),
                fleet_harness::paths::extension().display().to_string(),
            ),
            ("session.save_handler".to_owned(), "fleet".to_owned()),
            (
                "session.save_path".to_owned(),
                format!("{}{options_query}", b.redis.url()),
            ),
        ];
        let web = start_stack(&ini);
        let script = fleet_harness::paths::repo_root().join("bench/onehit.lua");
        let run = wrk::run(
            &web.url("counter.php"),
            CLIENTS,
            options.duration,
            Some(&script),
            &[("FLEET_BENCH_BOTS", "20".to_owned())],
        );
        std::thread::sleep(Duration::from_secs(3));
        let keys = b.redis.command(&["DBSIZE"]);
        let memory = b.redis.info_field("used_memory");
        let _ = writeln!(
            out,
            "| {label} | {:.0} | {} | {} | {:.1} MB |",
            run.rps,
            run.requests,
            keys.trim_start_matches(':'),
            memory as f64 / 1_048_576.0
        );
    }
    out
}

/// A row of `busy`: its label, `fleet.max_waiters`, and further INI entries.
type BusyForm<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// `fleet-bench --busy`: scenario (c) next to other visitors. One session is hammered by 32
/// clients (a page that holds it 20 ms; a 429 is honoured for its Retry-After) while 8 other
/// clients use sessions of their own, on two FPM pools of 4 workers; with the cap off
/// (`fleet.max_waiters=0`), at its default (`auto`) and at fixed values.
pub fn busy(b: &Backends, options: &Options) -> String {
    let forms: [BusyForm; 5] = [
        ("no cap (fleet.max_waiters=0)", "0", &[]),
        (
            "fleet.max_waiters=auto (the default: 2 on 4 workers)",
            "auto",
            &[],
        ),
        (
            "fleet.max_waiters=auto, fleet.max_waiters_window=0 (in force always)",
            "auto",
            &[("fleet.max_waiters_window", "0")],
        ),
        ("fleet.max_waiters=2", "2", &[]),
        (
            "fleet.max_waiters=3 (a whole 4-worker pool with the holder)",
            "3",
            &[],
        ),
    ];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# One visitor hammering one session, next to other visitors\n\n32 clients on one session (page holds it 20 ms, serial limit 50 req/s; a 429 is honoured for 1 s), started 0.5 s before 8 clients on sessions of their own, whose first {} s are measured apart and then {:?}; Fleet Redis, two FPM pools of 4 workers behind nginx, `fleet.busy_status=429`.\n",
        FIRST_SECONDS.as_secs(),
        options.duration
    );
    let _ = writeln!(
        out,
        "| setting | other visitors, req/s | their p99 | their p99 in their first {} s | hot session served, req/s | hot session refused (429) |\n|---|---|---|---|---|---|",
        FIRST_SECONDS.as_secs()
    );
    let others_alone = {
        let web = busy_stack(&busy_ini(b, "0"));
        let sessions = [
            ("FLEET_BENCH_SESSIONS", "200".to_owned()),
            ("FLEET_BENCH_PREFIX", "busyalone".to_owned()),
        ];
        wrk::run(
            &web.url("counter.php"),
            8,
            options.duration,
            Some(&script()),
            &sessions,
        )
    };
    let _ = writeln!(
        out,
        "| nobody hammering | {:.0} | {:?} | | | |",
        others_alone.rps, others_alone.p99
    );
    for (i, (label, cap, extra)) in forms.into_iter().enumerate() {
        eprintln!("bench: busy: {label}");
        let mut ini = busy_ini(b, cap);
        ini.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let web = busy_stack(&ini);
        let hot_url = web.url("counter.php?hold_ms=20");
        let hammer_script = fleet_harness::paths::repo_root().join("bench/hammer.lua");
        let hot_id = format!("busyhot{i}");
        let duration = options.duration;
        // The hammering starts alone and outlasts both runs of the other visitors: their
        // first seconds (while the cap, if any, comes into force) and the measured run.
        let hammer_for =
            Duration::from_millis(500) + FIRST_SECONDS + duration + Duration::from_secs(1);
        let hammer = std::thread::spawn(move || {
            wrk::run(
                &hot_url,
                32,
                hammer_for,
                Some(&hammer_script),
                &[("FLEET_BENCH_HOT", hot_id)],
            )
        });
        std::thread::sleep(Duration::from_millis(500));
        let sessions = [
            ("FLEET_BENCH_SESSIONS", "200".to_owned()),
            ("FLEET_BENCH_PREFIX", format!("busy{i}")),
        ];
        let first = wrk::run(
            &web.url("counter.php"),
            8,
            FIRST_SECONDS,
            Some(&script()),
            &sessions,
        );
        let others = wrk::run(
            &web.url("counter.php"),
            8,
            duration,
            Some(&script()),
            &sessions,
        );
        let hot = match hammer.join() {
            Ok(hot) => hot,
            Err(_) => panic!("the hammering wrk failed"),
        };
        let secs = hammer_for.as_secs_f64();
        let _ = writeln!(
            out,
            "| {label} | {:.0} | {:?} | {:?} | {:.1} | {} |",
            others.rps,
            others.p99,
            first.p99,
            (hot.requests - hot.errors) as f64 / secs,
            hot.errors
        );
    }
    out
}

/// How long the other visitors are measured apart first, in `--busy`: the hammering starts
/// 0.5 s before them, and without others to protect the default cap lets it take the
/// pools, so their first requests wait until one is served and the cap comes into force.
const FIRST_SECONDS: Duration = Duration::from_secs(2);

/// Two FPM pools of 4 workers, as in the report (a small pool, where one session
/// could take every worker).
fn busy_stack(ini: &[(String, String)]) -> fleet_harness::WebStack {
    let ini: Vec<(&str, &str)> = ini.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    fleet_harness::WebStack::start(&["app-a", "app-b"], 4, &ini)
}

fn busy_ini(b: &Backends, cap: &str) -> Vec<(String, String)> {
    let kv = |k: &str, v: String| (k.to_owned(), v);
    vec![
        kv(
            "extension",
            fleet_harness::paths::extension().display().to_string(),
        ),
        kv("session.save_handler", "fleet".into()),
        kv("session.save_path", b.redis.url()),
        kv("fleet.max_waiters", cap.into()),
        kv("fleet.busy_status", "429".into()),
    ]
}
