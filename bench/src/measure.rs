//! Measuring: one handler through all scenarios (wrk, CPU from /proc, backend counters),
//! medians over rounds, and worker RSS over many requests.

use super::*;

/// One measured run.
#[derive(Clone, Debug, Default)]
pub(crate) struct Measurement {
    pub(crate) wrk: WrkResult,
    /// Backend operations per request: Redis commands (those Fleet's Lua scripts run
    /// included), MySQL statements or memcached commands, from the server's counters.
    pub(crate) backend_calls: Option<f64>,
    /// Round trips per request to the backend, counted by the latency proxy ((d) only).
    pub(crate) round_trips: Option<f64>,
    /// CPU time per request of the PHP-FPM workers, and of the backend server process.
    pub(crate) worker_cpu: Option<Duration>,
    pub(crate) backend_cpu: Option<Duration>,
    /// Lowest and highest req/s over the rounds.
    pub(crate) rps_range: Option<(f64, f64)>,
}

#[derive(Default, Clone)]
pub(crate) struct HandlerResults {
    pub(crate) runs: BTreeMap<Scenario, Measurement>,
    pub(crate) rss_before_kb: u64,
    pub(crate) rss_after_kb: u64,
    pub(crate) requests_between_rss: u64,
}

/// Each scenario's median-throughput run out of the rounds (so its other numbers come from
/// the same run), with the range of req/s across rounds; memory from the last round.
/// The median of some measurements (the lower middle one of an even count).
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0.0)
}

pub(crate) fn median_of(rounds: Vec<HandlerResults>) -> HandlerResults {
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

pub(crate) fn bench_handler(
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

pub(crate) fn report_problems(
    web: &WebStack,
    handler: Handler,
    scenario: Scenario,
    m: &Measurement,
) {
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
pub(crate) fn measure(
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

/// User + system CPU time the processes have used so far.
pub(crate) fn cpu_of(pids: &[u32]) -> Duration {
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
pub(crate) fn cpu_ticks(stat: &str) -> Option<u64> {
    // Fields after the parenthesised command name, from 0: state, ppid, pgrp, session,
    // tty_nr, tpgid, …, utime at 11, stime at 12. Index them as they are: tpgid is -1 for a
    // process without a terminal, and skipping what does not parse as unsigned shifted
    // every later field (the bench once reported stime + cutime as CPU time that way).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(field(11)? + field(12)?)
}

/// The FPM workers of the stack: the children of each pool's master.
pub(crate) fn worker_pids(web: &WebStack) -> Vec<u32> {
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
pub(crate) fn workers_rss_kb(web: &WebStack) -> Vec<u64> {
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
pub(crate) struct RssRun {
    pub(crate) requests: u64,
    pub(crate) before_kb: Vec<u64>,
    pub(crate) after_kb: Vec<u64>,
}

pub(crate) fn rss_over_many_requests(
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
