#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests: a panic here fails the test
//! Merge mode's steps on a real Redis and a Redis Cluster: reads without a lock, writes
//! made only if the session is as it was read (else what is stored now, in the same round
//! trip), a logout no later write undoes, and the fallback's lock respected. The last test
//! is the semantics end to end in Rust: 16 threads, each incrementing its own variable of
//! ONE session through read, merge and conditional write, lose nothing.

mod common;

use common::{id, open_redis, LIFETIME};

use std::time::Duration;

use fleet_core::codec::SessionFormat;
use fleet_core::merge::{merge, OnConflict};
use fleet_core::{
    ConditionalWrite, LeaseTerms, LockPolicy, MergeStore, RedisStore, SessionStore, Version,
};
use fleet_harness::{RedisCluster, RedisServer};

/// Locking as the fallback of a merge takes it.
const LOCKED: LockPolicy = LockPolicy {
    lease: Some(LeaseTerms {
        ttl: Duration::from_secs(30),
        wait_timeout: Duration::from_secs(1),
        renew_for: None,
    }),
};

#[test]
fn a_write_is_made_only_if_nobody_wrote_since_the_read() {
    let redis = RedisServer::start();
    let sid = id("mergecas");
    let mut a = open_redis(&redis.url());
    let mut b = open_redis(&redis.url());

    let first = a.read_versioned(&sid).unwrap();
    assert_eq!(
        (first.data.as_deref(), &first.version),
        (None, &Version::default())
    );
    assert_eq!(
        a.write_if_unchanged(&sid, &first.version, b"n|i:1;", LIFETIME)
            .unwrap(),
        ConditionalWrite::Written
    );

    let read_a = a.read_versioned(&sid).unwrap();
    let read_b = b.read_versioned(&sid).unwrap();
    assert_eq!(read_a, read_b);
    assert_eq!(read_a.data.as_deref(), Some(&b"n|i:1;"[..]));
    assert_ne!(read_a.version, Version::default());

    assert_eq!(
        a.write_if_unchanged(&sid, &read_a.version, b"n|i:1;a|b:1;", LIFETIME)
            .unwrap(),
        ConditionalWrite::Written
    );
    // b read before a wrote: refused, with what is stored now.
    let ConditionalWrite::Changed(now) = b
        .write_if_unchanged(&sid, &read_b.version, b"n|i:1;b|b:1;", LIFETIME)
        .unwrap()
    else {
        panic!("b's stale write was not refused");
    };
    assert_eq!(now.data.as_deref(), Some(&b"n|i:1;a|b:1;"[..]));
    assert_eq!(
        redis.command(&["GET", "PHPREDIS_SESSION:mergecas"]),
        "n|i:1;a|b:1;"
    );
    let merged = merge(
        read_b.data.as_deref().unwrap(),
        b"n|i:1;b|b:1;",
        now.data.as_deref().unwrap(),
        SessionFormat::Php,
        OnConflict::Ours,
    );
    assert_eq!(
        b.write_if_unchanged(&sid, &now.version, &merged.data, LIFETIME)
            .unwrap(),
        ConditionalWrite::Written
    );
    assert_eq!(
        redis.command(&["GET", "PHPREDIS_SESSION:mergecas"]),
        "n|i:1;a|b:1;b|b:1;"
    );
    // A PHP reader sees a plain session key with its lifetime.
    let ttl: i64 = redis
        .command(&["TTL", "PHPREDIS_SESSION:mergecas"])
        .trim_start_matches(':')
        .parse()
        .unwrap();
    assert!(ttl > 0, "{ttl}");
}

