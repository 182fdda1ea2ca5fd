#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests: a panic here fails the test
//! Named leases and replicas (issue 22 #10): with `wait_replicas`, taking and renewing a
//! lease waits for the replicas' acknowledgement in the same round trip, so a replica
//! promoted by a failover knows the fence and hands out a larger one; without enough
//! replicas the lease is refused (and given back), never handed out on the master alone.

mod common;

use common::open_redis;

use std::time::{Duration, Instant};

use fleet_core::{ErrorKind, LeaseStore, LeaseToken, Slot, Taken};
use fleet_harness::RedisServer;

const FENCE_KEY: &str = "PHPREDIS_SESSION:lease:{job}:fence";
const LEASE_KEY: &str = "PHPREDIS_SESSION:lease:{job}";

fn signal(server: &RedisServer, signal: libc::c_int) {
    let pid = server.pid().expect("redis-server runs");
    // SAFETY: kill(2) on a redis-server this test started.
    let sent = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(sent, 0, "kill {signal} {pid}");
}

#[test]
fn taking_a_lease_waits_for_the_replica_and_a_promoted_replica_hands_out_a_larger_fence() {
    let master = RedisServer::start();
    let replica = RedisServer::start_replica_of(&master);
    replica.wait_for_replication();
    let mut store = open_redis(&format!("{}?wait_replicas=1&wait_timeout=5", master.url()));
    let token = LeaseToken::generate().unwrap();

    // The replica is stopped for 600 ms: the taking cannot be acknowledged before it runs
    // again, so acquire returns only then, and the replica has the fence at that moment.
    signal(&replica, libc::SIGSTOP);
    let resume = std::thread::spawn({
        let pid = replica.pid();
        move || {
            std::thread::sleep(Duration::from_millis(600));
            // SAFETY: kill(2) on the replica this test started.
            unsafe { libc::kill(pid.unwrap_or(0) as libc::pid_t, libc::SIGCONT) };
        }
    });
    let started = Instant::now();
    let taken = store.take_lease("job", &token, Duration::from_secs(2), None);
    let waited = started.elapsed();
    resume.join().unwrap();
    assert_eq!(taken.unwrap(), Taken::Won { fence: 1 });
    assert!(
        waited >= Duration::from_millis(500),
        "it waited for the replica: {waited:?}"
    );
    assert_eq!(replica.command(&["GET", FENCE_KEY]), "1");
    assert_eq!(replica.command(&["GET", LEASE_KEY]), token.as_str());

    // A renewal waits too, and is acknowledged.
    assert!(store
        .renew_lease("job", &token, Duration::from_secs(2))
        .unwrap());

    // The master dies; the replica is promoted. After the TTL, the next holder's fence is
    // larger than the one handed out before the failover.
    drop(store);
    drop(master);
    assert_eq!(replica.command(&["REPLICAOF", "NO", "ONE"]), "+OK");
    std::thread::sleep(Duration::from_millis(2100));
    let mut promoted = open_redis(&replica.url());
    let next = LeaseToken::generate().unwrap();
    assert_eq!(
        promoted
            .take_lease("job", &next, Duration::from_secs(2), None)
            .unwrap(),
        Taken::Won { fence: 2 }
    );
}

#[test]
fn without_the_replicas_asked_for_a_lease_is_refused_and_given_back() {
    let lonely = RedisServer::start();
    let mut store = open_redis(&format!(
        "{}?wait_replicas=1&wait_timeout=0.1",
        lonely.url()
    ));
    let token = LeaseToken::generate().unwrap();
    let slot = Slot {
        id: "60s:1".into(),
        keep: Duration::from_secs(60),
    };
    let err = store
        .take_lease("job", &token, Duration::from_secs(30), Some(&slot))
        .unwrap_err();
    let text = err.to_string();
    assert!(err.kind() == ErrorKind::Server, "{text}");
    assert!(
        text.contains("only 0 of the 1 replicas")
            && text.contains("wait_replicas")
            && text.contains("job"),
        "{text}"
    );
    // Given back: neither the lease nor the slot's mark blocks the name for the TTL.
    assert_eq!(
        lonely.command(&[
            "EXISTS",
            LEASE_KEY,
            "PHPREDIS_SESSION:lease:{job}:slot:60s:1"
        ]),
        ":0"
    );

    // Without wait_replicas the same server hands it out, with a fence larger than the one
    // given back.
    let mut plain = open_redis(&lonely.url());
    assert_eq!(
        plain
            .take_lease("job", &token, Duration::from_secs(30), Some(&slot))
            .unwrap(),
        Taken::Won { fence: 2 }
    );
    // A renewal the replicas did not acknowledge is reported, not passed off as done.
    let err = store
        .renew_lease("job", &token, Duration::from_secs(30))
        .unwrap_err();
    assert!(
        err.to_string().contains("renewal of lease \"job\""),
        "{err}"
    );
}
