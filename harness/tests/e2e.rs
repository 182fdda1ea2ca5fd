//! End to end: two PHP-FPM app servers behind an nginx round-robin balancer, the built
//! extension, and a real Redis or MariaDB. Timings are printed for the record, never asserted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleet_harness::{Blackhole, Http, MariaDbServer, RedisCluster, RedisServer, WebStack};

/// A real backend server and how Fleet is pointed at it.
enum Backend {
    Redis(RedisServer),
    Cluster(RedisCluster),
    MySql(MariaDbServer, &'static str),
}

impl Backend {
    fn redis() -> Backend {
        Backend::Redis(RedisServer::start())
    }

    /// A Redis Cluster of three masters.
    fn cluster() -> Backend {
        Backend::Cluster(RedisCluster::start(3, 0))
    }

    /// MariaDB with `lock=<mode>`.
    fn mysql(mode: &'static str) -> Backend {
        Backend::MySql(MariaDbServer::start(), mode)
    }

    fn save_path(&self) -> String {
        match self {
            Backend::Redis(r) => r.url(),
            Backend::Cluster(c) => c.save_path(""),
            Backend::MySql(db, mode) => db.save_path(&format!("lock={mode}")),
        }
    }

    /// The stored data of session `sid`, read directly from the server.
    fn stored(&self, sid: &str) -> String {
        match self {
            Backend::Redis(r) => r.command(&["GET", &format!("PHPREDIS_SESSION:{sid}")]),
            Backend::Cluster(c) => c.get(&format!("PHPREDIS_SESSION:{{{sid}}}")),
            Backend::MySql(db, _) => db.query(&format!(
                "SELECT data FROM fleet_sessions WHERE id = '{sid}'"
            )),
        }
    }

    /// Seconds until session `sid` expires (Redis TTL, or MySQL `expires` minus now).
    fn ttl(&self, sid: &str) -> i64 {
        let reply = match self {
            Backend::Redis(r) => r.command(&["TTL", &format!("PHPREDIS_SESSION:{sid}")]),
            Backend::Cluster(c) => c.nodes[c.master_of(&format!("PHPREDIS_SESSION:{{{sid}}}"))]
                .command(&["TTL", &format!("PHPREDIS_SESSION:{{{sid}}}")]),
            Backend::MySql(db, _) => db.query(&format!(
                "SELECT expires - UNIX_TIMESTAMP() FROM fleet_sessions WHERE id = '{sid}'"
            )),
        };
        reply.trim_start_matches(':').parse().unwrap_or(-2)
    }

    /// The token of session `sid`'s Redis lock (the part of its value before the holder
    /// record, `<token>|<since>|<holder>`), or an empty reply.
    fn lock_token(&self, sid: &str) -> String {
        let value = match self {
            Backend::Redis(r) => r.command(&["GET", &format!("PHPREDIS_SESSION:{sid}_LOCK")]),
            Backend::Cluster(c) => c.get(&format!("PHPREDIS_SESSION:{{{sid}}}_LOCK")),
            Backend::MySql(..) => unreachable!("MySQL locks are not keys"),
        };
        value.split('|').next().unwrap_or_default().to_owned()
    }

    /// Connections one worker opens: one, except on a cluster, where it asks a seed node
    /// for the slot map and then connects to the master that owns the session.
    fn connections_per_worker(&self) -> u64 {
        match self {
            Backend::Cluster(_) => 2,
            _ => 1,
        }
    }

    /// Connections the server has accepted so far.
    fn connections(&self) -> u64 {
        match self {
            Backend::Redis(r) => r.info_field("total_connections_received"),
            // Each node's count includes the one connection `info_field` opens there.
            Backend::Cluster(c) => {
                c.nodes
                    .iter()
                    .map(|n| n.info_field("total_connections_received") - 1)
                    .sum::<u64>()
                    + 1
            }
            Backend::MySql(db, _) => db
                .admin("SHOW GLOBAL STATUS LIKE 'Connections'")
                .split('\t')
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        }
    }