#[test]
fn a_destroyed_or_expired_session_is_never_written_back() {
    let redis = RedisServer::start();
    let sid = id("mergegone");
    let mut a = open_redis(&redis.url());
    let mut b = open_redis(&redis.url());
    a.write_if_unchanged(&sid, &Version::default(), b"user|i:7;", LIFETIME)
        .unwrap();
    let before_logout = b.read_versioned(&sid).unwrap();

    assert!(a.destroy_for_good(&sid, LIFETIME).unwrap());
    assert_eq!(
        b.write_if_unchanged(
            &sid,
            &before_logout.version,
            b"user|i:7;cart|i:1;",
            LIFETIME
        )
        .unwrap(),
        ConditionalWrite::Gone
    );
    // Nor by one that read it as new just before the logout's tombstone.
    assert_eq!(
        b.write_if_unchanged(&sid, &Version::default(), b"cart|i:1;", LIFETIME)
            .unwrap(),
        ConditionalWrite::Gone
    );
    assert_eq!(
        redis.command(&["EXISTS", "PHPREDIS_SESSION:mergegone"]),
        ":0"
    );

    // Expiry: the session vanished (here deleted, as expiry does) after it was read.
    let sid = id("mergeexpired");
    a.write_if_unchanged(&sid, &Version::default(), b"user|i:8;", LIFETIME)
        .unwrap();
    let read = b.read_versioned(&sid).unwrap();
    redis.command(&["DEL", "PHPREDIS_SESSION:mergeexpired"]);
    assert_eq!(
        b.write_if_unchanged(&sid, &read.version, b"user|i:8;x|i:1;", LIFETIME)
            .unwrap(),
        ConditionalWrite::Gone
    );
    assert_eq!(
        redis.command(&["EXISTS", "PHPREDIS_SESSION:mergeexpired"]),
        ":0"
    );
}

#[test]
fn a_new_login_on_a_destroyed_sessions_id_is_written_unless_destroyed_again() {
    // With session.use_strict_mode off the browser keeps its id after session_destroy().
    let redis = RedisServer::start();
    let sid = id("mergerelogin");
    let mut a = open_redis(&redis.url());
    let mut b = open_redis(&redis.url());
    a.write_if_unchanged(&sid, &Version::default(), b"user|i:7;", LIFETIME)
        .unwrap();
    assert!(a.destroy_for_good(&sid, LIFETIME).unwrap());

    let after_logout = b.read_versioned(&sid).unwrap();
    assert_eq!(after_logout.data, None);
    assert_ne!(
        after_logout.version,
        Version::default(),
        "the tombstone is part of the version"
    );
    assert_eq!(
        b.write_if_unchanged(&sid, &after_logout.version, b"user|i:9;", LIFETIME)
            .unwrap(),
        ConditionalWrite::Written
    );
    assert_eq!(
        redis.command(&["GET", "PHPREDIS_SESSION:mergerelogin"]),
        "user|i:9;"
    );

    // A request that read after the first logout, but writes after a second one, loses.
    let read = a.read_versioned(&sid).unwrap();
    assert!(b.destroy_for_good(&sid, LIFETIME).unwrap());
    let between = a.read_versioned(&sid).unwrap();
    std::thread::sleep(Duration::from_millis(2));
    assert!(b.destroy_for_good(&sid, LIFETIME).unwrap());
    assert_eq!(
        a.write_if_unchanged(&sid, &read.version, b"user|i:9;x|i:1;", LIFETIME)
            .unwrap(),
        ConditionalWrite::Gone
    );
    assert_eq!(
        a.write_if_unchanged(&sid, &between.version, b"user|i:10;", LIFETIME)
            .unwrap(),
        ConditionalWrite::Gone,
        "read between two logouts, written after the second"
    );
    assert_eq!(
        redis.command(&["EXISTS", "PHPREDIS_SESSION:mergerelogin"]),
        ":0"
    );
}

#[test]
fn a_logout_waits_for_the_fallback_that_holds_the_lock_and_then_wins() {
    let redis = RedisServer::start();
    let sid = id("mergelogoutlock");
    let mut holder = open_redis(&redis.url());
    let mut other = open_redis(&redis.url());
    other
        .write_if_unchanged(&sid, &Version::default(), b"user|i:7;", LIFETIME)
        .unwrap();
    let held = holder.lock_and_read(&sid, LOCKED).unwrap();
    assert!(
        !other.destroy_for_good(&sid, LIFETIME).unwrap(),
        "not while the lock is held"
    );
    holder
        .write_and_unlock(&sid, b"user|i:7;cart|i:1;", LIFETIME, held.lock.as_ref())
        .unwrap();
    assert!(other.destroy_for_good(&sid, LIFETIME).unwrap());
    assert_eq!(
        redis.command(&["EXISTS", "PHPREDIS_SESSION:mergelogoutlock"]),
        ":0"
    );
}

