//! Session locks and dead or slow holders: a SIGKILLed worker's lock ending by its TTL
//! (`fleet.lock_ttl`, and the short default with renewal) on Redis and a Cluster, free at once
//! on MariaDB, and a page holding its session longer than the TTL keeping its lock.

use std::time::{Duration, Instant};

use fleet_harness::{Http, WebStack};

use crate::backend::Backend;
use crate::common::{fleet_stack, session_id};

matrix!(a_killed_workers_lock_expires_by_its_ttl => killed_workers_lock_expires: redis, cluster);

fn killed_workers_lock_expires(backend: Backend) {
    let web = fleet_stack(&backend.save_path(), 2, &[("fleet.lock_ttl", "2")]);
    let http = Http::new(Duration::from_secs(30));
    let cookie = http
        .get(&web.url("counter.php"), None)
        .expect("first")
        .set_cookie
        .expect("cookie");
    let sid = cookie
        .split_once('=')
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default();

    let (lock_taken, _) = kill_a_worker_holding_the_session(&web, &http, &cookie, || {
        assert_eq!(
            backend.lock_token(&sid).len(),
            32,
            "the hanging request holds the lock"
        );
    });

    let reply = http
        .get(&web.url("counter.php"), Some(&cookie))
        .expect("next request");
    println!(
        "{}: the next request got the session {:?} after the dead worker took the lock (lock TTL 2 s)",
        backend.name(),
        lock_taken.elapsed()
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.body.trim(),
        "2",
        "the killed request never wrote, so the counter goes 1 -> 2"
    );
}

#[test]
fn mysql_a_killed_workers_session_is_free_at_once() {
    for mode in ["advisory", "row"] {
        let backend = Backend::mysql(mode);
        let web = fleet_stack(&backend.save_path(), 2, &[]);
        let http = Http::new(Duration::from_secs(30));
        let cookie = http
            .get(&web.url("counter.php"), None)
            .expect("first")
            .set_cookie
            .expect("cookie");
        let (_, killed_at) = kill_a_worker_holding_the_session(&web, &http, &cookie, || {});
        let reply = http
            .get(&web.url("counter.php"), Some(&cookie))
            .expect("next request");
        let after = killed_at.elapsed();
        println!("mysql lock={mode}: the next request got the session {after:?} after the holder was killed");
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(
            reply.body.trim(),
            "2",
            "the killed request never wrote, so the counter goes 1 -> 2"
        );
        // Nothing but the server frees a MySQL lock (no TTL): had it stayed, this request
        // would have given up after fleet.lock_wait_timeout with a warning, not counted 2.
    }
}

/// Sends a request that takes the session and hangs (`hold.php`), waits until it holds the
/// session, runs `while_held`, then SIGKILLs the FPM worker serving it, as the OOM killer or
/// a segfault would. Returns when the session was taken and when the worker was killed.
fn kill_a_worker_holding_the_session(
    web: &WebStack,
    http: &Http,
    cookie: &str,
    while_held: impl FnOnce(),
) -> (Instant, Instant) {
    let pid_file = web.dir().join("holder.pid");
    let hung = {
        let url = web.url(&format!("hold.php?pid_file={}", pid_file.display()));
        let (http, cookie) = (http.clone(), cookie.to_owned());
        std::thread::spawn(move || http.get(&url, Some(&cookie)))
    };
    let wait_start = Instant::now();
    let pid = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            break pid;
        }
        assert!(
            wait_start.elapsed() < Duration::from_secs(10),
            "the hanging request never took the session"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let taken = Instant::now();
    while_held();
    // SAFETY: kill(2) on the FPM worker serving the hanging request.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let killed_at = Instant::now();
    let killed = hung.join().expect("client thread").expect("nginx answers");
    assert_eq!(killed.status, 502, "the killed request fails: {killed:?}");
    (taken, killed_at)
}

matrix!(a_request_holding_its_session_longer_than_the_lock_ttl_keeps_its_lock => long_hold_keeps_the_lock:
    redis, cluster);

/// With `fleet.lock_ttl=3`, a page that keeps its session 8 s (a slow API call) keeps its
/// lock: renewal extends it. A second request on the session waits for it, and both
/// increments are stored.
fn long_hold_keeps_the_lock(backend: Backend) {
    let web = fleet_stack(&backend.save_path(), 2, &[("fleet.lock_ttl", "3")]);
    let http = Http::new(Duration::from_secs(60));
    let first = http.get(&web.url("counter.php"), None).expect("first");
    let cookie = first.set_cookie.expect("cookie");
    let slow = {
        let (http, url, cookie) = (
            http.clone(),
            web.url("counter.php?hold_ms=8000"),
            cookie.clone(),
        );
        std::thread::spawn(move || http.get(&url, Some(&cookie)))
    };
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let second = http
        .get(&web.url("counter.php"), Some(&cookie))
        .expect("second request");
    let waited = started.elapsed();
    let slow = slow.join().expect("client").expect("slow request");
    println!(
        "{}: fleet.lock_ttl=3, a request held the session 8 s; the second request waited {waited:?}",
        backend.name()
    );
    assert_eq!((slow.status, slow.body.trim()), (200, "2"), "{slow:?}");
    assert_eq!(
        (second.status, second.body.trim()),
        (200, "3"),
        "{second:?}"
    );
    assert_eq!(backend.stored(&session_id(&cookie)), "n|i:3;");
    assert_eq!(web.php_log(), "", "PHP logged problems");
}

#[test]
fn a_killed_workers_lock_ends_within_the_short_default_ttl() {
    // No fleet.lock_ttl: the default of 5 s with renewal, not max_execution_time (30 s).
    let backend = Backend::redis();
    let web = fleet_stack(&backend.save_path(), 2, &[]);
    let http = Http::new(Duration::from_secs(60));
    let cookie = http
        .get(&web.url("counter.php"), None)
        .expect("first")
        .set_cookie
        .expect("cookie");
    // Held past the TTL first, so the lock has been renewed when its worker dies.
    let (taken, killed_at) = kill_a_worker_holding_the_session(&web, &http, &cookie, || {
        std::thread::sleep(Duration::from_secs(6));
    });
    let reply = http
        .get(&web.url("counter.php"), Some(&cookie))
        .expect("next request");
    let after = killed_at.elapsed();
    println!(
        "redis: a worker holding its session for {:?} (renewed) was SIGKILLed; the next request got the session {after:?} after the kill",
        killed_at - taken
    );
    assert_eq!((reply.status, reply.body.trim()), (200, "2"), "{reply:?}");
    // A lock that lasted max_execution_time (30 s) would have outlasted this request's
    // fleet.lock_wait_timeout (10 s): it would have given up with a warning, not counted 2.
}
