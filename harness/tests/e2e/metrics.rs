//! `fleet_metrics()` from any worker is the exact total of all workers of its server (FPM
//! pool), and Debian's `prometheus_client` parses it: Redis and MariaDB.

use std::time::Duration;

use fleet_harness::{Http, WebStack};

use crate::backend::Backend;
use crate::common::{fleet_stack, hammer, hold_session};

matrix!(metrics_from_any_worker_are_the_totals_of_all_workers_of_its_server => shared_metrics:
    redis, mysql_advisory);

/// `fleet_metrics()` as parsed by prometheus_client (Debian's python3-prometheus-client):
/// sample name (with its labels) → value.
fn parse_prometheus(text: &str) -> std::collections::BTreeMap<String, f64> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys, json\nfrom prometheus_client.parser import text_string_to_metric_families as parse\n\
             out = {}\nfor family in parse(sys.stdin.read()):\n    for s in family.samples:\n\
             \x20       labels = ','.join(f'{k}={v}' for k, v in sorted(s.labels.items()))\n\
             \x20       out[s.name + ('{' + labels + '}' if labels else '')] = s.value\nprint(json.dumps(out))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (scripts/setup.sh installs python3-prometheus-client)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "prometheus_client refused the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// Each pool's parsed metrics, fetched `rounds` times from whichever workers answer; every
/// fetch from one pool must show the same figures.
fn metrics_per_pool(
    stack: &WebStack,
    http: &Http,
    rounds: usize,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, f64>> {
    let mut per_pool: std::collections::BTreeMap<String, std::collections::BTreeMap<String, f64>> =
        std::collections::BTreeMap::new();
    for _ in 0..rounds {
        let reply = http.get(&stack.url("/metrics.php"), None).expect("metrics");
        assert_eq!(reply.status, 200, "{reply:?}");
        let parsed = parse_prometheus(&reply.body);
        match per_pool.get(&reply.worker) {
            Some(earlier) => {
                assert_eq!(earlier, &parsed, "two workers of {} disagree", reply.worker)
            }
            None => {
                per_pool.insert(reply.worker.clone(), parsed);
            }
        }
    }
    assert_eq!(per_pool.len(), 2, "both pools answered");
    per_pool
}

fn shared_metrics(backend: Backend) {
    let stack = fleet_stack(&backend.save_path(), 4, &[]);
    let http = Http::new(Duration::from_secs(30));
    let before = metrics_per_pool(&stack, &http, 2);
    let mut opened: std::collections::BTreeMap<String, f64> = Default::default();
    let mut created: std::collections::BTreeMap<String, f64> = Default::default();
    let mut timeouts: std::collections::BTreeMap<String, f64> = Default::default();

    // 60 new visitors, one request each.
    let mut cookie = String::new();
    for _ in 0..60 {
        let reply = http.get(&stack.url("/counter.php"), None).expect("visitor");
        assert_eq!(reply.status, 200);
        *opened.entry(reply.worker.clone()).or_default() += 1.0;
        *created.entry(reply.worker.clone()).or_default() += 1.0;
        cookie = reply.set_cookie.clone().expect("cookie");
    }
    // One visitor's 40 requests, 8 at a time, each holding the session 20 ms: contended.
    let load = hammer(&http, &stack.url("/counter.php?hold_ms=20"), &cookie, 40, 8);
    assert_eq!(load.counters.len(), 40);
    // The hammer does not say which pool served each request; count them from the logs of
    // the totals instead: 40 more opens in all.
    // Three requests that time out while a page holds the session.
    let holder = hold_session(&stack, &http, &cookie, 2000, "m");
    for _ in 0..3 {
        let reply = http
            .get(&stack.url("/wait.php?timeout=0.2"), Some(&cookie))
            .expect("waiter");
        assert!(reply.body.starts_with("no session"), "{}", reply.body);
        *opened.entry(reply.worker.clone()).or_default() += 1.0;
        *timeouts.entry(reply.worker.clone()).or_default() += 1.0;
    }
    holder.join().expect("holder");

    let after = metrics_per_pool(&stack, &http, 8);
    let delta = |pool: &str, name: &str| {
        after[pool].get(name).copied().unwrap_or(0.0)
            - before[pool].get(name).copied().unwrap_or(0.0)
    };
    let pools: Vec<String> = after.keys().cloned().collect();
    let total = |name: &str| pools.iter().map(|p| delta(p, name)).sum::<f64>();
    for pool in &pools {
        let get = |m: &std::collections::BTreeMap<String, f64>| m.get(pool).copied().unwrap_or(0.0);
        println!(
            "{} {pool}: requests {}, locks {}, contended {}, timeouts {}, created {}",
            backend.name(),
            delta(pool, "fleet_requests_total"),
            delta(pool, "fleet_lock_acquisitions_total"),
            delta(pool, "fleet_lock_contended_total"),
            delta(pool, "fleet_lock_wait_timeouts_total"),
            delta(pool, "fleet_sessions_created_total")
        );
        assert_eq!(
            delta(pool, "fleet_lock_wait_timeouts_total"),
            get(&timeouts),
            "{pool}: timeouts"
        );
        assert_eq!(
            delta(pool, "fleet_sessions_created_total"),
            get(&created),
            "{pool}: sessions created"
        );
        // Every open took its lock, except those that timed out.
        assert_eq!(
            delta(pool, "fleet_lock_acquisitions_total"),
            delta(pool, "fleet_requests_total") - get(&timeouts),
            "{pool}: acquisitions"
        );
        assert_eq!(
            delta(pool, "fleet_lock_wait_seconds_count"),
            delta(pool, "fleet_lock_acquisitions_total"),
            "{pool}: one wait observed per acquisition"
        );
        assert_eq!(delta(pool, "fleet_backend_errors_total{kind=timeout}"), 0.0);
    }
    // Exactly the requests sent: 60 + 40 hammered + 1 holder + 3 timed out.
    assert_eq!(total("fleet_requests_total"), 104.0);
    let known: f64 = opened.values().sum();
    assert_eq!(known, 63.0);
    assert!(
        total("fleet_lock_contended_total") >= 1.0,
        "the hammered session was contended"
    );
    assert!(total("fleet_lock_wait_seconds_sum") > 0.0);
    assert!(total("fleet_session_bytes_written_total") > 0.0);
    assert!(stack.a_worker_died().is_none());
}
