//! `fleet-bench --merge`: merge mode (`fleet.locking = merge`) beside Fleet's locking,
//! phpredis (locking off and on) and files, in one run, reported as ratios:
//!
//! - **hot**: one session, 16 clients, each incrementing a variable of its own
//!   (`merge.php?k=k<client>`), the page holding the session 20 ms between read and write.
//!   Locking serves one request at a time (≈ 50 req/s); merge mode's goal is ≥ 10× that, with
//!   nothing lost. *Lost* = requests answered − the sum of the stored variables.
//! - **(b)** read-mostly (`read.php`, 2000 sessions, nothing changed): goal ≥ files.
//! - **(a)** many sessions, one increment each (`counter.php`, 2000 sessions): goal: merge
//!   mode costs no more than locking.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use fleet_harness::paths::repo_root;
use fleet_harness::{Http, WebStack};

use super::{
    measure, script, start_stack, us, wrk, Backends, Handler, Options, CLIENTS, HOLD_MS,
    HOT_CLIENTS, SESSIONS,
};

const FORMS: [Handler; 8] = [
    Handler::NoSession,
    Handler::Files,
    Handler::PhpRedis,
    Handler::PhpRedisLocking,
    Handler::FleetRedis,
    Handler::FleetRedisMerge,
    Handler::FleetMySql,
    Handler::FleetMySqlMerge,
];

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Load {
    Hot,
    ReadMostly,
    Writes,
}

impl Load {
    fn title(self) -> &'static str {
        match self {
            Load::Hot => "hot: one session, 16 clients each incrementing its own variable, the page holds the session 20 ms",
            Load::ReadMostly => "(b) read-mostly: 2000 sessions read, not changed (lazy_write)",
            Load::Writes => "(a) many sessions: 2000 sessions, one increment per request",
        }
    }
}

/// One run of one form under one load.
#[derive(Clone, Default)]
struct Run {
    rps: f64,
    p50: Duration,
    p99: Duration,
    ops: Option<f64>,
    /// CPU time per request of the FPM workers, and of the backend server.
    php_cpu: Option<Duration>,
    backend_cpu: Option<Duration>,
    failed: u64,
    /// Hot only: increments answered but not stored (a lower bound, see the module doc).
    lost: Option<u64>,
    /// Merge forms: writes retried after a conflict, and writes that took the lock.
    retries: Option<i64>,
    fallbacks: Option<i64>,
}

