#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests: a panic here fails the test
//! Merge mode's steps on a real Redis, a Redis Cluster and MariaDB (named locks through the
//! procedures and plain statements, and row locks): reads without a lock, writes made only
//! if the session is as it was read (else what is stored now), a logout no later write
//! undoes, an expired session never revived, and the fallback's lock respected. The last
//! tests run the write driver itself (`write_merged`): 16 threads, each incrementing its own
//! variable of ONE session, lose nothing.

mod common;

use common::{id, LIFETIME};

use std::time::Duration;

use fleet_core::codec::{self, PhpValue, SessionFormat, Split};
use fleet_core::merge::{write_merged, MergeOutcome, MergeTerms, OnConflict};
use fleet_core::{
    open_store, parse_save_path, ConditionalWrite, LeaseTerms, LockPolicy, SessionStore, Timeouts,
    Version,
};
use fleet_harness::{MariaDbServer, RedisCluster, RedisServer};

/// Locking as the fallback of a merge takes it.
const LOCKED: LockPolicy = LockPolicy {
    lease: Some(LeaseTerms {
        ttl: Duration::from_secs(30),
        wait_timeout: Duration::from_secs(5),
        renew_for: None,
    }),
};

/// A backend, for one test.
enum Server<'a> {
    Redis(&'a RedisServer),
    Cluster(&'a RedisCluster),
    /// The server and the save_path's lock options.
    MariaDb(&'a MariaDbServer, &'static str),
}

use Server::{Cluster, MariaDb, Redis};

/// The MySQL lock modes a merge can fall back to.
const MYSQL_LOCKS: [&str; 3] = [
    "lock=advisory&procedures=1",
    "lock=advisory&procedures=0",
    "lock=row",
];

impl Server<'_> {
    fn url(&self) -> String {
        match self {
            Redis(r) => r.url(),
            Cluster(c) => c.save_path(""),
            MariaDb(db, options) => db.save_path(options),
        }
    }

    /// A store as PHP opens one (through the compression frame).
    fn open(&self) -> Box<dyn SessionStore> {
        open_store(&parse_save_path(&self.url()).unwrap(), Timeouts::default()).unwrap()
    }

    fn row_locks(&self) -> bool {
        matches!(self, MariaDb(_, options) if options.contains("row"))
    }

    /// The stored session's bytes, read past the code under test where the server allows
    /// (a cluster's key lives on one of its nodes: read through a fresh store there).
    fn stored(&self, sid: &str) -> Option<String> {
        match self {
            Redis(r) => Some(r.command(&["GET", &format!("PHPREDIS_SESSION:{sid}")]))
                .filter(|v| !v.is_empty() && v != "(nil)" && v != "$-1"),
            MariaDb(db, _) => {
                let hex = db.query(&format!(
                    "SELECT HEX(data) FROM fleet_sessions WHERE id = '{sid}' AND expires > UNIX_TIMESTAMP()"
                ));
                let hex = hex.trim();
                (!hex.is_empty()).then(|| {
                    let bytes: Vec<u8> = (0..hex.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                        .collect();
                    String::from_utf8(bytes).unwrap()
                })
            }
            Cluster(_) => {
                let read = self.open().as_merge().unwrap().read_versioned(&id(sid));
                read.unwrap().data.map(|d| String::from_utf8(d).unwrap())
            }
        }
    }

    /// Makes the session expire now, as the server's expiry would.
    fn expire(&self, sid: &str) {
        match self {
            Redis(r) => {
                r.command(&["DEL", &format!("PHPREDIS_SESSION:{sid}")]);
            }
            MariaDb(db, _) => {
                db.query(&format!(
                    "UPDATE fleet_sessions SET expires = UNIX_TIMESTAMP() - 1 WHERE id = '{sid}'"
                ));
            }
            Cluster(_) => panic!("not used on a cluster"),
        }
    }
}

/// Runs `test` on Redis and on MariaDB with each lock mode (one server, each mode on
/// session ids of its own), naming the backend when it fails.
fn on_every_backend(test: impl Fn(&Server, &str)) {
    let redis = RedisServer::start();
    test(&Redis(&redis), "m");
    let db = MariaDbServer::start();
    for (i, options) in MYSQL_LOCKS.iter().enumerate() {
        println!("MariaDB with {options}");
        test(&MariaDb(&db, options), &format!("my{i}"));
    }
}

#[test]
fn a_write_is_made_only_if_nobody_wrote_since_the_read() {
    on_every_backend(|server, tag| {
        let sid_text = format!("{tag}mergecas");
        let sid = id(&sid_text);
        let (mut a, mut b) = (server.open(), server.open());
        let (a, b) = (a.as_merge().unwrap(), b.as_merge().unwrap());

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
        // A second write against "absent" is refused: it exists now.
        assert!(matches!(
            b.write_if_unchanged(&sid, &first.version, b"n|i:2;", LIFETIME)
                .unwrap(),
            ConditionalWrite::Changed(_)
        ));

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
        assert_eq!(server.stored(&sid_text).as_deref(), Some("n|i:1;a|b:1;"));
        assert_eq!(
            b.write_if_unchanged(&sid, &now.version, b"n|i:1;a|b:1;b|b:1;", LIFETIME)
                .unwrap(),
            ConditionalWrite::Written
        );
        assert_eq!(
            server.stored(&sid_text).as_deref(),
            Some("n|i:1;a|b:1;b|b:1;")
        );
    });
}

#[test]
fn a_destroyed_or_expired_session_is_never_written_back() {
    on_every_backend(|server, tag| {
        let sid_text = format!("{tag}mergegone");
        let sid = id(&sid_text);
        let (mut a, mut b) = (server.open(), server.open());
        let (a, b) = (a.as_merge().unwrap(), b.as_merge().unwrap());
        a.write_if_unchanged(&sid, &Version::default(), b"user|i:7;", LIFETIME)
            .unwrap();
        let before_logout = b.read_versioned(&sid).unwrap();

        assert!(a.destroy_for_good(&sid, LIFETIME).unwrap());
        let late = b
            .write_if_unchanged(
                &sid,
                &before_logout.version,
                b"user|i:7;cart|i:1;",
                LIFETIME,
            )
            .unwrap();
        assert_eq!(late, ConditionalWrite::Gone);
        // Nor by one that read it as new before the logout's tombstone.
        assert_eq!(
            b.write_if_unchanged(&sid, &Version::default(), b"cart|i:1;", LIFETIME)
                .unwrap(),
            ConditionalWrite::Gone
        );
        assert_eq!(server.stored(&sid_text), None);

        // Expiry: the session expired after it was read.
        let sid_text = format!("{tag}mergeexpired");
        let sid = id(&sid_text);
        a.write_if_unchanged(&sid, &Version::default(), b"user|i:8;", LIFETIME)
            .unwrap();
        let read = b.read_versioned(&sid).unwrap();
        server.expire(&sid_text);
        assert_eq!(
            b.write_if_unchanged(&sid, &read.version, b"user|i:8;x|i:1;", LIFETIME)
                .unwrap(),
            ConditionalWrite::Gone
        );
        assert_eq!(server.stored(&sid_text), None);
    });
}

#[test]
fn a_new_login_on_a_destroyed_sessions_id_is_written_unless_destroyed_again() {
    // With session.use_strict_mode off the browser keeps its id after session_destroy().
    on_every_backend(|server, tag| {
        let sid_text = format!("{tag}mergerelogin");
        let sid = id(&sid_text);
        let (mut a, mut b) = (server.open(), server.open());
        let (a, b) = (a.as_merge().unwrap(), b.as_merge().unwrap());
        a.write_if_unchanged(&sid, &Version::default(), b"user|i:7;", LIFETIME)
            .unwrap();
        let before_logout = a.read_versioned(&sid).unwrap();
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
        assert_eq!(server.stored(&sid_text).as_deref(), Some("user|i:9;"));
        // One that read before the logout does not write into the new login's session,
        // even against what is stored now.
        assert_eq!(
            a.write_if_unchanged(&sid, &before_logout.version, b"user|i:7;x|i:1;", LIFETIME)
                .unwrap(),
            ConditionalWrite::Gone
        );
        let now = a.read_versioned(&sid).unwrap();
        assert_eq!(now.data.as_deref(), Some(&b"user|i:9;"[..]));

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
        assert_eq!(server.stored(&sid_text), None);
    });
}

#[test]
fn a_logout_and_merge_writes_wait_for_the_fallback_that_holds_the_lock() {
    on_every_backend(|server, tag| {
        if server.row_locks() {
            // InnoDB makes them wait inside the statement for the row lock; the driver test
            // below runs that for real, with threads.
            return;
        }
        let sid_text = format!("{tag}mergelocked");
        let sid = id(&sid_text);
        let (mut holder, mut other) = (server.open(), server.open());
        other
            .as_merge()
            .unwrap()
            .write_if_unchanged(&sid, &Version::default(), b"user|i:7;", LIFETIME)
            .unwrap();
        let read = other.as_merge().unwrap().read_versioned(&sid).unwrap();
        let held = holder.lock_and_read(&sid, LOCKED).unwrap();
        let other = other.as_merge().unwrap();
        assert_eq!(
            other
                .write_if_unchanged(&sid, &read.version, b"user|i:7;m|i:1;", LIFETIME)
                .unwrap(),
            ConditionalWrite::Locked
        );
        assert!(
            !other.destroy_for_good(&sid, LIFETIME).unwrap(),
            "no destroy while the lock is held"
        );
        holder
            .write_and_unlock(&sid, b"user|i:7;h|i:1;", LIFETIME, held.lock.as_ref())
            .unwrap();
        let ConditionalWrite::Changed(now) = other
            .write_if_unchanged(&sid, &read.version, b"user|i:7;m|i:1;", LIFETIME)
            .unwrap()
        else {
            panic!("the holder's write was not seen");
        };
        assert_eq!(now.data.as_deref(), Some(&b"user|i:7;h|i:1;"[..]));
        assert!(other.destroy_for_good(&sid, LIFETIME).unwrap());
        assert_eq!(server.stored(&sid_text), None);
    });
}

#[test]
fn a_read_older_than_tombstones_last_writes_nothing_over_a_changed_session() {
    // A logout's tombstone lasts a bounded time; a request that read before one that has
    // expired since cannot tell a logout from another request's write, so it writes only if
    // nothing changed.
    on_every_backend(|server, tag| {
        let sid = id(&format!("{tag}mergestale"));
        let (mut a, mut b) = (server.open(), server.open());
        b.as_merge()
            .unwrap()
            .write_if_unchanged(&sid, &Version::default(), b"user|i:7;", LIFETIME)
            .unwrap();
        let read = a.as_merge().unwrap().read_versioned(&sid).unwrap();
        let terms = MergeTerms {
            on_conflict: OnConflict::Ours,
            format: Some(SessionFormat::Php),
            attempts: 4,
            lock: a.lock_policy(LOCKED),
            read_outlived_tombstones: true,
        };
        // Unchanged since the read: written.
        let report =
            write_merged(a.as_mut(), &sid, &read, b"user|i:7;x|i:1;", LIFETIME, terms).unwrap();
        assert_eq!(report.outcome, MergeOutcome::Written);
        // Changed since (by b): dropped, as after a logout.
        b.as_merge()
            .unwrap()
            .write_if_unchanged(
                &sid,
                &a.as_merge().unwrap().read_versioned(&sid).unwrap().version,
                b"user|i:8;",
                LIFETIME,
            )
            .unwrap();
        let report =
            write_merged(a.as_mut(), &sid, &read, b"user|i:7;y|i:1;", LIFETIME, terms).unwrap();
        assert_eq!(report.outcome, MergeOutcome::Gone);
        let now = a.as_merge().unwrap().read_versioned(&sid).unwrap();
        assert_eq!(now.data.as_deref(), Some(&b"user|i:8;"[..]));
    });
}

/// One request of client `client`: read, increment variable `k<client>`, write through the
/// merge driver. Returns (retries, took the lock).
fn increment_own_key(store: &mut dyn SessionStore, sid: &str, client: usize) -> (u32, bool) {
    let sid = id(sid);
    let key = format!("k{client}");
    let read = store.as_merge().unwrap().read_versioned(&sid).unwrap();
    let base = read.data.clone().unwrap_or_default();
    let Split::Vars(mut vars) = codec::split(&base, SessionFormat::Php) else {
        panic!("the session does not cut into variables");
    };
    let n = codec::decode(&base, SessionFormat::Php)
        .unwrap()
        .get(&key)
        .and_then(|v| match v {
            PhpValue::Int(n) => Some(*n),
            _ => None,
        })
        .unwrap_or(0);
    let value = format!("i:{};", n + 1).into_bytes();
    vars.retain(|(k, _)| *k != key.as_bytes());
    vars.push((key.as_bytes(), &value));
    let ours = codec::join(&vars, SessionFormat::Php);
    let terms = MergeTerms {
        on_conflict: OnConflict::Ours,
        format: Some(SessionFormat::Php),
        attempts: 4,
        lock: store.lock_policy(LOCKED),
        read_outlived_tombstones: false,
    };
    let report = write_merged(store, &sid, &read, &ours, LIFETIME, terms).unwrap();
    assert_eq!(report.outcome, MergeOutcome::Written);
    assert!(report.conflicts.is_empty(), "{:?}", report.conflicts);
    (report.retries, report.took_lock)
}

fn sixteen_clients_keep_their_own_keys(server: &Server, sid: &str) {
    const CLIENTS: usize = 16;
    const TIMES: usize = 50;
    let url = server.url();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let url = url.clone();
            let sid = sid.to_owned();
            std::thread::spawn(move || {
                let mut store =
                    open_store(&parse_save_path(&url).unwrap(), Timeouts::default()).unwrap();
                (0..TIMES).fold((0, 0), |(retries, locked), _| {
                    let (r, l) = increment_own_key(store.as_mut(), &sid, client);
                    (retries + r, locked + u32::from(l))
                })
            })
        })
        .collect();
    let (retries, locked) = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .fold((0, 0), |(r, l), (r2, l2)| (r + r2, l + l2));
    let data = server.stored(sid).unwrap();
    let vars = codec::decode(data.as_bytes(), SessionFormat::Php).unwrap();
    for client in 0..CLIENTS {
        assert_eq!(
            vars.get(&format!("k{client}")),
            Some(&PhpValue::Int(TIMES as i64)),
            "client {client} lost increments: {data}"
        );
    }
    println!(
        "{}: {CLIENTS} clients x {TIMES} increments of their own key on one session: 0 lost, {retries} writes retried, {locked} took the lock",
        server.url().split('@').next_back().unwrap_or_default()
    );
}

#[test]
fn sixteen_clients_incrementing_their_own_keys_of_one_session_lose_nothing() {
    on_every_backend(|server, tag| {
        sixteen_clients_keep_their_own_keys(server, &format!("{tag}mergesixteen"))
    });
}

#[test]
fn on_a_cluster_sixteen_clients_incrementing_their_own_keys_lose_nothing() {
    let cluster = RedisCluster::start(3, 0);
    sixteen_clients_keep_their_own_keys(&Cluster(&cluster), "mergecluster");
}
