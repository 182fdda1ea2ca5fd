//! A request stopped by `max_execution_time` still saves its session, and the next request
//! gets it without waiting: Redis and MariaDB.

use std::time::{Duration, Instant};

use fleet_harness::Http;

use crate::backend::Backend;
use crate::common::fleet_stack;

matrix!(a_request_stopped_by_max_execution_time_saves_its_session => stopped_request_saves:
    redis, mysql_advisory);

/// `spin.php` changes the session and spins until `max_execution_time=1` stops it; PHP
/// writes the session at shutdown, and the next request sees the change without waiting.
fn stopped_request_saves(backend: Backend) {
    let web = fleet_stack(&backend.save_path(), 2, &[("max_execution_time", "1")]);
    let http = Http::new(Duration::from_secs(30));
    let cookie = http
        .get(&web.url("counter.php"), None)
        .expect("first")
        .set_cookie
        .expect("cookie");
    let spun = http.get(&web.url("spin.php"), Some(&cookie)).expect("spin");
    let started = Instant::now();
    let next = http
        .get(&web.url("counter.php"), Some(&cookie))
        .expect("next request");
    println!(
        "{}: after a request stopped by max_execution_time (status {}), the next one took {:?}",
        backend.name(),
        spun.status,
        started.elapsed()
    );
    assert_eq!(
        (next.status, next.body.trim()),
        (200, "3"),
        "the stopped request's increment was saved: {next:?}"
    );
    let log = web.php_log();
    assert!(
        log.contains("Maximum execution time of 1 second exceeded"),
        "{log}"
    );
    assert!(!log.contains("Failed to write session data"), "{log}");
    assert!(!log.contains("Fleet:"), "{log}");
}
