//! End to end through failovers: two PHP-FPM app servers behind nginx, one visitor whose
//! requests keep coming, and the session store failing over underneath: a managed endpoint
//! name moved from a demoted primary (Redis and MariaDB), and Redis Sentinel promoting a
//! replica after the master is SIGKILLed. Outages are printed for the record, never
//! asserted; what is asserted is that the visitor is served again with their session.

use std::time::{Duration, Instant};

use fleet_harness::mariadb_server::{DATABASE, PASSWORD, USER};
use fleet_harness::paths::free_port;
use fleet_harness::{HostName, Http, MariaDbServer, RedisServer, Sentinel, WebStack};

/// What the visitor saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    /// When the request was sent: one in flight at a switch may still complete on the old
    /// primary, so it counts as before.
    at: Instant,
    status: u16,
    body: String,
}

impl Seen {
    /// The counter of an acknowledged (saved) increment.
    fn counter(&self) -> Option<u64> {
        (self.status == 200)
            .then(|| self.body.trim().parse().ok())
            .flatten()
    }
}

/// One visitor of `commit.php`, which answers 200 only once the session is saved.
struct Visitor {
    http: Http,
    url: String,
    cookie: String,
    seen: Vec<Seen>,
}

impl Visitor {
    fn arrive(web: &WebStack) -> Visitor {
        let http = Http::new(Duration::from_secs(30));
        let url = web.url("commit.php");
        let first = http.get(&url, None).expect("first request");
        assert_eq!((first.status, first.body.trim()), (200, "1"), "{first:?}");
        let cookie = first.set_cookie.expect("a session cookie");
        Visitor {
            http,
            url,
            cookie,
            seen: Vec::new(),
        }
    }

    fn visit(&mut self) -> Seen {
        let sent = Instant::now();
        let reply = self
            .http
            .get(&self.url, Some(&self.cookie))
            .expect("nginx answers");
        let seen = Seen {
            at: sent,
            status: reply.status,
            body: reply.body,
        };
        self.seen.push(seen.clone());
        seen
    }

