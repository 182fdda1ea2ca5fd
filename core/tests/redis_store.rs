#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests: a panic here fails the test
//! The Redis store against a real `redis-server` started for each test.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use fleet_core::config::{RedisEndpoint, Secret};
use fleet_core::RedisStore;
use fleet_core::{
    parse_save_path, BackendConfig, ConnectionTerms, ErrorKind, LeaseTerms, LockLoss, LockPolicy,
    RedisConfig, SessionId, SessionStore, StoreConfig, Timeouts,
};
use fleet_harness::{Blackhole, RedisServer};

const LIFETIME: Duration = Duration::from_secs(1440);

fn store(redis: &RedisServer) -> RedisStore {
    RedisStore::new(
        &RedisConfig::tcp("127.0.0.1", redis.port),
        ConnectionTerms::default(),
    )
    .expect("store")
}

fn id(s: &str) -> SessionId {
    SessionId::parse(s.as_bytes()).expect("valid id")
}

fn locked(ttl_ms: u64, wait_ms: u64) -> LockPolicy {
    LockPolicy {
        lease: Some(LeaseTerms {
            ttl: Duration::from_millis(ttl_ms),
            wait_timeout: Duration::from_millis(wait_ms),
            renew_for: None,
        }),
    }
}

const UNLOCKED: LockPolicy = LockPolicy { lease: None };

#[test]
fn round_trip_uses_phpredis_key_layout() {
    let redis = RedisServer::start();
    let mut s = store(&redis);
    let sid = id("abc123");
    let read = s.lock_and_read(&sid, locked(30_000, 1_000)).unwrap();
    assert_eq!(read.data, None, "a new session reads as absent");
    assert!(read.lock.is_some());
    assert_eq!(
        redis.command(&["EXISTS", "PHPREDIS_SESSION:abc123_LOCK"]),
        ":1"
    );
    let before_write = std::time::Instant::now();
    s.write_and_unlock(&sid, b"n|i:1;", LIFETIME, read.lock.as_ref())
        .unwrap();
    assert_eq!(redis.command(&["GET", "PHPREDIS_SESSION:abc123"]), "n|i:1;");
    assert_eq!(
        redis.command(&["EXISTS", "PHPREDIS_SESSION:abc123_LOCK"]),
        ":0",
        "write releases the lock"
    );
    assert_eq!(
        redis.command(&[
            "EXISTS",
            "PHPREDIS_SESSION:abc123_LOCK_WAKE",
            "PHPREDIS_SESSION:abc123_LOCK_WAITERS"
        ]),
        ":0",
        "no wait keys without contention"
    );
    assert_lives_for(&redis, "PHPREDIS_SESSION:abc123", LIFETIME, before_write);

    let read = s.lock_and_read(&sid, UNLOCKED).unwrap();
    assert_eq!(read.data.as_deref(), Some(&b"n|i:1;"[..]));
    assert!(read.lock.is_none());
}

#[test]
fn binary_and_large_data_survive() {
    let redis = RedisServer::start();
    let mut s = store(&redis);
    let sid = id("bin");
    let data: Vec<u8> = (0..1_048_576u32).map(|i| (i * 7 % 256) as u8).collect();
    let read = s.lock_and_read(&sid, locked(30_000, 1_000)).unwrap();
    s.write_and_unlock(&sid, &data, LIFETIME, read.lock.as_ref())
        .unwrap();
    let read = s.lock_and_read(&sid, locked(30_000, 1_000)).unwrap();
    assert_eq!(read.data.as_deref(), Some(&data[..]));
    s.unlock(&sid, read.lock.as_ref().unwrap()).unwrap();
}

