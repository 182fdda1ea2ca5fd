//! `--operations`: what the operations features cost.
//!
//! - The per-request bookkeeping: scenario (a) on Fleet Redis with the defaults (metrics
//!   counted, the busy cap's board consulted and updated), with `fleet.metrics=0`, with
//!   `fleet.max_waiters=0`, and with both off, interleaved over the rounds: req/s, p99 and
//!   worker CPU per request.
//! - Compression: sessions of about 1 KB, 20 KB and 200 KB (a cart of 7, 145 and 1450
//!   items, `harness/www/cart.php`) on Fleet Redis without compression, with `lz4` and with
//!   `zstd`: bytes stored per session, req/s, p99 and worker CPU per request.
//!
//! Writes `bench/results/operations.md`.

use super::*;

/// Sessions in use in the compression runs (200 of 200 KB: 40 MB in Redis).
const CART_SESSIONS: usize = 200;

fn fleet_ini(b: &Backends, query: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut ini = pool_ini(Handler::FleetRedis, b, false);
    for (k, v) in ini.iter_mut() {
        if k == "session.save_path" {
            *v = format!("{v}{query}");
        }
    }
    ini.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    ini
}

fn cpu_us(m: &Measurement) -> String {
    m.worker_cpu.map_or("–".to_owned(), |d| {
        format!("{:.0} µs", d.as_secs_f64() * 1e6)
    })
}

fn metrics_runs(b: &Backends, options: &Options, out: &mut String) {
    let forms: [(&str, &[(&str, &str)]); 4] = [
        ("defaults (fleet.metrics=1, fleet.max_waiters=auto)", &[]),
        ("fleet.metrics=0", &[("fleet.metrics", "0")]),
        ("fleet.max_waiters=0", &[("fleet.max_waiters", "0")]),
        (
            "both off",
            &[("fleet.metrics", "0"), ("fleet.max_waiters", "0")],
        ),
    ];
    let mut runs: Vec<Vec<Measurement>> = vec![Vec::new(); forms.len()];
    for round in 0..options.rounds {
        for (i, (label, extra)) in forms.iter().enumerate() {
            eprintln!("bench: operations: round {}: {label}", round + 1);
            let web = start_stack(&fleet_ini(b, "", extra));
            let env = [
                ("FLEET_BENCH_SESSIONS", SESSIONS.to_string()),
                ("FLEET_BENCH_PREFIX", format!("met{round}{i}")),
            ];
            let url = web.url("counter.php");
            wrk::run(&url, CLIENTS, Duration::from_secs(2), Some(&script()), &env);
            let m = measure(Handler::FleetRedis, b, &web, || {
                wrk::run(&url, CLIENTS, options.duration, Some(&script()), &env)
            });
            runs[i].push(m);
        }
    }
    let _ = writeln!(
        out,
        "## Metrics and the busy cap on and off: scenario (a), Fleet Redis, median of {} interleaved rounds of {} s\n",
        options.rounds,
        options.duration.as_secs()
    );
    let _ = writeln!(
        out,
        "| settings | req/s | p99 | worker CPU per request |\n|---|---:|---:|---:|"
    );
    for ((label, _), ms) in forms.iter().zip(runs) {
        let rps = median(ms.iter().map(|m| m.wrk.rps).collect());
        let p99 = median(ms.iter().map(|m| m.wrk.p99.as_secs_f64()).collect());
        let cpu = median(
            ms.iter()
                .filter_map(|m| m.worker_cpu)
                .map(|d| d.as_secs_f64())
                .collect(),
        );
        let _ = writeln!(
            out,
            "| {label} | {rps:.0} | {} | {:.0} µs |",
            us(Duration::from_secs_f64(p99)),
            cpu * 1e6
        );
    }
}

/// Mean stored bytes of the cart sessions with `prefix` (a sample of up to 20 keys).
fn stored_bytes(b: &Backends, prefix: &str) -> f64 {
    let sizes: Vec<f64> = (1..=CART_SESSIONS)
        .filter_map(|n| {
            let key = format!("PHPREDIS_SESSION:{prefix}{n:08}");
            b.redis
                .command(&["STRLEN", &key])
                .trim_start_matches(':')
                .parse::<f64>()
                .ok()
        })
        .filter(|n| *n > 0.0)
        .take(20)
        .collect();
    sizes.iter().sum::<f64>() / sizes.len().max(1) as f64
}

fn compression_runs(b: &Backends, options: &Options, out: &mut String) {
    let sizes = [("1 KB", 7), ("20 KB", 145), ("200 KB", 1450)];
    let forms = [
        ("none", ""),
        ("lz4", "?compression=lz4"),
        ("zstd", "?compression=zstd"),
    ];
    let _ = writeln!(
        out,
        "\n## Compression: cart sessions of three sizes, {CART_SESSIONS} sessions, {} s each, Fleet Redis\n",
        options.duration.as_secs()
    );
    let _ = writeln!(
        out,
        "| session | compression | bytes stored | req/s | p99 | worker CPU per request |\n|---|---|---:|---:|---:|---:|"
    );
    for (size, items) in sizes {
        for (label, query) in forms {
            eprintln!("bench: operations: {size} sessions, compression {label}");
            b.redis.command(&["FLUSHALL"]);
            let web = start_stack(&fleet_ini(b, query, &[]));
            let prefix = format!("cart{items}{label}");
            let env = [
                ("FLEET_BENCH_SESSIONS", CART_SESSIONS.to_string()),
                ("FLEET_BENCH_PREFIX", prefix.clone()),
            ];
            let url = web.url(&format!("cart.php?items={items}"));
            wrk::run(&url, CLIENTS, Duration::from_secs(3), Some(&script()), &env);
            let m = measure(Handler::FleetRedis, b, &web, || {
                wrk::run(&url, CLIENTS, options.duration, Some(&script()), &env)
            });
            report_problems(&web, Handler::FleetRedis, Scenario::A, &m);
            let _ = writeln!(
                out,
                "| {size} | {label} | {:.0} | {:.0} | {} | {} |",
                stored_bytes(b, &prefix),
                m.wrk.rps,
                us(m.wrk.p99),
                cpu_us(&m)
            );
        }
    }
}

pub(crate) fn run(b: &Backends, options: &Options) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Operations: metrics and compression\n\n{}\n",
        machine()
    );
    metrics_runs(b, options, &mut out);
    compression_runs(b, options, &mut out);
    let _ = writeln!(
        out,
        "\nTwo FPM pools of {WORKERS_PER_POOL} workers behind nginx, {CLIENTS} wrk clients; worker CPU is user + system time of the PHP-FPM workers per request, from /proc."
    );
    out
}
