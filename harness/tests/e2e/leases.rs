//! PHP leases across app servers: of 200 concurrent requests one does the once-action, the
//! released lease is taken again with a larger fencing number, and a lease left to expire
//! lets the action run once per period: Redis and MariaDB.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleet_harness::Http;

use crate::backend::Backend;
use crate::common::fleet_stack;

matrix!(php_leases_do_a_once_action_once_per_period_across_app_servers => php_leases_once_per_period:
    redis, mysql_advisory);

/// Fires `requests` requests at `url` from 16 clients at once; returns the replies' bodies.
fn burst(http: &Http, url: &str, requests: usize) -> Vec<String> {
    burst_until(http, url, requests, None)
}

/// As `burst`, but with `until`, the clients go on until that much time has passed.
fn burst_until(http: &Http, url: &str, requests: usize, until: Option<Duration>) -> Vec<String> {
    let end = until.map(|d| Instant::now() + d);
    let more = move |sent: usize| match end {
        Some(end) => Instant::now() < end,
        None => sent < requests,
    };
    let next = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (http, url) = (http.clone(), url.to_owned());
            let (next, bodies) = (next.clone(), bodies.clone());
            std::thread::spawn(move || {
                while more(next.fetch_add(1, Ordering::SeqCst)) {
                    let reply = http.get(&url, None).expect("request");
                    assert_eq!(reply.status, 200, "{reply:?}");
                    bodies.lock().unwrap().push(reply.body.trim().to_owned());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let bodies = bodies.lock().unwrap().clone();
    bodies
}

/// The tokens of the requests that did the action.
fn winners(bodies: &[String]) -> Vec<String> {
    bodies
        .iter()
        .filter_map(|b| b.strip_prefix("did ").map(str::to_owned))
        .collect()
}

fn fence(token: &str) -> u64 {
    token
        .split('-')
        .next()
        .and_then(|f| f.parse().ok())
        .expect("a fence")
}

fn php_leases_once_per_period(backend: Backend) {
    let stack = fleet_stack(&backend.save_path(), 4, &[]);
    let http = Http::new(Duration::from_secs(30));
    let log = stack.dir().join("actions.log");
    let once = |name: &str, ttl: &str| {
        stack.url(&format!(
            "/once.php?name={name}&ttl={ttl}&log={}",
            log.display()
        ))
    };

    // 200 requests through both pools at once: one does the action; the lease (30 s) is
    // still held for a second burst, which does nothing.
    let first = burst(&http, &once("billing", "30"), 200);
    let won = winners(&first);
    assert_eq!(
        won.len(),
        1,
        "{}: exactly one of 200 did it: {won:?}",
        backend.name()
    );
    assert_eq!(first.iter().filter(|b| *b == "skipped").count(), 199);
    let again = burst(&http, &once("billing", "30"), 200);
    assert!(winners(&again).is_empty(), "still held: {again:?}");

    // Released by its holder (through either pool): the next burst does it once more, and
    // the new holder's fencing number is larger.
    let release = http
        .get(
            &stack.url(&format!("/once.php?name=billing&release={}", won[0])),
            None,
        )
        .expect("release");
    assert_eq!(release.body.trim(), "true", "{release:?}");
    let third = winners(&burst(&http, &once("billing", "30"), 200));
    assert_eq!(third.len(), 1, "{third:?}");
    assert!(fence(&third[0]) > fence(&won[0]), "{third:?} after {won:?}");

    // A 0.5 s lease never released, requested without pause until it has been taken twice
    // more: the action is done again once each lease has run out, and never twice within
    // 0.5 s.
    let mut mailer = Vec::new();
    let give_up = Instant::now() + Duration::from_secs(60);
    while winners(&mailer).len() < 2 && Instant::now() < give_up {
        mailer.extend(burst_until(
            &http,
            &once("mailer", "0.5"),
            0,
            Some(Duration::from_millis(800)),
        ));
    }
    let timed = winners(&mailer);
    let text = std::fs::read_to_string(&log).expect("the action log");
    // (asked, got): the instants just before fleet_lease_acquire was called and just after
    // it returned, on the one clock PHP and the server share.
    let mut times: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| timed.iter().any(|t| l.ends_with(t.as_str())))
        .filter_map(|l| {
            let mut fields = l.split(' ');
            Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
        })
        .collect();
    times.sort_by(|a, b| f64::total_cmp(&a.1, &b.1));
    assert_eq!(times.len(), timed.len(), "every winner logged its action");
    assert!(
        times.len() >= 2,
        "the lease ended by its TTL and was taken again: {times:?}"
    );
    for pair in times.windows(2) {
        // The first lease was taken after its caller asked, and the next one after that
        // lease ended 0.5 s later, before its caller had the answer: so the interval from
        // the one's asking to the other's answer covers the whole lease. (1 ms: the server
        // counts TTLs in whole milliseconds.)
        assert!(
            pair[1].1 - pair[0].0 >= 0.499,
            "two actions within one period: {times:?}"
        );
    }
    println!(
        "{}: 200 concurrent requests did the once-action 1 time; {} requests over 1.6 s with a 0.5 s lease did it {} times",
        backend.name(),
        mailer.len(),
        times.len()
    );
    assert!(
        stack.a_worker_died().is_none(),
        "{:?}",
        stack.a_worker_died()
    );
    assert!(text.lines().count() == 2 + times.len());
}