#[test]
fn custom_prefix_and_database() {
    let redis = RedisServer::start();
    let StoreConfig {
        common,
        backend: BackendConfig::Redis(config),
    } = parse_save_path(&format!("redis://127.0.0.1:{}/2?prefix=app:", redis.port)).unwrap()
    else {
        panic!("not a redis save_path")
    };
    let mut s = RedisStore::new(&config, common.connection(Timeouts::default())).unwrap();
    let sid = id("p1");
    s.write_and_unlock(&sid, b"x", LIFETIME, None).unwrap();
    // `command` talks to database 0, which must not have it.
    assert_eq!(redis.command(&["GET", "app:p1"]), "$-1", "db 0 has nothing");
    let mut check = RedisStore::new(&config, common.connection(Timeouts::default())).unwrap();
    assert_eq!(
        check.lock_and_read(&sid, UNLOCKED).unwrap().data.as_deref(),
        Some(&b"x"[..])
    );
}

#[test]
fn waiter_starts_when_the_holder_releases_not_by_polling() {
    let redis = RedisServer::start();
    let sid = id("hot");
    let mut holder = store(&redis);
    // A long TTL: if the waiter were not woken it would sit out its whole wait slice.
    let held = holder.lock_and_read(&sid, locked(60_000, 1_000)).unwrap();

    let port = redis.port;
    let waiter = std::thread::spawn(move || {
        let mut s = RedisStore::new(
            &RedisConfig::tcp("127.0.0.1", port),
            ConnectionTerms::default(),
        )
        .unwrap();
        let read = s.lock_and_read(&id("hot"), locked(60_000, 30_000)).unwrap();
        let acquired_at = Instant::now();
        s.write_and_unlock(&id("hot"), b"waiter", LIFETIME, read.lock.as_ref())
            .unwrap();
        (acquired_at, read.data)
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !waiter.is_finished(),
        "the waiter must wait while the lock is held"
    );
    let released_at = Instant::now();
    holder
        .write_and_unlock(&sid, b"holder", LIFETIME, held.lock.as_ref())
        .unwrap();
    let (acquired_at, seen) = waiter.join().unwrap();
    let latency = acquired_at.saturating_duration_since(released_at);
    println!("waiter took the lock {latency:?} after the release");
    assert_eq!(
        seen.as_deref(),
        Some(&b"holder"[..]),
        "the waiter reads what the holder wrote"
    );
    // Woken by the release, not by the one-second safety re-check.
    assert!(
        latency < fleet_core::lease::MAX_WAIT_SLICE / 2,
        "{latency:?}"
    );
    let calls = redis.command_calls();
    let blpops = calls
        .iter()
        .find(|(c, _)| c == "blpop")
        .map(|(_, n)| *n)
        .unwrap_or(0);
    assert_eq!(blpops, 1, "one blocking wait, no polling: {calls:?}");
}

#[test]
fn a_crashed_holders_lock_expires_by_its_ttl() {
    let redis = RedisServer::start();
    let sid = id("crash");
    {
        let mut dying = store(&redis);
        let read = dying.lock_and_read(&sid, locked(400, 1_000)).unwrap();
        assert!(read.lock.is_some());
        // Dropped without releasing, as a killed worker would.
    }
    let start = Instant::now();
    let mut next = store(&redis);
    let read = next
        .lock_and_read(&sid, locked(30_000, 10_000))
        .expect("the lock expires");
    println!(
        "got the crashed holder's lock after {:?} (TTL 400 ms)",
        start.elapsed()
    );
    assert!(read.lock.is_some());
}

#[test]
fn lock_wait_timeout_is_an_error_not_an_unlocked_read() {
    let redis = RedisServer::start();
    let sid = id("busy");
    let mut holder = store(&redis);
    let _held = holder.lock_and_read(&sid, locked(30_000, 1_000)).unwrap();
    let mut waiter = store(&redis);
    let err = waiter.lock_and_read(&sid, locked(30_000, 200)).unwrap_err();
    assert!(err.kind() == ErrorKind::LockWaitTimeout, "{err}");
    assert!(
        err.to_string().contains("did not finish within 200ms"),
        "{err}"
    );
}

#[test]
fn a_write_after_the_lock_expired_is_refused() {
    let redis = RedisServer::start();
    let sid = id("late");
    let mut slow = store(&redis);
    let slow_read = slow.lock_and_read(&sid, locked(200, 1_000)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut fast = store(&redis);
    let fast_read = fast.lock_and_read(&sid, locked(30_000, 1_000)).unwrap();
    fast.write_and_unlock(&sid, b"newer", LIFETIME, fast_read.lock.as_ref())
        .unwrap();

    let err = slow
        .write_and_unlock(&sid, b"stale", LIFETIME, slow_read.lock.as_ref())
        .unwrap_err();
    assert!(err.kind() == ErrorKind::LockLost, "{err}");
    assert!(
        matches!(err.lock_loss(), Some(LockLoss::NotRenewed { .. })),
        "{err}"
    );
    assert_eq!(
        redis.command(&["GET", "PHPREDIS_SESSION:late"]),
        "newer",
        "the newer write is kept"
    );
}

#[test]
fn concurrent_increments_lose_nothing() {
    const THREADS: usize = 8;
    const EACH: usize = 50;
    let redis = RedisServer::start();
    let barrier = Arc::new(Barrier::new(THREADS));
    let port = redis.port;
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut s = RedisStore::new(
                    &RedisConfig::tcp("127.0.0.1", port),
                    ConnectionTerms::default(),
                )
                .unwrap();
                barrier.wait();
                for _ in 0..EACH {
                    let read = s
                        .lock_and_read(&id("counter"), locked(30_000, 30_000))
                        .unwrap();
                    let n: usize = read
                        .data
                        .map(|d| String::from_utf8(d).unwrap().parse().unwrap())
                        .unwrap_or(0);
                    s.write_and_unlock(
                        &id("counter"),
                        (n + 1).to_string().as_bytes(),
                        LIFETIME,
                        read.lock.as_ref(),
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        redis.command(&["GET", "PHPREDIS_SESSION:counter"]),
        (THREADS * EACH).to_string()
    );
}

#[test]
fn touch_refreshes_lifetime_and_releases() {
    let redis = RedisServer::start();
    let mut s = store(&redis);
    let sid = id("lazy");
    s.write_and_unlock(&sid, b"v", Duration::from_secs(100), None)
        .unwrap();
    let read = s.lock_and_read(&sid, locked(30_000, 1_000)).unwrap();
    let before_touch = std::time::Instant::now();
    s.touch_and_unlock(&sid, Duration::from_secs(5000), read.lock.as_ref())
        .unwrap();
    assert_lives_for(
        &redis,
        "PHPREDIS_SESSION:lazy",
        Duration::from_secs(5000),
        before_touch,
    );
    assert_eq!(
        redis.command(&["EXISTS", "PHPREDIS_SESSION:lazy_LOCK"]),
        ":0"
    );
    assert_eq!(redis.command(&["GET", "PHPREDIS_SESSION:lazy"]), "v");
}

#[test]
fn destroy_deletes_and_releases() {
    let redis = RedisServer::start();
    let mut s = store(&redis);
    let sid = id("gone");
    s.write_and_unlock(&sid, b"v", LIFETIME, None).unwrap();
    assert!(s.exists(&sid).unwrap());
    let read = s.lock_and_read(&sid, locked(30_000, 1_000)).unwrap();
    s.destroy(&sid, read.lock.as_ref()).unwrap();
    assert!(!s.exists(&sid).unwrap());
    assert_eq!(
        redis.command(&["EXISTS", "PHPREDIS_SESSION:gone_LOCK"]),
        ":0"
    );
}

#[test]
fn reconnects_after_the_server_restarts() {
    let mut redis = RedisServer::start();
    let mut s = store(&redis);
    let sid = id("restart");
    s.write_and_unlock(&sid, b"before", LIFETIME, None).unwrap();
    redis.restart();
    // The old connection is dead; the first read retries once on a new one.
    let read = s
        .lock_and_read(&sid, locked(30_000, 1_000))
        .expect("reconnected");
    assert_eq!(
        read.data, None,
        "the restarted server has no data (no persistence)"
    );
    s.write_and_unlock(&sid, b"after", LIFETIME, read.lock.as_ref())
        .unwrap();
    assert_eq!(redis.command(&["GET", "PHPREDIS_SESSION:restart"]), "after");
}

#[test]
fn dead_server_is_a_connect_error_naming_the_endpoint() {
    let port = fleet_harness::paths::free_port();
    let mut s = RedisStore::new(
        &RedisConfig::tcp("127.0.0.1", port),
        ConnectionTerms::default(),
    )
    .unwrap();
    let err = s.lock_and_read(&id("x"), locked(1_000, 1_000)).unwrap_err();
    assert!(err.kind() == ErrorKind::Connect, "{err}");
    assert!(
        err.to_string()
            .contains(&format!("redis://127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn hung_server_is_bounded_by_the_command_timeout() {
    let hole = Blackhole::start();
    let timeouts = Timeouts {
        connect: Duration::from_millis(300),
        command: Duration::from_millis(300),
    };
    let mut s = RedisStore::new(
        &RedisConfig::tcp("127.0.0.1", hole.port),
        ConnectionTerms {
            timeouts,
            max_age: None,
        },
    )
    .unwrap();
    let start = Instant::now();
    let err = s.lock_and_read(&id("x"), locked(1_000, 1_000)).unwrap_err();
    println!("hung server reported after {:?}", start.elapsed());
    assert!(err.kind() == ErrorKind::TimedOut, "{err}");
    assert!(err.to_string().contains("did not answer within"), "{err}");
}

#[test]
fn password_auth_and_wrong_password() {
    let redis = RedisServer::start_with(&["--requirepass", "s3cret-pw"]);
    std::env::set_var("FLEET_TEST_REDIS_PW", "s3cret-pw");
    let StoreConfig {
        common,
        backend: BackendConfig::Redis(config),
    } = parse_save_path(&format!(
        "redis://127.0.0.1:{}?password_env=FLEET_TEST_REDIS_PW",
        redis.port
    ))
    .unwrap()
    else {
        panic!("not a redis save_path")
    };
    let mut s = RedisStore::new(&config, common.connection(Timeouts::default())).unwrap();
    s.write_and_unlock(&id("auth"), b"ok", LIFETIME, None)
        .expect("authenticated");

    let config = RedisConfig {
        endpoint: RedisEndpoint::Tcp {
            host: "127.0.0.1".into(),
            port: redis.port,
        },
        password: Some(Secret::new("wrong-pw")),
        ..RedisConfig::tcp("", 0)
    };
    let err = RedisStore::new(&config, common.connection(Timeouts::default()))
        .unwrap()
        .exists(&id("auth"))
        .unwrap_err();
    let text = err.to_string();
    assert!(err.kind() == ErrorKind::Auth, "{text}");
    assert!(
        !text.contains("wrong-pw") && !text.contains("s3cret"),
        "{text}"
    );

    let mut anonymous = store(&redis);
    let err = anonymous.exists(&id("auth")).unwrap_err();
    assert!(err.kind() == ErrorKind::Auth, "{err}");
}

#[test]
fn tls_with_a_trusted_ca_without_verification_and_untrusted() {
    let redis = RedisServer::start_tls();
    let tls_port = redis.tls_port.expect("tls port");
    let ca = redis.tls_ca_file().expect("ca");
    let sid = id("tls");

    let StoreConfig {
        common,
        backend: BackendConfig::Redis(config),
    } = parse_save_path(&format!(
        "rediss://127.0.0.1:{tls_port}?tls_ca_file={}",
        ca.display()
    ))
    .unwrap()
    else {
        panic!("not a redis save_path")
    };
    let mut s = RedisStore::new(&config, common.connection(Timeouts::default())).unwrap();
    let read = s
        .lock_and_read(&sid, locked(30_000, 1_000))
        .expect("TLS with the test CA");
    s.write_and_unlock(&sid, b"over tls", LIFETIME, read.lock.as_ref())
        .unwrap();
    assert_eq!(redis.command(&["GET", "PHPREDIS_SESSION:tls"]), "over tls");

    let StoreConfig {
        common,
        backend: BackendConfig::Redis(config),
    } = parse_save_path(&format!("rediss://127.0.0.1:{tls_port}?tls_verify=0")).unwrap()
    else {
        panic!("not a redis save_path")
    };
    let mut s = RedisStore::new(&config, common.connection(Timeouts::default())).unwrap();
    assert!(s.exists(&sid).expect("TLS without verification"));

    // The system roots do not trust the test CA.
    let StoreConfig {
        common,
        backend: BackendConfig::Redis(config),
    } = parse_save_path(&format!("rediss://127.0.0.1:{tls_port}")).unwrap()
    else {
        panic!("not a redis save_path")
    };
    let err = RedisStore::new(&config, common.connection(Timeouts::default()))
        .unwrap()
        .exists(&sid)
        .unwrap_err();
    println!("untrusted: {err}");
    assert!(err.kind() == ErrorKind::Tls, "{err}");
    assert!(
        err.to_string()
            .contains(&format!("rediss://127.0.0.1:{tls_port}")),
        "{err}"
    );
    assert!(err.to_string().contains("TLS with"), "{err}");
}

/// Issue 22 #9: a request whose lock expired and was taken by another request cannot delete
/// the session from under that request (a stale logout would undo its write, or the session
/// would come back when the holder writes it).
#[test]
fn a_destroy_after_the_lock_expired_is_refused_and_keeps_the_holders_session() {
    let redis = RedisServer::start();
    let sid = id("latedestroy");
    let mut seed = store(&redis);
    let read = seed.lock_and_read(&sid, locked(30_000, 1_000)).unwrap();
    seed.write_and_unlock(&sid, b"before", LIFETIME, read.lock.as_ref())
        .unwrap();

    // A locks, its lock expires, B locks.
    let mut a = store(&redis);
    let a_read = a.lock_and_read(&sid, locked(200, 1_000)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut b = store(&redis);
    let b_read = b.lock_and_read(&sid, locked(30_000, 1_000)).unwrap();
    assert_eq!(b_read.data.as_deref(), Some(&b"before"[..]));

    // A destroys: refused the way a write is, and nothing is deleted.
    let err = a.destroy(&sid, a_read.lock.as_ref()).unwrap_err();
    assert!(err.kind() == ErrorKind::LockLost, "{err}");
    assert!(err.to_string().contains("lock was gone"), "{err}");
    assert_eq!(
        redis.command(&["GET", "PHPREDIS_SESSION:latedestroy"]),
        "before",
        "the session B holds is still there"
    );
    assert_eq!(
        redis.command(&["EXISTS", "PHPREDIS_SESSION:latedestroy_LOCK"]),
        ":1",
        "B's lock is still there"
    );

    // B's write is kept.
    b.write_and_unlock(&sid, b"from b", LIFETIME, b_read.lock.as_ref())
        .unwrap();
    assert_eq!(
        redis.command(&["GET", "PHPREDIS_SESSION:latedestroy"]),
        "from b"
    );
}

/// Asserts that `key` expires `lifetime` after a moment between `since` (taken just before
/// the step that set its lifetime) and now: a bound from measured instants, not a tolerance.
fn assert_lives_for(redis: &RedisServer, key: &str, lifetime: Duration, since: std::time::Instant) {
    let pttl: u128 = redis
        .command(&["PTTL", key])
        .trim_start_matches(':')
        .parse()
        .unwrap();
    let lifetime = lifetime.as_millis();
    let elapsed = since.elapsed().as_millis();
    assert!(
        pttl <= lifetime && pttl + elapsed + 1 >= lifetime,
        "{key} lives {pttl} ms more; set to {lifetime} ms within the last {elapsed} ms"
    );
}