pub fn run(b: &Backends, options: &Options) -> String {
    let mut runs: BTreeMap<(Load, &'static str), Vec<Run>> = BTreeMap::new();
    for round in 0..options.rounds {
        for handler in FORMS {
            let wanted = options.only.as_deref().is_none_or(|o| {
                handler == Handler::NoSession || o.split(',').any(|o| handler.name().contains(o))
            });
            if !wanted {
                continue;
            }
            eprintln!(
                "bench: merge, round {} of {}: {}",
                round + 1,
                options.rounds,
                handler.name()
            );
            let web = start_stack(&super::pool_ini(handler, b, false));
            let sessions = [
                ("FLEET_BENCH_SESSIONS", SESSIONS.to_string()),
                ("FLEET_BENCH_PREFIX", format!("m{}r{round}s", handler as u8)),
            ];
            let page = |p: &str| match handler {
                Handler::NoSession => "nosession.php".to_owned(),
                _ => p.to_owned(),
            };
            wrk::run(
                &web.url(&page("counter.php")),
                CLIENTS,
                Duration::from_secs(2),
                Some(&script()),
                &sessions,
            );
            for (load, p) in [
                (Load::Writes, "counter.php"),
                (Load::ReadMostly, "read.php"),
            ] {
                let url = web.url(&page(p));
                let m = measure(handler, b, &web, || {
                    wrk::run(&url, CLIENTS, options.duration, Some(&script()), &sessions)
                });
                runs.entry((load, handler.name())).or_default().push(Run {
                    rps: m.wrk.rps,
                    p50: m.wrk.p50,
                    p99: m.wrk.p99,
                    ops: m.backend_calls,
                    php_cpu: m.worker_cpu,
                    backend_cpu: m.backend_cpu,
                    failed: m.wrk.errors,
                    ..Run::default()
                });
            }
            if handler != Handler::NoSession {
                let hot = hot_run(handler, b, &web, options, round);
                runs.entry((Load::Hot, handler.name()))
                    .or_default()
                    .push(hot);
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    report(runs, options)
}

fn hot_run(handler: Handler, b: &Backends, web: &WebStack, options: &Options, round: usize) -> Run {
    let id = format!("m{}r{round}hot", handler as u8);
    let env = [("FLEET_BENCH_HOT", id.clone())];
    let url = web.url(&format!("merge.php?hold_ms={HOLD_MS}"));
    let lua = repo_root().join("bench/ownkey.lua");
    let http = Http::default();
    let stats_before = merge_stats(web, &http);
    let m = measure(handler, b, web, || {
        wrk::run_threads(
            &url,
            HOT_CLIENTS,
            HOT_CLIENTS,
            options.duration,
            Some(&lua),
            &env,
        )
    });
    // Requests still waiting (for a lock) when wrk stopped finish, and may write.
    std::thread::sleep(Duration::from_secs(2));
    let stats_after = merge_stats(web, &http);
    let stored: i64 = stored_session(handler, b, &id)
        .split(';')
        .filter_map(|v| {
            let (name, value) = v.split_once("|i:")?;
            name.starts_with('k').then(|| value.parse::<i64>().ok())?
        })
        .sum();
    let answered = m.wrk.requests as i64;
    let is_merge = matches!(handler, Handler::FleetRedisMerge | Handler::FleetMySqlMerge);
    Run {
        rps: m.wrk.rps,
        p50: m.wrk.p50,
        p99: m.wrk.p99,
        ops: m.backend_calls,
        php_cpu: m.worker_cpu,
        backend_cpu: m.backend_cpu,
        failed: m.wrk.errors,
        lost: Some((answered - stored).max(0) as u64),
        retries: is_merge.then(|| stats_after.0 - stats_before.0),
        fallbacks: is_merge.then(|| stats_after.1 - stats_before.1),
    }
}

/// The stored bytes of session `id`, read directly from the handler's store.
fn stored_session(handler: Handler, b: &Backends, id: &str) -> String {
    if handler.uses_redis() {
        b.redis.command(&["GET", &format!("PHPREDIS_SESSION:{id}")])
    } else if handler.uses_mysql() {
        b.db.query(&format!(
            "SELECT data FROM fleet_sessions WHERE id = '{id}'"
        ))
    } else {
        std::fs::read_to_string(b.files_dir.path().join(format!("sess_{id}"))).unwrap_or_default()
    }
}

/// (merge_retries, merge_lock_fallbacks) summed over both pools (0 without Fleet).
fn merge_stats(web: &WebStack, http: &Http) -> (i64, i64) {
    let mut per_pool = BTreeMap::new();
    for _ in 0..20 {
        let Ok(reply) = http.get(&web.url("stats.php"), None) else {
            break;
        };
        let Ok(stats) = serde_json::from_str::<serde_json::Value>(&reply.body) else {
            return (0, 0);
        };
        let get = |k: &str| stats[k].as_i64().unwrap_or(0);
        per_pool.insert(
            reply.worker,
            (get("merge_retries"), get("merge_lock_fallbacks")),
        );
        if per_pool.len() == 2 {
            break;
        }
    }
    per_pool
        .values()
        .fold((0, 0), |(r, f), (r2, f2)| (r + r2, f + f2))
}

fn median_run(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    runs.get(runs.len().saturating_sub(1) / 2)
        .cloned()
        .unwrap_or_default()
}

fn report(runs: BTreeMap<(Load, &'static str), Vec<Run>>, options: &Options) -> String {
    let ranges: BTreeMap<(Load, &str), (f64, f64)> = runs
        .iter()
        .map(|(k, v)| {
            let rps: Vec<f64> = v.iter().map(|r| r.rps).collect();
            let lo = rps.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = rps.iter().copied().fold(0.0, f64::max);
            (*k, (lo, hi))
        })
        .collect();
    let runs: BTreeMap<(Load, &str), Run> =
        runs.into_iter().map(|(k, v)| (k, median_run(v))).collect();
    let rps = |load: Load, h: Handler| runs.get(&(load, h.name())).map_or(0.0, |r| r.rps);
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Merge mode (fleet.locking = merge) beside locking, phpredis and files\n\n\
         `bench/run.sh --merge`: {} rounds of {:?} per load, every form in turn; each row is the form's median round by req/s. Two PHP-FPM pools × 8 workers behind nginx, opcache on, everything on this machine; {CLIENTS} wrk connections for (a) and (b), {HOT_CLIENTS} (one per wrk thread) for the hot session.\n",
        options.rounds, options.duration
    );
    let hot_merge = ratio(
        rps(Load::Hot, Handler::FleetRedisMerge),
        rps(Load::Hot, Handler::FleetRedis),
    );
    let hot_merge_mysql = ratio(
        rps(Load::Hot, Handler::FleetMySqlMerge),
        rps(Load::Hot, Handler::FleetMySql),
    );
    let lost_merge: u64 = [Handler::FleetRedisMerge, Handler::FleetMySqlMerge]
        .iter()
        .filter_map(|h| runs.get(&(Load::Hot, h.name())).and_then(|r| r.lost))
        .sum();
    let b_merge = ratio(
        rps(Load::ReadMostly, Handler::FleetRedisMerge),
        rps(Load::ReadMostly, Handler::Files),
    );
    let a_merge = ratio(
        rps(Load::Writes, Handler::FleetRedisMerge),
        rps(Load::Writes, Handler::FleetRedis),
    );
    let a_merge_mysql = ratio(
        rps(Load::Writes, Handler::FleetMySqlMerge),
        rps(Load::Writes, Handler::FleetMySql),
    );
    let verdict = |ok: bool| if ok { "met" } else { "**not met**" };
    let _ = writeln!(out, "## Goals\n\n| goal | measured | |\n|---|---|---|");
    let _ = writeln!(
        out,
        "| hot session: merge ≥ 10× locking, 0 lost | Redis {hot_merge:.1}×, MySQL {hot_merge_mysql:.1}×; lost {lost_merge} | {} |",
        verdict(hot_merge >= 10.0 && lost_merge == 0)
    );
    let _ = writeln!(
        out,
        "| (b) read-mostly: merge ≥ files | Fleet Redis merge {:.0} req/s vs files {:.0} ({b_merge:.2}×) | {} |",
        rps(Load::ReadMostly, Handler::FleetRedisMerge),
        rps(Load::ReadMostly, Handler::Files),
        verdict(b_merge >= 1.0)
    );
    let _ = writeln!(
        out,
        "| (a) many sessions: merge costs no more than locking | Redis {a_merge:.2}×, MySQL {a_merge_mysql:.2}× of locking's req/s | {} |\n",
        verdict(a_merge >= 0.97 && a_merge_mysql >= 0.97)
    );
    let _ = writeln!(
        out,
        "(a)'s bar allows 3 %: rounds of one form differ by more than that on this shared machine (see *range*).\n"
    );
    for load in [Load::Hot, Load::ReadMostly, Load::Writes] {
        let reference = match load {
            Load::ReadMostly => Handler::Files,
            _ => Handler::FleetRedis,
        };
        let _ = writeln!(
            out,
            "## {}\n\n| form | req/s | range | ratio to {} | p50 | p99 | ops/req | PHP CPU/req | backend CPU/req | session CPU/req | failed |{}\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|{}",
            load.title(),
            reference.name(),
            if load == Load::Hot { " lost | merge retries | took the lock |" } else { "" },
            if load == Load::Hot { "---:|---:|---:|" } else { "" }
        );
        let no_session_cpu = runs
            .get(&(load, Handler::NoSession.name()))
            .and_then(|r| r.php_cpu);
        for handler in FORMS {
            let Some(r) = runs.get(&(load, handler.name())) else {
                continue;
            };
            let (lo, hi) = ranges
                .get(&(load, handler.name()))
                .copied()
                .unwrap_or_default();
            let ops = r.ops.map(|o| format!("{o:.2}")).unwrap_or_default();
            let hot = match load {
                Load::Hot => format!(
                    " {} | {} | {} |",
                    r.lost.map(|l| l.to_string()).unwrap_or_default(),
                    r.retries.map(|l| l.to_string()).unwrap_or_default(),
                    r.fallbacks.map(|l| l.to_string()).unwrap_or_default()
                ),
                _ => String::new(),
            };
            let show = |d: Option<Duration>| d.map(us).unwrap_or_default();
            // What sessions cost the machine: PHP's CPU beyond the page without a session,
            // plus the backend's.
            let session_cpu = match (r.php_cpu, no_session_cpu) {
                (Some(php), Some(none)) if handler != Handler::NoSession => {
                    Some(php.saturating_sub(none) + r.backend_cpu.unwrap_or_default())
                }
                _ => None,
            };
            let _ = writeln!(
                out,
                "| {} | {:.0} | {lo:.0}–{hi:.0} | {:.2}× | {} | {} | {ops} | {} | {} | {} | {} |{hot}",
                handler.name(),
                r.rps,
                ratio(r.rps, rps(load, reference)),
                us(r.p50),
                us(r.p99),
                show(r.php_cpu),
                show(r.backend_cpu),
                show(session_cpu),
                r.failed
            );
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "*Lost* counts increments answered but not in the stored session once every request has finished (requests still in flight when wrk stops are not counted as answered but may write, so it is a lower bound by at most {HOT_CLIENTS}). Each hot client increments its own variable: merge mode keeps them all; locking serves the clients one at a time; without locking, every write replaces the whole session. *Ops/req* = Redis commands (those Fleet's Lua scripts run included) or MySQL statements per request. *PHP CPU/req* and *backend CPU/req*: user+system CPU time of all FPM workers, and of the Redis or MariaDB process, per request (from /proc); *session CPU/req* = PHP CPU/req minus the no-session page's, plus backend CPU/req: what sessions cost the machine. On this one machine the backend's CPU competes with PHP's and nginx's for the same 2 cores, which is what a handler without a server (files) does not pay.\n"
    );
    out
}
