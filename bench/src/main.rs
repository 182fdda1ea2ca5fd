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
//! `--renewal` for Fleet Redis with lock renewal on and off, `--baseline` for Fleet Redis
//! now and built from an older commit (`bench/run.sh --baseline [COMMIT]`), and `--gc` for Fleet MySQL's
//! automatic gc (see [`forms`]); they write `bench/results/topologies.md`, `renewal.md` and
//! `gc.md`. `--lifetimes` measures what one-hit sessions leave in Redis with and without
//! short first lifetimes (`lifetimes.md`), and `--busy` one hammered session next to other
//! visitors with and without `fleet.max_waiters` (`busy.md`). `--soak` sends 200 000
//! requests through Fleet on Redis and MySQL and compares a store of 2 000 sessions with one
//! of a million (`soak.md`, see [`soak`]). `--operations` measures metrics on and off and
//! compression of large sessions (`operations.md`, see [`operations`]). `--merge` runs
//! merge mode beside locking, phpredis and files: a hot session whose clients change
//! variables of their own, read-mostly pages and many sessions (`merge.md`, see [`merge`]).
//! `--at-rest` runs scenario (a) with encryption and hashed ids on and off, beside phpredis
//! (`at_rest.md`, see [`at_rest`]).

mod at_rest;
mod backends;
mod forms;
mod handlers;
mod measure;
mod merge;
mod operations;
mod proxy;
mod report;
mod soak;
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

use backends::*;
use handlers::*;
use measure::*;
use proxy::LatencyProxy;
use report::*;
use wrk::WrkResult;

const SESSIONS: usize = 2000;
const CLIENTS: usize = 32;
const HOT_CLIENTS: usize = 16;
const HOLD_MS: u64 = 20;
const LAN_DELAY: Duration = Duration::from_micros(250);
const WORKERS_PER_POOL: usize = 8;

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
    /// Run the soak and store-size runs instead.
    soak: bool,
    /// Run the metrics and compression runs instead.
    operations: bool,
    /// Run merge mode beside locking, phpredis and files instead.
    merge: bool,
    /// Run scenario (a) with encryption at rest on and off instead.
    at_rest: bool,
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
        soak: false,
        operations: false,
        merge: false,
        at_rest: false,
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
            ("--baseline", _) => {
                options.comparison = Some(&forms::BASELINE);
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
            ("--merge", _) => {
                options.merge = true;
                i += 1;
                continue;
            }
            ("--at-rest", _) => {
                options.at_rest = true;
                i += 1;
                continue;
            }
            ("--operations", _) => {
                options.operations = true;
                i += 1;
                continue;
            }
            ("--soak", _) => {
                options.soak = true;
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
                    "usage: fleet-bench [--duration SECONDS] [--rounds N] [--rss-requests N] [--only NAME,…] [--topologies | --renewal | --baseline | --gc | --lifetimes | --busy | --soak | --operations | --merge | --at-rest]"
                );
                std::process::exit(2);
            }
        }
        i += 2;
    }
    let started = Instant::now();
    let mut backends = start_backends();
    if options.lifetimes
        || options.busy
        || options.soak
        || options.operations
        || options.merge
        || options.at_rest
    {
        let (report, file) = if options.at_rest {
            (at_rest::run(&backends, &options), "at_rest.md")
        } else if options.merge {
            (merge::run(&backends, &options), "merge.md")
        } else if options.operations {
            (operations::run(&backends, &options), "operations.md")
        } else if options.soak {
            (soak::run(&backends, &options), "soak.md")
        } else if options.busy {
            (forms::busy(&backends, &options), "busy.md")
        } else {
            (forms::lifetimes(&backends, &options), "lifetimes.md")
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
