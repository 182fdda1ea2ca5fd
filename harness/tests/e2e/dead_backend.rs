//! A dead Redis (nothing on the port) and a hung one (accepts, never answers): the request
//! gets a warning naming the setting, bounded by the timeouts, and the worker lives on.

use std::time::{Duration, Instant};

use fleet_harness::{Blackhole, Http};

use crate::common::fleet_stack;

#[test]
fn dead_backend_gives_a_warning_and_the_worker_lives_on() {
    let port = fleet_harness::paths::free_port();
    let web = fleet_stack(&format!("redis://127.0.0.1:{port}"), 1, &[]);
    let http = Http::new(Duration::from_secs(20));
    for _ in 0..4 {
        let reply = http
            .get(&web.url("counter.php"), None)
            .expect("the worker answers");
        assert_eq!((reply.status, reply.body.trim()), (503, "no session"));
    }
    let log = web.php_log();
    assert!(
        log.contains(&format!(
            "Fleet: cannot connect to redis://127.0.0.1:{port}"
        )),
        "{log}"
    );
    assert!(
        log.contains("fleet.connect_timeout"),
        "the warning names the setting: {log}"
    );
    assert!(
        !log.contains("Segmentation") && !log.contains("exited on signal"),
        "{log}"
    );
    // Each pool's one worker survived all four requests.
    let fpm_logs: String = ["app-a", "app-b"]
        .iter()
        .map(|n| {
            std::fs::read_to_string(web.dir().join(format!("fpm-{n}.log"))).unwrap_or_default()
        })
        .collect();
    assert!(!fpm_logs.contains("exited"), "a worker died: {fpm_logs}");
}

#[test]
fn hung_backend_is_bounded_by_the_read_timeout() {
    let hole = Blackhole::start();
    let web = fleet_stack(
        &format!("redis://127.0.0.1:{}", hole.port),
        1,
        &[("fleet.read_timeout", "0.5")],
    );
    // A client that gives up long before phpredis's 30 s+ hang would end.
    let http = Http::new(Duration::from_secs(10));
    let start = Instant::now();
    let reply = http
        .get(&web.url("counter.php"), None)
        .expect("the worker answers despite a hung Redis");
    println!("hung backend answered in {:?}", start.elapsed());
    assert_eq!((reply.status, reply.body.trim()), (503, "no session"));
    let log = web.php_log();
    assert!(
        log.contains("did not answer within") && log.contains("fleet.read_timeout"),
        "{log}"
    );
}