    fn name(&self) -> String {
        match self {
            Backend::Redis(_) => "redis".to_owned(),
            Backend::Cluster(_) => "redis cluster".to_owned(),
            Backend::MySql(_, mode) => format!("mysql lock={mode}"),
        }
    }
}

fn session_id(cookie: &str) -> String {
    cookie
        .split_once('=')
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

fn fleet_stack(save_path: &str, workers: usize, extra: &[(&str, &str)]) -> WebStack {
    WebStack::fleet(save_path, workers, extra)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// What `hammer` saw: each reply's counter, each request's latency (sorted), and the wall time.
struct Load {
    counters: Vec<usize>,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

/// Sends `requests` GETs of `url` with `cookie` from `clients` threads at once; every reply
/// must be a 200 carrying a counter.
fn hammer(http: &Http, url: &str, cookie: &str, requests: usize, clients: usize) -> Load {
    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (http, url, cookie) = (http.clone(), url.to_owned(), cookie.to_owned());
            let (next, results) = (next.clone(), results.clone());
            std::thread::spawn(move || {
                while next.fetch_add(1, Ordering::SeqCst) < requests {
                    let t = Instant::now();
                    let reply = http.get(&url, Some(&cookie)).expect("request");
                    let latency = t.elapsed();
                    assert_eq!(reply.status, 200, "{reply:?}");
                    let counter = reply.body.trim().parse::<usize>().expect("a counter");
                    results.lock().unwrap().push((counter, latency));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let elapsed = start.elapsed();
    let results = results.lock().unwrap().clone();
    let counters = results.iter().map(|(c, _)| *c).collect();
    let mut latencies: Vec<Duration> = results.iter().map(|(_, l)| *l).collect();
    latencies.sort_unstable();
    Load {
        counters,
        latencies,
        elapsed,
    }
}

#[test]
fn cookie_set_by_one_app_server_is_honoured_by_the_other() {
    cookie_honoured_across_app_servers(Backend::redis());
}

#[test]
fn cluster_cookie_set_by_one_app_server_is_honoured_by_the_other() {
    cookie_honoured_across_app_servers(Backend::cluster());
}

#[test]
fn mysql_cookie_set_by_one_app_server_is_honoured_by_the_other() {
    cookie_honoured_across_app_servers(Backend::mysql("advisory"));
}

fn cookie_honoured_across_app_servers(backend: Backend) {
    let web = fleet_stack(&backend.save_path(), 2, &[]);
    let http = Http::default();

    let first = http
        .get(&web.url("counter.php"), None)
        .expect("first request");
    assert_eq!((first.status, first.body.trim()), (200, "1"), "{first:?}");
    let cookie = first
        .set_cookie
        .clone()
        .expect("the first reply sets a session cookie");
    let mut workers = vec![first.worker.clone()];
    for expected in 2..=10 {
        let reply = http
            .get(&web.url("counter.php"), Some(&cookie))
            .expect("request");
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(
            reply.body.trim(),
            expected.to_string(),
            "request {expected} on {}",
            reply.worker
        );
        assert_eq!(
            reply.set_cookie, None,
            "request {expected} was given a new session"
        );
        workers.push(reply.worker);
    }
    println!("{}: workers in order: {workers:?}", backend.name());
    for pair in workers.windows(2) {
        assert_ne!(
            pair[0], pair[1],
            "round robin should alternate app servers: {workers:?}"
        );
    }
    assert_eq!(web.php_log(), "", "PHP logged problems");
}

#[test]
fn five_hundred_concurrent_increments_of_one_session_lose_nothing() {
    five_hundred_concurrent_increments(Backend::redis());
}

#[test]
fn cluster_five_hundred_concurrent_increments_of_one_session_lose_nothing() {
    five_hundred_concurrent_increments(Backend::cluster());
}

#[test]
fn mysql_advisory_five_hundred_concurrent_increments_lose_nothing() {
    five_hundred_concurrent_increments(Backend::mysql("advisory"));
}

/// The default uses the stored procedures; this is the plain-statement path.
#[test]
fn mysql_advisory_without_procedures_five_hundred_concurrent_increments_lose_nothing() {
    five_hundred_concurrent_increments(Backend::mysql("advisory&procedures=0"));
}

#[test]
fn mysql_row_five_hundred_concurrent_increments_lose_nothing() {
    five_hundred_concurrent_increments(Backend::mysql("row"));
}

fn five_hundred_concurrent_increments(backend: Backend) {
    const REQUESTS: usize = 500;
    const CLIENTS: usize = 32;
    // PHP's gc (1 request in 100 by default) runs on a short-lived connection of its own on
    // MySQL while a session is held, which would blur the count of request connections
    // below; gc under this load is core/tests/mysql_gc_in_request.rs's.
    let web = fleet_stack(&backend.save_path(), 8, &[("session.gc_probability", "0")]);
    let http = Http::default();
    let first = http
        .get(&web.url("counter.php"), None)
        .expect("first request");
    let cookie = first.set_cookie.clone().expect("session cookie");
    let sid = session_id(&cookie);
    if let Backend::Redis(redis) = &backend {
        redis.command(&["CONFIG", "RESETSTAT"]);
    }
    let connections_before = backend.connections();

    let load = hammer(&http, &web.url("counter.php"), &cookie, REQUESTS, CLIENTS);

    // Each FPM worker connects at most once and keeps its connection (+1: the query that
    // counts them).
    let new_connections = backend.connections() - connections_before;
    let workers = 2 * 8;
    println!(
        "{}: new connections during {REQUESTS} requests: {new_connections} (for {workers} workers)",
        backend.name()
    );
    assert!(
        new_connections <= workers as u64 * backend.connections_per_worker() + 1,
        "connections are not reused: {new_connections}"
    );
    let stored = backend.stored(&sid);
    let final_counter: usize = stored
        .trim_start_matches("n|i:")
        .trim_end_matches(';')
        .parse()
        .unwrap_or(0);
    assert_eq!(
        final_counter,
        REQUESTS + 1,
        "{} of {REQUESTS} increments were lost",
        (REQUESTS + 1).saturating_sub(final_counter)
    );
    let mut seen = load.counters.clone();
    seen.sort_unstable();
    seen.dedup();
    // The first request made it 1; each of the 500 must have seen a distinct next value.
    assert_eq!(
        seen.len(),
        REQUESTS,
        "two requests saw the same counter value"
    );

    let lat = &load.latencies;
    println!(
        "{}: {REQUESTS} requests, {CLIENTS} concurrent, one session: final counter {} (+1 initial), {:.0} req/s, p50 {:?}, p99 {:?}, max {:?}",
        backend.name(),
        seen.len(),
        REQUESTS as f64 / load.elapsed.as_secs_f64(),
        percentile(lat, 0.5),
        percentile(lat, 0.99),
        lat[lat.len() - 1]
    );
    if let Backend::Redis(redis) = &backend {
        println!("redis commands during the run: {:?}", redis.command_calls());
    }
    assert_eq!(web.php_log(), "", "PHP logged problems");
}

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

#[test]
fn a_killed_workers_lock_expires_by_its_ttl() {
    killed_workers_lock_expires(Backend::redis());
}

#[test]
fn cluster_a_killed_workers_lock_expires_by_its_ttl() {
    killed_workers_lock_expires(Backend::cluster());
}

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
fn a_hot_session_is_served_in_turn_without_long_tails() {
    hot_session(Backend::redis());
}

#[test]
fn cluster_a_hot_session_is_served_in_turn_without_long_tails() {
    hot_session(Backend::cluster());
}

#[test]
fn mysql_a_hot_session_is_served_in_turn_without_long_tails() {
    hot_session(Backend::mysql("advisory"));
}

fn hot_session(backend: Backend) {
    // 16 clients on one session whose page holds it 20 ms: the serial limit is 50 req/s,
    // and with fair turns each request waits about 15 others' turns, not seconds.
    const REQUESTS: usize = 160;
    const CLIENTS: usize = 16;
    let web = fleet_stack(&backend.save_path(), 8, &[]);
    let http = Http::default();
    let cookie = http
        .get(&web.url("counter.php"), None)
        .expect("first")
        .set_cookie
        .expect("cookie");
    let load = hammer(
        &http,
        &web.url("counter.php?hold_ms=20"),
        &cookie,
        REQUESTS,
        CLIENTS,
    );
    let (lat, rps) = (
        &load.latencies,
        REQUESTS as f64 / load.elapsed.as_secs_f64(),
    );
    println!(
        "{}: hot session, {CLIENTS} clients, 20 ms hold: {:.1} req/s ({:.0}% of the 50 req/s serial limit), p50 {:?}, p99 {:?}, max {:?}",
        backend.name(),
        rps,
        rps / 50.0 * 100.0,
        percentile(lat, 0.5),
        percentile(lat, 0.99),
        lat[lat.len() - 1]
    );
    assert_eq!(
        backend.stored(&session_id(&cookie)),
        format!("n|i:{};", REQUESTS + 1)
    );
    assert_eq!(web.php_log(), "", "PHP logged problems");
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

#[test]
fn a_request_holding_its_session_longer_than_the_lock_ttl_keeps_its_lock() {
    long_hold_keeps_the_lock(Backend::redis());
}

#[test]
fn cluster_a_request_holding_its_session_longer_than_the_lock_ttl_keeps_its_lock() {
    long_hold_keeps_the_lock(Backend::cluster());
}

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

#[test]
fn a_request_stopped_by_max_execution_time_saves_its_session() {
    stopped_request_saves(Backend::redis());
}

#[test]
fn mysql_a_request_stopped_by_max_execution_time_saves_its_session() {
    stopped_request_saves(Backend::mysql("advisory"));
}

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

#[test]
fn mysql_expired_sessions_are_deleted_with_debians_gc_probability_0() {
    // Debian's and Ubuntu's php.ini: PHP never calls the handler's gc.
    let db = MariaDbServer::start();
    let web = fleet_stack(
        &db.save_path("gc_interval=1"),
        4,
        &[
            ("session.gc_probability", "0"),
            ("session.gc_maxlifetime", "1"),
        ],
    );
    let http = Http::default();
    let mut first_ids = Vec::new();
    for _ in 0..300 {
        let reply = http.get(&web.url("counter.php"), None).expect("request");
        first_ids.push(session_id(&reply.set_cookie.expect("a new session")));
    }
    let in_list = |ids: &[String]| {
        let quoted: Vec<String> = ids.iter().map(|i| format!("'{i}'")).collect();
        db.query(&format!(
            "SELECT COUNT(*) FROM fleet_sessions WHERE id IN ({})",
            quoted.join(",")
        ))
    };
    // Not all 300 need still be there: with a lifetime of 1 s, gc_interval's gc may already
    // have deleted the first while the last were made (seen on a loaded machine: 294). What
    // this test shows is that none is left after the traffic below, where without
    // gc_probability nothing would ever delete them.
    let stored = in_list(&first_ids);
    assert_ne!(stored, "0", "the sessions were stored");
    std::thread::sleep(Duration::from_secs(2));
    // A few seconds of traffic on another session.
    let cookie = http
        .get(&web.url("counter.php"), None)
        .expect("request")
        .set_cookie
        .expect("cookie");
    let traffic = Instant::now();
    while traffic.elapsed() < Duration::from_secs(4) {
        http.get(&web.url("counter.php"), Some(&cookie))
            .expect("request");
    }
    let runs = db.query("SELECT data FROM fleet_sessions WHERE id = 'fleet:gc'");
    println!(
        "gc_probability=0, gc_interval=1: {stored} of 300 sessions stored when the last was made, {} left after {:?} of traffic; {runs} gc runs by 8 workers",
        in_list(&first_ids),
        traffic.elapsed()
    );
    assert_eq!(
        in_list(&first_ids),
        "0",
        "every expired session was deleted"
    );
    let runs: u64 = runs.parse().unwrap_or(0);
    assert!(
        (1..=6).contains(&runs),
        "one run per interval across all 8 workers, not one per worker: {runs}"
    );
    assert_eq!(web.php_log(), "", "PHP logged problems");
}

#[test]
fn one_hit_sessions_and_crawlers_get_short_lifetimes() {
    short_lifetimes(Backend::redis());
}

#[test]
fn mysql_one_hit_sessions_and_crawlers_get_short_lifetimes() {
    short_lifetimes(Backend::mysql(
        "advisory&first_lifetime=60&bot_lifetime=120&bot_first_lifetime=30",
    ));
}

const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// `first_lifetime=60`, `bot_lifetime=120`, `bot_first_lifetime=30`, and the normal
/// `session.gc_maxlifetime=1440`, through FPM behind the balancer.
fn short_lifetimes(backend: Backend) {
    let save_path = match &backend {
        Backend::MySql(..) => backend.save_path(),
        _ => format!(
            "{}?first_lifetime=60&bot_lifetime=120&bot_first_lifetime=30",
            backend.save_path()
        ),
    };
    let web = fleet_stack(&save_path, 2, &[("session.gc_maxlifetime", "1440")]);
    let http = Http::default();
    let ttl = |cookie: &str| backend.ttl(&session_id(cookie));

    let first = http
        .get(&web.url("counter.php"), None)
        .expect("first visit");
    let visitor = first.set_cookie.expect("cookie");
    let one_hit = ttl(&visitor);
    let second = http
        .get(&web.url("counter.php"), Some(&visitor))
        .expect("second visit");
    assert_eq!(second.body.trim(), "2");
    let returning = ttl(&visitor);

    let bot_first = http
        .get_as(&web.url("counter.php"), None, Some(GOOGLEBOT))
        .expect("crawler");
    let bot = bot_first.set_cookie.expect("cookie");
    let bot_new = ttl(&bot);
    http.get_as(&web.url("counter.php"), Some(&bot), Some(GOOGLEBOT))
        .expect("crawler again");
    let bot_again = ttl(&bot);
    println!(
        "{}: lifetimes: new visitor {one_hit} s, returning {returning} s, new crawler {bot_new} s, returning crawler {bot_again} s",
        backend.name()
    );
    assert!((55..=60).contains(&one_hit), "first_lifetime: {one_hit}");
    assert!(
        (1435..=1440).contains(&returning),
        "normal lifetime: {returning}"
    );
    assert!(
        (25..=30).contains(&bot_new),
        "bot_first_lifetime: {bot_new}"
    );
    assert!(
        (115..=120).contains(&bot_again),
        "bot_lifetime: {bot_again}"
    );
    assert_eq!(web.php_log(), "", "PHP logged problems");
}

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

#[test]
fn php_leases_do_a_once_action_once_per_period_across_app_servers() {
    php_leases_once_per_period(Backend::redis());
}

#[test]
fn mysql_php_leases_do_a_once_action_once_per_period_across_app_servers() {
    php_leases_once_per_period(Backend::mysql("advisory"));
}

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

#[test]
fn a_lock_wait_names_the_holder_in_timeouts_and_slow_wait_notices() {
    lock_holder_named(Backend::redis());
}

#[test]
fn mysql_a_lock_wait_names_the_holder_in_timeouts_and_slow_wait_notices() {
    lock_holder_named(Backend::mysql("advisory"));
}

/// Starts hold_for.php on the visitor's session for `ms` and returns once it holds the
/// session, with the thread that returns the holder's reply.
fn hold_session(
    stack: &WebStack,
    http: &Http,
    cookie: &str,
    ms: u64,
    tag: &str,
) -> std::thread::JoinHandle<String> {
    let pid_file = stack.dir().join(format!("holder-{tag}"));
    let url = stack.url(&format!(
        "/hold_for.php?ms={ms}&pid_file={}",
        pid_file.display()
    ));
    let (http, cookie) = (http.clone(), cookie.to_owned());
    let holder = std::thread::spawn(move || http.get(&url, Some(&cookie)).expect("hold").body);
    let t = Instant::now();
    while !pid_file.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the holder never got the session"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    holder
}

fn lock_holder_named(backend: Backend) {
    let stack = fleet_stack(&backend.save_path(), 4, &[]);
    let http = Http::new(Duration::from_secs(30));
    let first = http.get(&stack.url("/counter.php"), None).expect("first");
    let cookie = first.set_cookie.clone().expect("a session cookie");
    let mysql = matches!(backend, Backend::MySql(..));

    // A wait that times out names the holder: its server, PID and page (Redis), or its
    // MySQL connection.
    let holder = hold_session(&stack, &http, &cookie, 1500, "a");
    let waited = http
        .get(&stack.url("/wait.php?timeout=0.3"), Some(&cookie))
        .expect("waiter");
    let holder_pid = holder.join().expect("holder").trim().to_owned();
    println!(
        "{}: lock wait timeout: {}",
        backend.name(),
        waited.body.trim()
    );
    assert!(waited.body.starts_with("no session"), "{}", waited.body);
    if mysql {
        assert!(
            waited.body.contains("held by MySQL connection"),
            "{}",
            waited.body
        );
    } else {
        assert!(
            waited
                .body
                .contains(&format!("pid {holder_pid} (GET /hold_for.php)")),
            "names the holder's PID and page: {}",
            waited.body
        );
        assert!(waited.body.contains(" held for "), "{}", waited.body);
    }

    // fleet.slow_lock_wait: a notice above the threshold, naming the holder …
    let holder = hold_session(&stack, &http, &cookie, 700, "b");
    let slow = http
        .get(&stack.url("/wait.php?timeout=10&slow=0.2"), Some(&cookie))
        .expect("slow waiter");
    let holder_pid = holder.join().expect("holder").trim().to_owned();
    println!("{}: slow lock wait: {}", backend.name(), slow.body.trim());
    assert!(slow.body.starts_with("session"), "{}", slow.body);
    assert!(
        slow.body
            .contains("notice: session_start(): Fleet: session")
            && slow
                .body
                .contains("for its lock (over fleet.slow_lock_wait = 0.20 s)"),
        "{}",
        slow.body
    );
    if !mysql {
        assert!(
            slow.body
                .contains(&format!("pid {holder_pid} (GET /hold_for.php)")),
            "{}",
            slow.body
        );
    }
    // … and none below it: a short wait, or none at all.
    let holder = hold_session(&stack, &http, &cookie, 100, "c");
    let short = http
        .get(&stack.url("/wait.php?timeout=10&slow=5"), Some(&cookie))
        .expect("short waiter");
    holder.join().expect("holder");
    assert_eq!(
        short.body.trim(),
        "session",
        "no notice below the threshold"
    );
    let free = http
        .get(&stack.url("/wait.php?timeout=10&slow=0.2"), Some(&cookie))
        .expect("free");
    assert_eq!(free.body.trim(), "session", "no notice without a wait");
    assert!(stack.a_worker_died().is_none());
}

#[test]
fn metrics_from_any_worker_are_the_totals_of_all_workers_of_its_server() {
    shared_metrics(Backend::redis());
}

#[test]
fn mysql_metrics_from_any_worker_are_the_totals_of_all_workers_of_its_server() {
    shared_metrics(Backend::mysql("advisory"));
}

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
