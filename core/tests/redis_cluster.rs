#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests: a panic here fails the test
//! The Redis store on a real Redis Cluster (`redis-cli --cluster create`): key layout and
//! routing, and a busy session surviving a slot migration, a `CLUSTER FAILOVER` and a
//! SIGKILLed master without losing an acknowledged update. Outages are printed, never
//! asserted.

mod common;

use common::{id, increment, open_redis, LIFETIME};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleet_core::{LeaseTerms, LockPolicy, SessionStore};
use fleet_harness::RedisCluster;

const LOCKED: LockPolicy = LockPolicy {
    lease: Some(LeaseTerms {
        ttl: Duration::from_secs(5),
        wait_timeout: Duration::from_secs(10),
        renew_for: None,
    }),
};

#[test]
fn a_sessions_keys_share_its_slot_and_the_worker_connects_only_where_it_needs() {
    let cluster = RedisCluster::start(3, 0);
    let key = |sid: &str| format!("PHPREDIS_SESSION:{{{sid}}}");
    // A session whose owner is not the first seed, so the check below means something.
    let sid = (0..)
        .map(|i| format!("clusterlayout{i:04}"))
        .find(|s| cluster.master_of(&key(s)) != 0)
        .unwrap_or_default();
    let owner = cluster.master_of(&key(&sid));
    let other_owner = cluster.master_of(&key("clusterlayoutother"));
    let received = |i: usize| cluster.nodes[i].info_field("total_connections_received");
    let before: Vec<u64> = (0..3).map(received).collect();

    let mut store = open_redis(&cluster.save_path(""));
    let sid = id(&sid);
    let read = store.lock_and_read(&sid, LOCKED).unwrap();
    store
        .write_and_unlock(&sid, b"n|i:1;", LIFETIME, read.lock.as_ref())
        .unwrap();
    for _ in 0..5 {
        increment(&mut store, &id("clusterlayoutother"), LOCKED).unwrap();
    }
    let after: Vec<u64> = (0..3).map(received).collect();

    assert_eq!(cluster.get(&key(sid.as_str())), "n|i:1;");
    let read = store.lock_and_read(&sid, LOCKED).unwrap();
    // The lock's value is `<token>|<since>|<holder>`: a 32-character token first.
    let lock = cluster.get(&format!("{}_LOCK", key(sid.as_str())));
    assert_eq!(
        lock.find('|'),
        Some(32),
        "the lock lives beside the data, in the id's slot: {lock:?}"
    );
    store.unlock(&sid, read.lock.as_ref().unwrap()).unwrap();
    for i in 0..3 {
        // Each count includes the one connection `info_field` itself opened after `before`.
        let used = i == 0 || i == owner || i == other_owner;
        let opened = after[i] - before[i] - 1;
        println!(
            "node {i}: {opened} connections from the worker (seed or owner of a session: {used})"
        );
        if !used {
            assert_eq!(
                opened, 0,
                "the worker connected to node {i}, which it does not use"
            );
        } else {
            assert!(
                opened <= 2,
                "node {i}: the seed and an owner at most, got {opened}"
            );
        }
    }
}

/// What a worker saw: every acknowledged value (with when its request started) and every
/// failure.
type Outcome = (Vec<(Instant, u64)>, Vec<String>);
type Worker = std::thread::JoinHandle<Outcome>;

/// Increments `sid` from `threads` workers (one store each) until `stop`; returns every
/// acknowledged value and every failure.
fn busy(save_path: &str, sid: &str, threads: usize, stop: Arc<AtomicBool>) -> Vec<Worker> {
    (0..threads)
        .map(|_| {
            let (path, sid, stop) = (save_path.to_owned(), id(sid), stop.clone());
            std::thread::spawn(move || {
                let mut store = open_redis(&path);
                let (mut acked, mut failed) = (Vec::new(), Vec::new());
                while !stop.load(Ordering::SeqCst) {
                    // Timed by when it started: one in flight at a kill may still complete.
                    let started = Instant::now();
                    match increment(&mut store, &sid, LOCKED) {
                        Ok(n) => acked.push((started, n)),
                        Err(e) => failed.push(e.to_string()),
                    }
                }
                (acked, failed)
            })
        })
        .collect()
}

fn collect(workers: Vec<Worker>) -> Outcome {
    let mut acked = Vec::new();
    let mut failed = Vec::new();
    for w in workers {
        let (a, f) = w.join().expect("worker");
        acked.extend(a);
        failed.extend(f);
    }
    acked.sort();
    (acked, failed)
}

