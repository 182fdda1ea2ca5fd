//! The Redis store through failovers, against real servers: a managed endpoint whose DNS
//! name moves from a demoted primary to the promoted replica, a planned switch that raises
//! no error (`max_connection_age`), Redis Sentinel with a SIGKILLed master, and
//! `wait_replicas`. Outage times are printed for the record, never asserted.

mod common;

use common::{id, increment, open_redis};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleet_core::{ErrorKind, LeaseTerms, LockPolicy, SessionStore};
use fleet_harness::paths::free_port;
use fleet_harness::{HostName, RedisServer, Sentinel};

const LOCKED: LockPolicy = LockPolicy {
    lease: Some(LeaseTerms {
        ttl: Duration::from_secs(10),
        wait_timeout: Duration::from_secs(5),
        renew_for: None,
    }),
};

/// A primary on 127.0.0.2 and its replica on 127.0.0.3, on the same port, and one name for
/// the pair, pointing at the primary: a managed Redis endpoint.
struct ManagedPair {
    primary: RedisServer,
    replica: RedisServer,
    name: HostName,
    port: u16,
}

impl ManagedPair {
    fn start(tag: &str) -> ManagedPair {
        let port = free_port();
        let primary = RedisServer::start_at("127.0.0.2", port, &[]);
        let p = port.to_string();
        let replica = RedisServer::start_at("127.0.0.3", port, &["--replicaof", "127.0.0.2", &p]);
        replica.wait_for_replication();
        let name = HostName::add(tag, "127.0.0.2");
        ManagedPair {
            primary,
            replica,
            name,
            port,
        }
    }

    fn save_path(&self, options: &str) -> String {
        format!("redis://{}:{}{options}", self.name.name, self.port)
    }

