//! `--soak`: Fleet under a long run, and under a large store.
//!
//! - Soak: 200 000 requests of scenario (a) through the two FPM pools, with Fleet on Redis
//!   and on MySQL: worker RSS before and after, worker crashes (FPM's log and the worker
//!   PIDs), and failed requests. All but the RSS must be 0.
//! - Store size: scenario (a) with only its 2 000 sessions stored, then with 1 000 000 more,
//!   then while 100 000 of those expire (Redis's expiry and Fleet MySQL's gc at work), then
//!   with only the 2 000 again (so the small store is measured before and after, and the
//!   machine's drift shows): req/s and p99 side by side.
//!
//! Writes `bench/results/soak.md`.

use super::*;

const SOAK_REQUESTS: u64 = 200_000;
const STORED: u64 = 1_000_000;
const EXPIRING: u64 = 100_000;

struct Soak {
    handler: Handler,
    /// (requests so far, mean worker RSS in KB) after each 10 s stretch.
    rss_series: Vec<(u64, u64)>,
    requests: u64,
    failed: u64,
    crashed: usize,
    rss_before_kb: Vec<u64>,
    rss_after_kb: Vec<u64>,
    elapsed: Duration,
}

struct Scaling {
    handler: Handler,
    small: WrkResult,
    /// The small store again, after the large one was emptied.
    small_after: WrkResult,
    large: WrkResult,
    stored_large: u64,
    /// With `EXPIRING` of the stored sessions being removed meanwhile.
    expiring: WrkResult,
    removed: u64,
}