#[test]
fn while_a_request_holds_the_lock_merge_writes_wait_for_it() {
    let redis = RedisServer::start();
    let sid = id("mergelocked");
    let mut holder = open_redis(&redis.url());
    let mut merger = open_redis(&redis.url());
    let read = merger.read_versioned(&sid).unwrap();
    let held = holder.lock_and_read(&sid, LOCKED).unwrap();
    assert_eq!(
        merger
            .write_if_unchanged(&sid, &read.version, b"m|i:1;", LIFETIME)
            .unwrap(),
        ConditionalWrite::Locked
    );
    holder
        .write_and_unlock(&sid, b"h|i:1;", LIFETIME, held.lock.as_ref())
        .unwrap();
    let ConditionalWrite::Changed(now) = merger
        .write_if_unchanged(&sid, &read.version, b"m|i:1;", LIFETIME)
        .unwrap()
    else {
        panic!("the holder's write was not seen");
    };
    assert_eq!(now.data.as_deref(), Some(&b"h|i:1;"[..]));
}

/// Read, change variable `k<client>`, merge with what is stored until the write is made.
fn increment_own_key(store: &mut RedisStore, sid: &str, client: usize, times: usize) -> usize {
    let sid = id(sid);
    let key = format!("k{client}");
    let mut retries = 0;
    for _ in 0..times {
        let mut read = store.read_versioned(&sid).unwrap();
        loop {
            let base = read.data.clone().unwrap_or_default();
            let vars = fleet_core::codec::decode(&base, SessionFormat::Php).unwrap();
            let n = vars
                .get(&key)
                .and_then(|v| match v {
                    fleet_core::codec::PhpValue::Int(n) => Some(*n),
                    _ => None,
                })
                .unwrap_or(0);
            // This request's own write: its key changed, everything else as read.
            let fleet_core::codec::Split::Vars(mut mine) =
                fleet_core::codec::split(&base, SessionFormat::Php)
            else {
                panic!("the session does not cut into variables");
            };
            let value = format!("i:{};", n + 1).into_bytes();
            mine.retain(|(k, _)| *k != key.as_bytes());
            mine.push((key.as_bytes(), &value));
            let ours = fleet_core::codec::join(&mine, SessionFormat::Php);
            match store
                .write_if_unchanged(&sid, &read.version, &ours, LIFETIME)
                .unwrap()
            {
                ConditionalWrite::Written => break,
                ConditionalWrite::Changed(now) => {
                    // Merge ours into theirs and try again from what is stored.
                    let theirs = now.data.clone().unwrap_or_default();
                    let merged = merge(&base, &ours, &theirs, SessionFormat::Php, OnConflict::Ours);
                    assert!(merged.conflicts.is_empty(), "{:?}", merged.conflicts);
                    match store
                        .write_if_unchanged(&sid, &now.version, &merged.data, LIFETIME)
                        .unwrap()
                    {
                        ConditionalWrite::Written => break,
                        ConditionalWrite::Changed(again) => {
                            retries += 1;
                            read = again;
                            // The base for the next round is what is stored; our change is
                            // made again on top of it.
                        }
                        other => panic!("{other:?}"),
                    }
                }
                other => panic!("{other:?}"),
            }
        }
    }
    retries
}

fn sixteen_clients_keep_their_own_keys(url: &str, sid: &'static str) {
    let threads: Vec<_> = (0..16)
        .map(|client| {
            let url = url.to_owned();
            std::thread::spawn(move || {
                let mut store = open_redis(&url);
                increment_own_key(&mut store, sid, client, 50)
            })
        })
        .collect();
    let retries: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let mut store = open_redis(url);
    let data = store.read_versioned(&id(sid)).unwrap().data.unwrap();
    let vars = fleet_core::codec::decode(&data, SessionFormat::Php).unwrap();
    for client in 0..16 {
        assert_eq!(
            vars.get(&format!("k{client}")),
            Some(&fleet_core::codec::PhpValue::Int(50)),
            "client {client} lost increments: {}",
            String::from_utf8_lossy(&data)
        );
    }
    println!("16 clients x 50 increments of their own key on one session: 0 lost, {retries} writes retried after a second conflict");
}

#[test]
fn sixteen_clients_incrementing_their_own_keys_of_one_session_lose_nothing() {
    let redis = RedisServer::start();
    sixteen_clients_keep_their_own_keys(&redis.url(), "mergesixteen");
}

#[test]
fn on_a_cluster_sixteen_clients_incrementing_their_own_keys_lose_nothing() {
    let cluster = RedisCluster::start(3, 0);
    sixteen_clients_keep_their_own_keys(&cluster.save_path(""), "mergecluster");
}