    /// Waits until the replica holds session `sid` with `value`: a write acknowledged by the
    /// primary reaches the replica a moment later.
    fn wait_replicated(&self, sid: &str, value: &str) {
        let key = format!("PHPREDIS_SESSION:{sid}");
        let start = Instant::now();
        while self.replica.command(&["GET", &key]) != value {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "replication lags"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What the managed services do on failover: promote the replica, demote the old
    /// primary to a replica of it (its clients stay connected and are refused writes).
    fn switch_roles(&self) {
        let p = self.port.to_string();
        assert_eq!(self.replica.command(&["REPLICAOF", "NO", "ONE"]), "+OK");
        assert_eq!(self.primary.command(&["REPLICAOF", "127.0.0.3", &p]), "+OK");
    }
}

#[test]
fn a_demoted_primary_is_left_for_the_node_its_name_moves_to() {
    let pair = ManagedPair::start("dns");
    let mut store = open_redis(&pair.save_path(""));
    let sid = id("dnsfailover0001");
    assert_eq!(increment(&mut store, &sid, LOCKED).unwrap(), 1);
    assert_eq!(increment(&mut store, &sid, LOCKED).unwrap(), 2);
    pair.wait_replicated("dnsfailover0001", "2");

    pair.switch_roles();
    // The name still points at the demoted node: its writes are refused, and the refusal
    // names the endpoint and says why, instead of "lost the connection".
    let e = increment(&mut store, &sid, LOCKED).expect_err("a demoted node refuses the lock");
    assert!(e.is_not_primary(), "{e}");
    let message = e.to_string();
    assert!(
        message.contains(&pair.name.name) && message.contains("read only replica"),
        "{message}"
    );

    // The name moves: the very next request connects to the promoted node and finds the
    // session as it was replicated.
    pair.name.point_to("127.0.0.3");
    assert_eq!(increment(&mut store, &sid, LOCKED).unwrap(), 3);
    assert_eq!(
        pair.replica
            .command(&["GET", "PHPREDIS_SESSION:dnsfailover0001"]),
        "3"
    );
}

#[test]
fn a_kept_connection_to_a_demoted_primary_is_replaced_within_the_same_request() {
    let pair = ManagedPair::start("dnsretry");
    let mut store = open_redis(&pair.save_path(""));
    let sid = id("dnsfailover0002");
    assert_eq!(increment(&mut store, &sid, LOCKED).unwrap(), 1);
    pair.wait_replicated("dnsfailover0002", "1");
    // Switch and move the name together, as a managed service does: the worker's kept
    // connection to the old node is refused once, and the step is repeated on a fresh
    // connection that resolves the name again.
    pair.switch_roles();
    pair.name.point_to("127.0.0.3");
    assert_eq!(increment(&mut store, &sid, LOCKED).unwrap(), 2);
}

#[test]
fn max_connection_age_follows_a_planned_switch_that_raises_no_error() {
    // Two independent primaries: moving the name between them makes no node refuse
    // anything, so only the age of the connection can move a worker.
    let port = free_port();
    let first = RedisServer::start_at("127.0.0.2", port, &[]);
    let second = RedisServer::start_at("127.0.0.3", port, &[]);
    let name = HostName::add("age", "127.0.0.2");
    let path = |o: &str| format!("redis://{}:{port}{o}", name.name);
    let mut aged = open_redis(&path("?max_connection_age=0.3"));
    let mut kept = open_redis(&path(""));
    let sid = id("plannedswitch01");
    for s in [&mut aged, &mut kept] {
        s.connect().unwrap();
        increment(s, &sid, LOCKED).unwrap();
    }
    name.point_to("127.0.0.3");
    std::thread::sleep(Duration::from_millis(400));
    for s in [&mut aged, &mut kept] {
        // What the extension does when a request starts.
        s.connect().unwrap();
        increment(s, &sid, LOCKED).unwrap();
    }
    assert_eq!(
        second.command(&["GET", "PHPREDIS_SESSION:plannedswitch01"]),
        "1",
        "the aged-out worker moved to the name's new address"
    );
    assert_eq!(
        first.command(&["GET", "PHPREDIS_SESSION:plannedswitch01"]),
        "3",
        "without max_connection_age a worker stays where it was"
    );
}

#[test]
fn wait_replicas_acknowledges_in_the_same_round_trip_and_warns_when_short() {
    let master = RedisServer::start();
    let replica = RedisServer::start_replica_of(&master);
    replica.wait_for_replication();
    let mut store = open_redis(&format!("{}?wait_replicas=1&wait_timeout=2", master.url()));
    let sid = id("waitreplicas001");
    increment(&mut store, &sid, LOCKED).unwrap();
    master.command(&["CONFIG", "RESETSTAT"]);
    assert_eq!(increment(&mut store, &sid, LOCKED).unwrap(), 2);
    assert_eq!(store.take_notice(), None, "one replica acknowledged");
    let calls = master.command_calls();
    let count = |name: &str| calls.iter().find(|(n, _)| n == name).map_or(0, |c| c.1);
    assert_eq!(count("wait"), 1, "{calls:?}");
    // The replica has it the moment the write returns.
    assert_eq!(
        replica.command(&["GET", "PHPREDIS_SESSION:waitreplicas001"]),
        "2"
    );
    // A script the server forgot (restart, failover) is loaded and the pipeline sent again.
    master.command(&["SCRIPT", "FLUSH"]);
    assert_eq!(increment(&mut store, &sid, LOCKED).unwrap(), 3);

    // No replica: the write is stored on the master, with a warning that says so.
    let lonely = RedisServer::start();
    let mut store = open_redis(&format!(
        "{}?wait_replicas=1&wait_timeout=0.1",
        lonely.url()
    ));
    assert_eq!(increment(&mut store, &sid, LOCKED).unwrap(), 1);
    let notice = store
        .take_notice()
        .expect("a warning about the missing acknowledgement");
    assert!(
        notice.contains("only 0 of the 1 replicas") && notice.contains("wait_replicas"),
        "{notice}"
    );
    assert_eq!(
        lonely.command(&["GET", "PHPREDIS_SESSION:waitreplicas001"]),
        "1"
    );
}

/// A master, a replica and three sentinels watching them (down after 1 s).
struct SentinelSet {
    master: RedisServer,
    replica: RedisServer,
    sentinels: Vec<Sentinel>,
}

impl SentinelSet {
    fn start(extra: &[&str]) -> SentinelSet {
        let master = RedisServer::start();
        let replica = RedisServer::start_replica_of(&master);
        replica.wait_for_replication();
        let sentinels: Vec<Sentinel> = (0..3)
            .map(|_| Sentinel::start(&master, "fleetmaster", 2, 1000, extra))
            .collect();
        if extra.is_empty() {
            // Before they can elect a leader, the sentinels must know each other (they
            // announce themselves every 2 s) and the replica.
            for s in &sentinels {
                s.wait_until_it_knows("fleetmaster", 3, 1);
            }
        }
        SentinelSet {
            master,
            replica,
            sentinels,
        }
    }

    fn hosts(&self) -> String {
        self.sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[test]
fn sentinel_finds_the_master_and_a_sigkilled_master_costs_seconds_not_updates() {
    let mut set = SentinelSet::start(&[]);
    // A sentinel that is down when the worker starts is passed over.
    let dead = free_port();
    let path = format!(
        "redis+sentinel://127.0.0.1:{dead},{}/fleetmaster?wait_replicas=1&wait_timeout=1",
        set.hosts()
    );
    let mut store = open_redis(&path);
    let sid = id("sentinelkill001");
    assert_eq!(increment(&mut store, &sid, LOCKED).unwrap(), 1);
    assert_eq!(
        set.master
            .command(&["GET", "PHPREDIS_SESSION:sentinelkill001"]),
        "1",
        "the sentinels named the master"
    );

    // A steady stream of increments; the master is SIGKILLed in the middle of it.
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (acknowledged, failures, stop) = (acknowledged.clone(), failures.clone(), stop.clone());
        let sid = sid.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                // Each request is timed by when it started: one in flight at the kill may
                // still complete on the old master.
                let started = Instant::now();
                match increment(&mut store, &sid, LOCKED) {
                    Ok(n) => acknowledged.lock().unwrap().push((started, n)),
                    Err(e) => failures.lock().unwrap().push((started, e.to_string())),
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            store
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let killed_at = Instant::now();
    set.master.kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let recovered = acknowledged
            .lock()
            .unwrap()
            .iter()
            .any(|(t, _)| *t > killed_at);
        if recovered || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let mut store = worker.join().expect("worker thread");

    let acknowledged = acknowledged.lock().unwrap().clone();
    let failures = failures.lock().unwrap().clone();
    let last_before = acknowledged.iter().rfind(|(t, _)| *t <= killed_at);
    let first_after = acknowledged.iter().find(|(t, _)| *t > killed_at);
    let (Some(last_before), Some(first_after)) = (last_before, first_after) else {
        panic!("no request succeeded after the master was killed; failures: {failures:?}");
    };
    println!(
        "sentinel failover: outage {:?} (last success before the kill to first success after), {} requests failed meanwhile, first failure: {:?}",
        first_after.0 - last_before.0,
        failures.len(),
        failures.first().map(|f| &f.1)
    );
    // Every increment PHP saw acknowledged before the kill is on the promoted replica: the
    // counter goes on from the last acknowledged value, never back. (It may skip one: a
    // write the master made and replicated as it died, whose reply never came, is
    // reported to PHP as failed but is there.)
    assert!(
        first_after.1 > last_before.1,
        "an acknowledged increment was lost in the failover: {} acknowledged before the kill, {} after",
        last_before.1,
        first_after.1
    );
    let last = increment(&mut store, &sid, LOCKED).unwrap();
    assert!(last > acknowledged.last().map_or(0, |a| a.1));
    assert_eq!(
        set.replica
            .command(&["GET", "PHPREDIS_SESSION:sentinelkill001"]),
        last.to_string(),
        "the promoted replica holds the session"
    );
    for (_, f) in &failures {
        assert!(!f.contains("hunter2"), "{f}");
    }
}

#[test]
fn sentinel_and_master_over_tls() {
    let master = RedisServer::start_tls();
    let sentinel = Sentinel::start_tls(&master, "tlsmaster");
    let ca = master.tls_ca_file().expect("test CA");
    let path = format!(
        "rediss+sentinel://127.0.0.1:{}/tlsmaster?tls_ca_file={}",
        sentinel.port,
        ca.display()
    );
    let mut store = open_redis(&path);
    assert_eq!(
        increment(&mut store, &id("sentineltls0001"), LOCKED).unwrap(),
        1
    );
    assert_eq!(
        master.command(&["GET", "PHPREDIS_SESSION:sentineltls0001"]),
        "1",
        "found the master's TLS listener through a TLS sentinel"
    );
    // Plain TCP to a TLS-only sentinel fails, and says which sentinel.
    let mut plain = open_redis(&format!(
        "redis+sentinel://127.0.0.1:{}/tlsmaster",
        sentinel.port
    ));
    let e = plain.connect().expect_err("plain TCP to a TLS sentinel");
    assert!(
        e.to_string()
            .contains(&format!("sentinel 127.0.0.1:{}", sentinel.port)),
        "{e}"
    );
}

#[test]
fn sentinels_with_their_own_password() {
    let set = SentinelSet::start(&["requirepass sentinel-pw"]);
    std::env::set_var("FLEET_TEST_SENTINEL_PASSWORD", "sentinel-pw");
    let path = format!(
        "redis+sentinel://{}/fleetmaster?sentinel_password_env=FLEET_TEST_SENTINEL_PASSWORD",
        set.hosts()
    );
    let mut store = open_redis(&path);
    assert_eq!(
        increment(&mut store, &id("sentinelauth001"), LOCKED).unwrap(),
        1
    );

    // Without the sentinels' password: an authentication error naming a sentinel.
    let mut store = open_redis(&format!("redis+sentinel://{}/fleetmaster", set.hosts()));
    let e =
        increment(&mut store, &id("sentinelauth002"), LOCKED).expect_err("no sentinel password");
    assert!(e.kind() == ErrorKind::Auth, "{e}");
    assert!(e.to_string().contains("sentinel 127.0.0.1:"), "{e}");

    // A master name the sentinels do not know: each sentinel's answer is in the message.
    let mut store = open_redis(&format!(
        "redis+sentinel://{}/nosuchmaster?sentinel_password_env=FLEET_TEST_SENTINEL_PASSWORD",
        set.hosts()
    ));
    let e = store.connect().expect_err("unknown master");
    assert!(
        e.to_string().contains("knows no master \"nosuchmaster\""),
        "{e}"
    );
}
