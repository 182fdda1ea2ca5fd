//! The busy-session cap (`fleet.max_waiters`): one visitor hammering a session cannot take
//! every worker from the others (the default on pools of 4 and 8, a fixed cap), a burst with
//! nobody else served is served in full, `fleet.max_waiters_window=0` keeps the cap always in
//! force, and a page's 4 parallel requests are never refused. Redis only.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleet_harness::{Http, RedisServer};

use crate::common::{fleet_stack, hammer, percentile, session_id};

/// What `cookies.len()` clients (one per cookie) get from `url` in a loop for `duration`:
/// each reply's status and latency. A client told 429 waits its `Retry-After` (1 s), as
/// browsers and proxies do.
fn visitors(
    url: &str,
    http: &Http,
    cookies: &[Option<String>],
    duration: Duration,
) -> Vec<(u16, Duration)> {
    let deadline = Instant::now() + duration;
    let threads: Vec<_> = cookies
        .iter()
        .map(|cookie| {
            let (http, url, cookie) = (http.clone(), url.to_owned(), cookie.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let reply = http.get(&url, cookie.as_deref()).expect("nginx answers");
                    seen.push((reply.status, t.elapsed()));
                    if reply.status == 429 {
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
                seen
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().expect("client"))
        .collect()
}

#[test]
fn one_visitor_hammering_a_session_cannot_take_every_worker() {
    // Two app servers of 4 workers each, the default cap: `auto`, 2 waiters on 4 workers.
    hammered_session_leaves_workers_to_others(4, &[("fleet.busy_status", "429")], "auto: 2");
}

#[test]
fn on_pools_of_8_one_visitor_hammering_a_session_cannot_take_every_worker() {
    // The default on 8 workers: 3 waiters, so one session takes at most 4 of them.
    hammered_session_leaves_workers_to_others(8, &[("fleet.busy_status", "429")], "auto: 3");
}

#[test]
fn with_max_waiters_2_one_visitor_hammering_a_session_cannot_take_every_worker() {
    // A fixed cap, as an operator sets it.
    hammered_session_leaves_workers_to_others(
        4,
        &[("fleet.max_waiters", "2"), ("fleet.busy_status", "429")],
        "2",
    );
}

/// While 32 clients hammer one session of two pools of `workers` behind the balancer, 4
/// other visitors are all served, the cap refuses some of the hammering with the message
/// naming the setting, and what the hammered session was served lost no increment. The
/// throughputs are printed, not asserted (a rate checked against a bound fails on a loaded
/// machine): `fleet-bench --busy` measures them side by side.
fn hammered_session_leaves_workers_to_others(workers: usize, ini: &[(&str, &str)], cap: &str) {
    let redis = RedisServer::start();
    let web = fleet_stack(&redis.url(), workers, ini);
    let http = Http::default();
    let new_cookie = || {
        http.get(&web.url("counter.php"), None)
            .expect("first")
            .set_cookie
    };
    let others: Vec<Option<String>> = (0..4).map(|_| new_cookie()).collect();
    let window = Duration::from_secs(3);
    let idle = visitors(&web.url("counter.php"), &http, &others, window);
    let idle_rate = idle.len() as f64 / window.as_secs_f64();

    // One visitor's session: 32 parallel requests of a page that keeps it 20 ms.
    let hot = new_cookie();
    let hammer = {
        let (url, http, hot) = (web.url("counter.php?hold_ms=20"), http.clone(), hot.clone());
        std::thread::spawn(move || visitors(&url, &http, &vec![hot; 32], Duration::from_secs(4)))
    };
    std::thread::sleep(Duration::from_millis(500));
    let busy = visitors(&web.url("counter.php"), &http, &others, window);
    let busy_rate = busy.len() as f64 / window.as_secs_f64();
    let mut busy_latencies: Vec<Duration> = busy.iter().map(|(_, l)| *l).collect();
    busy_latencies.sort_unstable();
    let hammered = hammer.join().expect("hammer");
    let served = hammered.iter().filter(|(s, _)| *s == 200).count();
    let mut refused: Vec<Duration> = hammered
        .iter()
        .filter(|(s, _)| *s == 429)
        .map(|(_, l)| *l)
        .collect();
    refused.sort_unstable();
    println!(
        "{workers} workers per pool, fleet.max_waiters = {cap}: other visitors: {idle_rate:.0} req/s idle, {busy_rate:.0} req/s while one session was hammered ({:.0}%; latency p50 {:?}, p99 {:?}, max {:?}); the hammered session: {served} served in 4 s ({:.0}% of the 200 its 20 ms page allows), {} refused with 429 (p50 {:?}, max {:?})",
        busy_rate / idle_rate * 100.0,
        percentile(&busy_latencies, 0.5),
        percentile(&busy_latencies, 0.99),
        busy_latencies.last(),
        served as f64 / 200.0 * 100.0,
        refused.len(),
        refused.get(refused.len() / 2),
        refused.last()
    );
    assert!(
        busy.iter().all(|(s, _)| *s == 200),
        "another visitor was refused or failed"
    );
    assert!(!refused.is_empty(), "the cap never refused the hammering");
    assert!(
        hammered.iter().all(|(s, _)| *s == 200 || *s == 429),
        "the hammered session's requests are served or refused with 429"
    );
    assert!(served > 0, "the hammered session was never served");
    // Its first request counted 1 and each served one added 1; a refused one added nothing.
    let after = http
        .get(&web.url("counter.php"), hot.as_deref())
        .expect("after the hammering");
    assert_eq!(
        after.body.trim(),
        (served + 2).to_string(),
        "the hammered session's served requests each counted once"
    );
    let log = web.php_log();
    assert!(
        log.contains(&format!(
            "requests of this server already wait for it (fleet.max_waiters = {cap}) while other visitors are being served"
        )),
        "{log}"
    );
}

#[test]
fn a_burst_on_one_session_with_no_other_visitor_is_served_in_full_by_default() {
    // The same 2 x 4 workers, default cap: 32 clients, nobody else to protect, so every
    // request waits its turn as it would without a cap.
    let redis = RedisServer::start();
    let web = fleet_stack(&redis.url(), 4, &[("fleet.busy_status", "429")]);
    let http = Http::default();
    let cookie = http
        .get(&web.url("counter.php"), None)
        .expect("first")
        .set_cookie
        .expect("cookie");
    // Longer than fleet.max_waiters_window, so the first request does not count as
    // another visitor's (it is this session's anyway).
    std::thread::sleep(Duration::from_millis(1200));
    let load = hammer(&http, &web.url("counter.php?hold_ms=5"), &cookie, 300, 32);
    let mut seen = load.counters.clone();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (2..=301).collect::<Vec<_>>(),
        "every request served once, in turn"
    );
    println!(
        "a burst of 300 requests from 32 clients on one session, nobody else: all served in {:?}, none refused",
        load.elapsed
    );
    assert_eq!(web.php_log(), "", "PHP logged problems");
}

#[test]
fn with_max_waiters_window_0_the_cap_applies_with_no_other_visitor() {
    let redis = RedisServer::start();
    let web = fleet_stack(
        &redis.url(),
        4,
        &[
            ("fleet.max_waiters", "2"),
            ("fleet.max_waiters_window", "0"),
            ("fleet.busy_status", "429"),
        ],
    );
    let http = Http::default();
    let hot = http
        .get(&web.url("counter.php"), None)
        .expect("first")
        .set_cookie;
    let seen = visitors(
        &web.url("counter.php?hold_ms=20"),
        &http,
        &vec![hot; 16],
        Duration::from_secs(2),
    );
    let refused = seen.iter().filter(|(s, _)| *s == 429).count();
    println!(
        "fleet.max_waiters_window = 0: {refused} of {} requests refused with nobody else served",
        seen.len()
    );
    assert!(refused > 0, "the cap did not apply");
    assert!(seen.iter().all(|(s, _)| *s == 200 || *s == 429));
    assert!(
        web.php_log().contains("fleet.max_waiters = 2"),
        "{}",
        web.php_log()
    );
}

#[test]
fn a_page_with_four_parallel_requests_is_never_refused() {
    // 2 x 4 workers, the default cap, nobody else being served.
    four_parallel_requests_never_refused(4, 0);
}

#[test]
fn while_others_are_served_four_parallel_requests_are_never_refused_on_pools_of_8() {
    // 2 x 8 workers, the default cap (auto: 3 waiters), in force: two other visitors are
    // served meanwhile, so the balancer may put all 4 requests on one server.
    four_parallel_requests_never_refused(8, 2);
}

/// 20 rounds of 4 parallel requests on one session (a page that keeps it 50 ms), through
/// the balancer to two pools of `workers`, with `others` other visitors served meanwhile.
fn four_parallel_requests_never_refused(workers: usize, others: usize) {
    let redis = RedisServer::start();
    let web = fleet_stack(&redis.url(), workers, &[("fleet.busy_status", "429")]);
    let http = Http::default();
    let new_cookie = || {
        http.get(&web.url("counter.php"), None)
            .expect("first")
            .set_cookie
    };
    let cookie = new_cookie();
    let others: Vec<Option<String>> = (0..others).map(|_| new_cookie()).collect();
    let stop = Arc::new(AtomicUsize::new(0));
    let background: Vec<_> = others
        .into_iter()
        .map(|other| {
            let (url, http, stop) = (web.url("counter.php"), http.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                while stop.load(Ordering::SeqCst) == 0 {
                    statuses.push(
                        http.get(&url, other.as_deref())
                            .expect("nginx answers")
                            .status,
                    );
                }
                statuses
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut refused = None;
    for _ in 0..20 {
        let parallel: Vec<_> = (0..4)
            .map(|_| {
                let (http, url, cookie) = (
                    http.clone(),
                    web.url("counter.php?hold_ms=50"),
                    cookie.clone(),
                );
                std::thread::spawn(move || {
                    http.get(&url, cookie.as_deref()).expect("nginx answers")
                })
            })
            .collect();
        for request in parallel {
            let reply = request.join().expect("client");
            if reply.status != 200 {
                refused.get_or_insert(reply);
            }
        }
    }
    stop.store(1, Ordering::SeqCst);
    let others_seen: Vec<u16> = background
        .into_iter()
        .flat_map(|t| t.join().expect("other visitor"))
        .collect();
    println!(
        "{workers} workers per pool: 80 requests in rounds of 4 parallel, {} requests of other visitors meanwhile",
        others_seen.len()
    );
    assert!(
        refused.is_none(),
        "one of 4 parallel requests was refused: {refused:?}"
    );
    assert!(
        others_seen.iter().all(|s| *s == 200),
        "another visitor was refused"
    );
    assert_eq!(
        redis.command(&[
            "GET",
            &format!(
                "PHPREDIS_SESSION:{}",
                session_id(cookie.as_deref().unwrap_or_default())
            )
        ]),
        "n|i:81;"
    );
    assert_eq!(web.php_log(), "", "PHP logged problems");
}
