//! The report: results.md (tables, the machine, the notes), results.csv and the chart.

use super::*;

pub(crate) fn us(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 10_000.0 {
        format!("{:.0} ms", us / 1000.0)
    } else if us >= 1000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

pub(crate) fn machine() -> String {
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
        version(&fleet_harness::php::binary().display().to_string(), &["-v"])
            .split(" (")
            .next()
            .unwrap_or(""),
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
pub(crate) fn session_cpu(m: &Measurement, no_session: Option<&Measurement>) -> Option<Duration> {
    let base = no_session?.worker_cpu?;
    Some(m.worker_cpu?.saturating_sub(base) + m.backend_cpu.unwrap_or_default())
}

pub(crate) fn report(
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

pub(crate) fn write_csv_and_chart(results: &BTreeMap<&'static str, HandlerResults>, out: &Path) {
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
