#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests: a panic here fails the test
//! Lock renewal against a real Redis (and a Redis Cluster): a lock with a short TTL never
//! expires under a live holder, renewal stops at the maximum hold and at the release, and a
//! short request pays nothing for it.

mod common;

use common::{id, open_redis, LIFETIME};

use std::time::{Duration, Instant};

use fleet_core::{ErrorKind, LeaseTerms, LockLoss, LockPolicy, SessionStore};
use fleet_harness::{RedisCluster, RedisServer};

fn renewed(ttl_ms: u64, max_hold_ms: u64) -> LockPolicy {
    LockPolicy {
        lease: Some(LeaseTerms {
            ttl: Duration::from_millis(ttl_ms),
            wait_timeout: Duration::from_secs(10),
            renew_for: Some(Duration::from_millis(max_hold_ms)),
        }),
    }
}

/// Holds a session four times past its 600 ms TTL while another worker waits for it; the
/// waiter must get it only after the holder's write.
fn hold_past_the_ttl_while_another_waits(save_path: &str) {
    let mut holder = open_redis(save_path);
    let sid = id("renewedholder01");
    let read = holder.lock_and_read(&sid, renewed(600, 10_000)).unwrap();
    let taken = Instant::now();
    let waiter = {
        let path = save_path.to_owned();
        std::thread::spawn(move || {
            let mut store = open_redis(&path);
            let read = store
                .lock_and_read(&id("renewedholder01"), renewed(600, 10_000))
                .expect("the waiter gets the session");
            let got_it = Instant::now();
            let data = read.data.clone();
            store
                .unlock(&id("renewedholder01"), read.lock.as_ref().unwrap())
                .unwrap();
            (got_it, data)
        })
    };
    // Four times the TTL: without renewal the waiter would have taken the lock long ago.
    std::thread::sleep(Duration::from_millis(2400));
    // The waiter may take the lock the moment Redis releases it, before this thread is back
    // from the call: what it may not do is take it before the release began.
    let released = Instant::now();
    holder
        .write_and_unlock(&sid, b"n|i:1;", LIFETIME, read.lock.as_ref())
        .expect("the holder still holds its lock");
    let (got_it, data) = waiter.join().expect("waiter");
    println!(
        "held {:?} with a 600 ms TTL; the waiter got the session {:?} after the release",
        released - taken,
        got_it.saturating_duration_since(released)
    );
    assert!(
        got_it >= released,
        "the waiter took the session while it was held"
    );
    assert_eq!(
        data.as_deref(),
        Some(&b"n|i:1;"[..]),
        "and saw the holder's write"
    );
}

#[test]
fn a_renewed_lock_outlives_its_ttl_and_the_waiter_gets_it_after_the_release() {
    let redis = RedisServer::start();
    hold_past_the_ttl_while_another_waits(&redis.url());
}

#[test]
fn renewal_works_on_a_cluster() {
    let cluster = RedisCluster::start(3, 0);
    hold_past_the_ttl_while_another_waits(&cluster.save_path(""));
}

#[test]
fn a_request_past_its_maximum_hold_loses_the_lock_and_is_told_why() {
    let redis = RedisServer::start();
    let mut holder = open_redis(&redis.url());
    let sid = id("maxholdexceeded");
    let read = holder.lock_and_read(&sid, renewed(300, 600)).unwrap();
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(
        redis.command(&["EXISTS", "PHPREDIS_SESSION:maxholdexceeded_LOCK"]),
        ":0",
        "renewal stopped at the maximum hold and the lock expired"
    );
    let e = holder
        .write_and_unlock(&sid, b"late", LIFETIME, read.lock.as_ref())
        .expect_err("the write is refused");
    assert!(e.kind() == ErrorKind::LockLost, "{e}");
    let message = e.to_string();
    assert!(
        matches!(e.lock_loss(), Some(LockLoss::MaxHold { .. })) && message.contains("0.6 s"),
        "{message}"
    );
    assert_eq!(
        redis.command(&["EXISTS", "PHPREDIS_SESSION:maxholdexceeded"]),
        ":0"
    );
}

#[test]
fn no_renewal_outlives_the_release_and_short_requests_cost_nothing() {
    let redis = RedisServer::start();
    let mut store = open_redis(&redis.url());
    let sid = id("renewalcost0001");
    // Short requests: no renewal, and no second connection. (The first request loads the
    // scripts, which costs an extra EVALSHA each; it is not counted.)
    let read = store.lock_and_read(&sid, renewed(3000, 60_000)).unwrap();
    store
        .write_and_unlock(&sid, b"x", LIFETIME, read.lock.as_ref())
        .unwrap();
    redis.command(&["CONFIG", "RESETSTAT"]);
    let connections_before = redis.info_field("total_connections_received");
    for _ in 0..20 {
        let read = store.lock_and_read(&sid, renewed(3000, 60_000)).unwrap();
        store
            .write_and_unlock(&sid, b"x", LIFETIME, read.lock.as_ref())
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(1200));
    let evals = |r: &RedisServer| {
        r.command_calls()
            .iter()
            .find(|(n, _)| n == "evalsha")
            .map_or(0, |c| c.1)
    };
    assert_eq!(
        evals(&redis),
        40,
        "one acquire and one write-release per request, nothing else"
    );
    assert_eq!(
        redis.info_field("total_connections_received") - connections_before,
        // the test's own probes since `connections_before`: INFO commandstats and this one
        2,
        "short requests open no renewal connection"
    );

    // A long request is renewed on a second connection; after its release nothing renews.
    let read = store.lock_and_read(&sid, renewed(600, 60_000)).unwrap();
    std::thread::sleep(Duration::from_millis(1400));
    let pttl: i64 = redis
        .command(&["PTTL", "PHPREDIS_SESSION:renewalcost0001_LOCK"])
        .trim_start_matches(':')
        .parse()
        .unwrap_or(-2);
    assert!(pttl > 0, "renewed past its 600 ms TTL: {pttl}");
    store
        .write_and_unlock(&sid, b"y", LIFETIME, read.lock.as_ref())
        .unwrap();
    redis.command(&["CONFIG", "RESETSTAT"]);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(evals(&redis), 0, "a renewal ran after the release");
    assert_eq!(
        redis.command(&["EXISTS", "PHPREDIS_SESSION:renewalcost0001_LOCK"]),
        ":0"
    );
}