fn env(prefix: &str) -> [(&'static str, String); 2] {
    [
        ("FLEET_BENCH_SESSIONS", SESSIONS.to_string()),
        ("FLEET_BENCH_PREFIX", prefix.to_owned()),
    ]
}

fn soak(handler: Handler, b: &Backends) -> Soak {
    let web = start_stack(&pool_ini(handler, b, false));
    let env = env("soak");
    let url = web.url("counter.php");
    wrk::run(&url, CLIENTS, Duration::from_secs(3), Some(&script()), &env);
    let rss_before_kb = workers_rss_kb(&web);
    let pids_before = worker_pids(&web);
    let started = Instant::now();
    let (mut requests, mut failed) = (0, 0);
    let mut rss_series = Vec::new();
    let total: u64 = std::env::var("FLEET_BENCH_SOAK_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(SOAK_REQUESTS);
    while requests < total {
        let run = wrk::run(
            &url,
            CLIENTS,
            Duration::from_secs(10),
            Some(&script()),
            &env,
        );
        requests += run.requests;
        failed += run.errors;
        let kb = workers_rss_kb(&web);
        let mean = kb.iter().sum::<u64>() / kb.len().max(1) as u64;
        rss_series.push((requests, mean));
        eprintln!(
            "bench: soak {}: {requests} requests, mean worker RSS {mean} KB",
            handler.name()
        );
    }
    let elapsed = started.elapsed();
    let rss_after_kb = workers_rss_kb(&web);
    let pids_after = worker_pids(&web);
    // A worker that died was replaced (pm = static): a new PID, and a line in FPM's log.
    let replaced = pids_after
        .iter()
        .filter(|p| !pids_before.contains(p))
        .count();
    let crashed = replaced.max(usize::from(web.a_worker_died().is_some()));
    Soak {
        handler,
        rss_series,
        requests,
        failed,
        crashed,
        rss_before_kb,
        rss_after_kb,
        elapsed,
    }
}

/// Stores `STORED` sessions of ~120 bytes beside the benchmark's own.
fn fill(handler: Handler, b: &Backends) {
    let started = Instant::now();
    if handler.uses_redis() {
        let mut protocol = Vec::with_capacity(STORED as usize * 120);
        for n in 0..STORED {
            let key = format!("PHPREDIS_SESSION:fill{n:012}abcdefghij");
            let data = format!(
                "user|a:2:{{s:2:\"id\";i:{n};s:4:\"name\";s:8:\"user{:04}\";}}",
                n % 10_000
            );
            let ttl = "3600".to_owned();
            let args = ["SET", key.as_str(), data.as_str(), "EX", ttl.as_str()];
            let _ = write!(Cursor(&mut protocol), "*{}\r\n", args.len());
            for a in args {
                let _ = write!(Cursor(&mut protocol), "${}\r\n{a}\r\n", a.len());
            }
        }
        pipe_to_redis(b, &protocol);
    } else {
        b.db.query(&format!(
            "INSERT INTO fleet_sessions (id, data, expires) \
             SELECT CONCAT('fill', LPAD(seq, 12, '0'), 'abcdefghij'), \
                    CONCAT('user|a:2:{{s:2:\"id\";i:', seq, ';s:4:\"name\";s:8:\"user', LPAD(seq MOD 10000, 4, '0'), '\";}}'), \
                    UNIX_TIMESTAMP() + 3600 \
             FROM seq_1_to_{STORED}"
        ));
    }
    eprintln!(
        "bench: stored {STORED} sessions for {} in {:?}",
        handler.name(),
        started.elapsed()
    );
}

/// Makes `EXPIRING` of the stored sessions expire in a few seconds, so that removing them
/// (Redis's active expiry, Fleet MySQL's gc, made due now) overlaps the next measurement.
fn expire_some(handler: Handler, b: &Backends) {
    if handler.uses_redis() {
        let mut protocol = Vec::new();
        for n in 0..EXPIRING {
            let key = format!("PHPREDIS_SESSION:fill{n:012}abcdefghij");
            let _ = write!(
                Cursor(&mut protocol),
                "*3\r\n$6\r\nEXPIRE\r\n${}\r\n{key}\r\n$1\r\n5\r\n",
                key.len()
            );
        }
        pipe_to_redis(b, &protocol);
    } else {
        b.db.query(&format!(
            "UPDATE fleet_sessions SET expires = UNIX_TIMESTAMP() + 5 \
             WHERE id BETWEEN 'fill' AND CONCAT('fill', LPAD({EXPIRING}, 12, '0'))"
        ));
    }
    std::thread::sleep(Duration::from_secs(6));
    if handler.uses_mysql() {
        // The gc marker row: due now, so the next worker to check starts a run.
        b.db.query("UPDATE fleet_sessions SET expires = 0 WHERE id = 'fleet:gc'");
    }
}

fn pipe_to_redis(b: &Backends, protocol: &[u8]) {
    let mut child = Command::new("redis-cli")
        .args(["-p", &b.redis.port.to_string(), "--pipe"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("redis-cli: {e}"));
    if let Some(stdin) = child.stdin.as_mut() {
        std::io::Write::write_all(stdin, protocol).unwrap_or_else(|e| panic!("redis-cli: {e}"));
    }
    drop(child.stdin.take());
    let _ = child.wait();
}

/// Empties the store again, so the next handler starts from the same state.
fn unfill(handler: Handler, b: &Backends) {
    if handler.uses_redis() {
        b.redis.command(&["FLUSHALL"]);
    } else {
        b.db.query("DELETE FROM fleet_sessions");
    }
}

/// `write!` into a Vec<u8> through `fmt::Write`.
struct Cursor<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn stored(handler: Handler, b: &Backends) -> u64 {
    let text = if handler.uses_redis() {
        b.redis.command(&["DBSIZE"])
    } else {
        b.db.query("SELECT COUNT(*) FROM fleet_sessions")
    };
    text.trim_start_matches(':').trim().parse().unwrap_or(0)
}

fn scaling(handler: Handler, b: &Backends, duration: Duration) -> Scaling {
    unfill(handler, b);
    let web = start_stack(&pool_ini(handler, b, false));
    let url = web.url("counter.php");
    let env = env("scale");
    wrk::run(&url, CLIENTS, Duration::from_secs(3), Some(&script()), &env);
    let small = wrk::run(&url, CLIENTS, duration, Some(&script()), &env);
    fill(handler, b);
    // Let the servers settle after a million inserts (InnoDB flushes its dirty pages); the
    // expiring sessions end during the run.
    std::thread::sleep(Duration::from_secs(settle_seconds()));
    let stored_large = stored(handler, b);
    let large = wrk::run(&url, CLIENTS, duration, Some(&script()), &env);
    expire_some(handler, b);
    let expiring = wrk::run(&url, CLIENTS, duration, Some(&script()), &env);
    let removed = stored_large.saturating_sub(stored(handler, b));
    unfill(handler, b);
    std::thread::sleep(Duration::from_secs(settle_seconds()));
    let small_after = wrk::run(&url, CLIENTS, duration, Some(&script()), &env);
    Scaling {
        handler,
        small,
        small_after,
        large,
        stored_large,
        expiring,
        removed,
    }
}

/// How long the servers settle after the fill (`FLEET_BENCH_SETTLE`, 60 s by default).
fn settle_seconds() -> u64 {
    std::env::var("FLEET_BENCH_SETTLE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

fn kb_summary(kb: &[u64]) -> String {
    let max = kb.iter().max().copied().unwrap_or(0);
    let sum: u64 = kb.iter().sum();
    format!(
        "{} workers, max {:.1} MB, mean {:.1} MB",
        kb.len(),
        max as f64 / 1024.0,
        sum as f64 / 1024.0 / kb.len().max(1) as f64
    )
}

pub(crate) fn run(b: &Backends, options: &Options) -> String {
    let handlers: Vec<Handler> = [Handler::FleetRedis, Handler::FleetMySql]
        .into_iter()
        .filter(|h| {
            options
                .only
                .as_deref()
                .is_none_or(|o| o.split(',').any(|o| h.name().contains(o)))
        })
        .collect();
    // FLEET_BENCH_NO_SOAK / FLEET_BENCH_NO_SCALING leave a part out (for a longer soak).
    let soaks: Vec<Soak> = match std::env::var_os("FLEET_BENCH_NO_SOAK") {
        Some(_) => Vec::new(),
        None => handlers.iter().map(|h| soak(*h, b)).collect(),
    };
    let duration = options.duration.max(Duration::from_secs(10));
    let settle = settle_seconds();
    let scalings: Vec<Scaling> = match std::env::var_os("FLEET_BENCH_NO_SCALING") {
        Some(_) => Vec::new(),
        None => handlers.iter().map(|h| scaling(*h, b, duration)).collect(),
    };

    let mut out = String::new();
    let _ = writeln!(out, "# Soak and store size\n\n{}\n", machine());
    if !soaks.is_empty() {
        let _ = writeln!(
            out,
            "## Soak: scenario (a) through 2 FPM pools × {WORKERS_PER_POOL} workers\n"
        );
        let _ = writeln!(out, "| handler | requests | failed | worker crashes | time | worker RSS before | worker RSS after |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---|---|");
        for s in &soaks {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.0} s | {} | {} |",
                s.handler.name(),
                s.requests,
                s.failed,
                s.crashed,
                s.elapsed.as_secs_f64(),
                kb_summary(&s.rss_before_kb),
                kb_summary(&s.rss_after_kb)
            );
        }
        for s in &soaks {
            let series: Vec<String> = s
                .rss_series
                .iter()
                .map(|(n, kb)| format!("{}k: {:.1} MB", n / 1000, *kb as f64 / 1024.0))
                .collect();
            let _ = writeln!(
                out,
                "\n{} mean worker RSS along the run: {}",
                s.handler.name(),
                series.join(", ")
            );
        }
    }
    // A part that was left out gets no empty table.
    if !scalings.is_empty() {
        let _ = writeln!(
            out,
            "\n## Store size: scenario (a) ({SESSIONS} sessions in use) with only those stored; with {STORED} more; and while {EXPIRING} of those expire and are removed\n"
        );
        let _ = writeln!(out, "| handler | {SESSIONS} stored: req/s | p99 | {STORED} more: req/s | p99 | ratio | {EXPIRING} being removed: req/s | p99 | ratio | removed during it | {SESSIONS} stored again: req/s | p99 |");
        let _ = writeln!(
            out,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for s in &scalings {
            // The ratios are to the mean of the small store before and after, so a drift of
            // the machine over the run does not read as the store's cost.
            let base = ((s.small.rps + s.small_after.rps) / 2.0).max(1.0);
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {:.0} | {} | {:.2} | {:.0} | {} | {:.2} | {} | {:.0} | {} |",
                s.handler.name(),
                s.small.rps,
                us(s.small.p99),
                s.large.rps,
                us(s.large.p99),
                s.large.rps / base,
                s.expiring.rps,
                us(s.expiring.p99),
                s.expiring.rps / base,
                s.removed,
                s.small_after.rps,
                us(s.small_after.p99),
            );
        }
        let _ = writeln!(
            out,
            "\nOne stack per handler, measured {} s at a time with {CLIENTS} clients: before the store is filled, after ({} stored, and {settle} s to settle: InnoDB flushes what the million inserts dirtied), while {EXPIRING} sessions expire (Redis removes them by active expiry; Fleet MySQL's gc deletes them in bounded batches, its marker row made due just before), and again with only the {SESSIONS} (after another {settle} s); the ratios are to the mean of the two small-store runs.",
            duration.as_secs(),
            scalings.first().map_or(0, |s| s.stored_large),
        );
    }
    out
}