/// Every acknowledged value is distinct (no two requests saw the same counter: no lost
/// update) and the stored counter is at least the highest of them.
fn assert_no_lost_update(acked: &[(Instant, u64)], stored: &str) {
    let mut values: Vec<u64> = acked.iter().map(|a| a.1).collect();
    values.sort_unstable();
    let n = values.len();
    values.dedup();
    assert_eq!(
        values.len(),
        n,
        "two requests saw the same counter: an update was lost"
    );
    let stored: u64 = stored.parse().unwrap_or(0);
    assert!(
        stored >= values.last().copied().unwrap_or(0),
        "stored {stored} is below an acknowledged value"
    );
}

#[test]
fn migrating_the_slot_of_a_busy_session_loses_nothing() {
    let cluster = RedisCluster::start(3, 0);
    let sid = "clustermigrate001";
    let key = format!("PHPREDIS_SESSION:{{{sid}}}");
    let stop = Arc::new(AtomicBool::new(false));
    let workers = busy(&cluster.save_path(""), sid, 4, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    let from = cluster.master_of(&key);
    let to = (from + 1) % 3;
    let slot = cluster.slot_of(&key);
    cluster.migrate_slot(slot, from, to, Duration::from_millis(50));
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let (acked, failed) = collect(workers);
    assert_eq!(cluster.master_of(&key), to, "the slot moved");
    println!(
        "slot {slot} migrated under 4 busy workers: {} increments acknowledged, {} failed ({:?})",
        acked.len(),
        failed.len(),
        failed.first()
    );
    assert!(
        failed.is_empty(),
        "requests failed during the migration: {failed:?}"
    );
    let stored = cluster.get(&key);
    assert_eq!(stored, acked.len().to_string(), "every increment is stored");
    assert_no_lost_update(&acked, &stored);
}

#[test]
fn a_cluster_failover_and_a_killed_master_cost_seconds_not_updates() {
    let mut cluster = RedisCluster::start(3, 1);
    let sid = "clusterfailover01";
    let key = format!("PHPREDIS_SESSION:{{{sid}}}");
    let path = cluster.save_path("wait_replicas=1&wait_timeout=1");

    // A graceful CLUSTER FAILOVER: the replica takes over, the old master redirects.
    let stop = Arc::new(AtomicBool::new(false));
    let workers = busy(&path, sid, 2, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    let master = cluster.master_of(&key);
    let master_id = cluster.node_id(master);
    let replica = (0..cluster.nodes.len())
        .find(|&i| {
            cluster.nodes[i]
                .command(&["INFO", "replication"])
                .contains("role:slave")
                && cluster.nodes[i]
                    .command(&["CLUSTER", "NODES"])
                    .lines()
                    .any(|l| l.contains("myself") && l.contains(&master_id))
        })
        .unwrap_or_else(|| panic!("no replica of node {master}"));
    assert_eq!(
        cluster.nodes[replica].command(&["CLUSTER", "FAILOVER"]),
        "+OK"
    );
    let switched = Instant::now();
    while cluster.master_of(&key) != replica {
        assert!(switched.elapsed() < Duration::from_secs(20), "no failover");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let (acked, failed) = collect(workers);
    println!(
        "CLUSTER FAILOVER under 2 busy workers: {} acknowledged, {} failed ({:?})",
        acked.len(),
        failed.len(),
        failed.first()
    );
    let stored = cluster.get(&key);
    assert_no_lost_update(&acked, &stored);
    let before_kill: u64 = stored.parse().unwrap_or(0);

    // SIGKILL the (new) master: its replica is promoted after the node timeout.
    let stop = Arc::new(AtomicBool::new(false));
    let workers = busy(&path, sid, 1, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    let killed_at = Instant::now();
    cluster.nodes[replica].kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    // Another worker on the same session tells when it is served again.
    let mut probe = open_redis(&path);
    while increment(&mut probe, &id(sid), LOCKED).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let (acked, failed) = collect(workers);
    let last_before = acked.iter().rfind(|a| a.0 <= killed_at).copied();
    let first_after = acked.iter().find(|a| a.0 > killed_at).copied();
    let (Some(last_before), Some(first_after)) = (last_before, first_after) else {
        let nodes = cluster.nodes[master].command(&["CLUSTER", "NODES"]);
        panic!(
            "not served again after the master was killed: {:?}; {} acknowledged before; node {master} sees {nodes}",
            failed.last(),
            acked.len()
        );
    };
    println!(
        "killed cluster master: outage {:?} (last success before the SIGKILL to first success after), {} failed meanwhile",
        first_after.0 - last_before.0,
        failed.len()
    );
    assert!(last_before.1 >= before_kill);
    assert!(
        first_after.1 > last_before.1,
        "an acknowledged increment was lost: {} then {}",
        last_before.1,
        first_after.1
    );
    cluster.wait_until_ok();
    assert_no_lost_update(&acked, &cluster.get(&key));
}