    /// Visits until `ok` acknowledged increments in a row after `since`, or `limit` passes.
    fn visit_until_served(&mut self, since: Instant, ok: usize, limit: Duration) {
        let mut in_a_row = 0;
        while in_a_row < ok && since.elapsed() < limit {
            match self.visit().counter() {
                Some(_) => in_a_row += 1,
                None => in_a_row = 0,
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn last_acknowledged_before(&self, t: Instant) -> Option<&Seen> {
        self.seen
            .iter()
            .rfind(|s| s.at <= t && s.counter().is_some())
    }

    fn first_acknowledged_after(&self, t: Instant) -> Option<&Seen> {
        self.seen.iter().find(|s| s.at > t && s.counter().is_some())
    }

    /// Every acknowledged counter is higher than the one before: no acknowledged increment
    /// was lost or seen twice.
    fn assert_counters_only_grow(&self) {
        let counters: Vec<u64> = self.seen.iter().filter_map(Seen::counter).collect();
        for pair in counters.windows(2) {
            assert!(
                pair[1] > pair[0],
                "an acknowledged increment was lost: {counters:?}"
            );
        }
    }
}

/// A primary on 127.0.0.2 and a replica on 127.0.0.3 on one port, and one name for the
/// pair: a managed endpoint.
enum ManagedPair {
    Redis(RedisServer, RedisServer),
    MySql(MariaDbServer, MariaDbServer),
}

impl ManagedPair {
    fn redis() -> ManagedPair {
        let port = free_port();
        let primary = RedisServer::start_at("127.0.0.2", port, &[]);
        let p = port.to_string();
        let replica = RedisServer::start_at("127.0.0.3", port, &["--replicaof", "127.0.0.2", &p]);
        replica.wait_for_replication();
        ManagedPair::Redis(primary, replica)
    }

    fn mysql() -> ManagedPair {
        let port = free_port();
        let primary = MariaDbServer::start_at("127.0.0.2", Some(port), 1);
        let replica = MariaDbServer::start_at("127.0.0.3", Some(port), 2);
        replica.replicate_from(&primary);
        ManagedPair::MySql(primary, replica)
    }

    fn save_path(&self, name: &str) -> String {
        match self {
            ManagedPair::Redis(p, _) => format!("redis://{name}:{}", p.port),
            // The password from the environment, as the README advises: PHP itself prints
            // session.save_path in its "Failed to write session data" warning.
            ManagedPair::MySql(p, _) => {
                std::env::set_var("FLEET_E2E_MYSQL_PASSWORD", PASSWORD);
                format!(
                    "mysql://{USER}@{name}:{}/{DATABASE}?password_env=FLEET_E2E_MYSQL_PASSWORD",
                    p.port
                )
            }
        }
    }

    /// Waits until the replica has everything the primary acknowledged: for Redis, session
    /// `sid` with counter `counter`.
    fn wait_replicated(&self, sid: &str, counter: u64) {
        let start = Instant::now();
        match self {
            ManagedPair::Redis(_, replica) => {
                let key = format!("PHPREDIS_SESSION:{sid}");
                while replica.command(&["GET", &key]) != format!("n|i:{counter};") {
                    assert!(
                        start.elapsed() < Duration::from_secs(10),
                        "replication lags"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            ManagedPair::MySql(primary, replica) => replica.wait_caught_up(primary),
        }
    }

    /// The switch as the managed services make it: the old primary stops taking writes
    /// (demoted to a replica, or read-only), the replica is promoted.
    fn switch(&self) {
        match self {
            ManagedPair::Redis(primary, replica) => {
                let p = primary.port.to_string();
                assert_eq!(replica.command(&["REPLICAOF", "NO", "ONE"]), "+OK");
                assert_eq!(primary.command(&["REPLICAOF", "127.0.0.3", &p]), "+OK");
            }
            ManagedPair::MySql(primary, replica) => {
                primary.admin("SET GLOBAL read_only = 1");
                replica.promote();
            }
        }
    }
}

fn managed_endpoint_failover(pair: ManagedPair, backend: &str) {
    let name = HostName::add(&format!("e2e{backend}"), "127.0.0.2");
    let web = WebStack::fleet(&pair.save_path(&name.name), 2, &[]);
    let mut visitor = Visitor::arrive(&web);
    for _ in 0..10 {
        assert!(visitor.visit().counter().is_some());
    }
    let last = visitor.seen.last().and_then(Seen::counter).unwrap_or(0);
    let sid = visitor
        .cookie
        .split_once('=')
        .map(|c| c.1)
        .unwrap_or_default();
    pair.wait_replicated(sid, last);

    pair.switch();
    let switched_at = Instant::now();
    // Until the name moves, workers reach the old primary: refused, with a warning.
    let refused = visitor.visit();
    assert_eq!(refused.status, 503, "{refused:?}");
    name.point_to("127.0.0.3");
    let moved_at = Instant::now();
    visitor.visit_until_served(moved_at, 10, Duration::from_secs(20));

    let before = visitor.last_acknowledged_before(switched_at).cloned();
    let after = visitor.first_acknowledged_after(moved_at).cloned();
    let (Some(before), Some(after)) = (before, after) else {
        panic!(
            "{backend}: never served again after the name moved: {:?}",
            visitor.seen
        );
    };
    println!(
        "{backend} managed endpoint: served again {:?} after the name moved ({:?} from the last success before the switch)",
        after.at - moved_at,
        after.at - before.at
    );
    assert_eq!(
        after.counter(),
        before.counter().map(|n| n + 1),
        "{backend}: the visitor's session did not survive the failover"
    );
    visitor.assert_counters_only_grow();
    let log = web.php_log();
    assert!(
        log.contains("is not (or no longer) the primary") && log.contains(&name.name),
        "{backend}: the refused request's warning names the endpoint: {log}"
    );
    assert!(!log.contains(PASSWORD), "{log}");
    assert_eq!(web.a_worker_died(), None, "{backend}: a worker crashed");
}

#[test]
fn redis_managed_endpoint_failover_moves_workers_with_the_name() {
    managed_endpoint_failover(ManagedPair::redis(), "redis");
}

#[test]
fn mysql_managed_endpoint_failover_moves_workers_with_the_name() {
    managed_endpoint_failover(ManagedPair::mysql(), "mysql");
}

#[test]
fn sentinel_failover_under_load_loses_no_acknowledged_increment() {
    let mut master = RedisServer::start();
    let replica = RedisServer::start_replica_of(&master);
    replica.wait_for_replication();
    let sentinels: Vec<Sentinel> = (0..3)
        .map(|_| Sentinel::start(&master, "fleetmaster", 2, 1000, &[]))
        .collect();
    for s in &sentinels {
        s.wait_until_it_knows("fleetmaster", 3, 1);
    }
    let hosts: Vec<String> = sentinels
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port))
        .collect();
    // After the failover the new master has no replica until the old one comes back, so
    // each write waits out wait_timeout and warns: a short one keeps that bearable.
    let save_path = format!(
        "redis+sentinel://{}/fleetmaster?wait_replicas=1&wait_timeout=0.2",
        hosts.join(",")
    );
    // A lock that a request held on the master when it died was replicated with its TTL
    // and holds the session on the promoted replica until it ends: a short TTL bounds that.
    let web = WebStack::fleet(&save_path, 2, &[("fleet.lock_ttl", "3")]);
    let mut visitor = Visitor::arrive(&web);
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(800) {
        visitor.visit();
        std::thread::sleep(Duration::from_millis(5));
    }
    master.kill();
    let killed_at = Instant::now();
    visitor.visit_until_served(killed_at, 10, Duration::from_secs(40));

    let before = visitor.last_acknowledged_before(killed_at).cloned();
    let after = visitor.first_acknowledged_after(killed_at).cloned();
    let (Some(before), Some(after)) = (before, after) else {
        panic!(
            "never served again after the master was killed: {:?}",
            visitor.seen.last()
        );
    };
    let failed = visitor
        .seen
        .iter()
        .filter(|s| s.at > killed_at && s.counter().is_none())
        .count();
    println!(
        "sentinel failover through nginx: outage {:?} (last success before the SIGKILL to first success after), {failed} requests refused meanwhile, {} acknowledged before the kill",
        after.at - before.at,
        visitor.seen.iter().filter(|s| s.at <= killed_at && s.counter().is_some()).count()
    );
    assert!(
        after.counter() > before.counter(),
        "an acknowledged increment was lost: {before:?} then {after:?}"
    );
    visitor.assert_counters_only_grow();
    assert_eq!(web.a_worker_died(), None, "a worker crashed");
    let log = web.php_log();
    assert!(!log.contains("Segmentation"), "{log}");
}
