#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests: a panic here fails the test
//! Automatic deletion of expired MySQL sessions (`gc_interval`), whatever PHP's
//! `session.gc_probability` is, against a real `mariadbd`: at most one run per interval
//! across workers, bounded batches on a large backlog, and `gc_interval=0`.

use std::time::{Duration, Instant};

use fleet_core::{
    parse_save_path, BackendConfig, LeaseTerms, LockPolicy, SessionId, SessionStore, StoreConfig,
    Timeouts,
};
use fleet_core::{MySqlStore, GC_MARKER_ID};
use fleet_harness::MariaDbServer;

const LOCKED: LockPolicy = LockPolicy {
    lease: Some(LeaseTerms {
        ttl: Duration::from_secs(30),
        wait_timeout: Duration::from_secs(5),
        renew_for: None,
    }),
};

fn open(save_path: &str) -> MySqlStore {
    match parse_save_path(save_path).expect("save_path") {
        StoreConfig {
            common,
            backend: BackendConfig::MySql(c),
        } => MySqlStore::new(&c, common.connection(Timeouts::default())).expect("store"),
        other => panic!("not mysql: {other:?}"),
    }
}

/// One request: lock, read, write, unlock.
fn request(store: &mut MySqlStore, sid: &str) {
    let sid = SessionId::parse(sid.as_bytes()).expect("id");
    let read = store.lock_and_read(&sid, LOCKED).expect("lock and read");
    store
        .write_and_unlock(
            &sid,
            b"n|i:1;",
            Duration::from_secs(1440),
            read.lock.as_ref(),
        )
        .expect("write");
    assert_eq!(store.take_notice(), None, "the automatic gc failed");
}

/// `count` rows that expired long ago, made by the server itself.
fn expired_rows(db: &MariaDbServer, count: u64) {
    db.query(&format!(
        "INSERT INTO fleet_sessions (id, data, expires)
         SELECT CONCAT('old', seq), 'n|i:1;', 1 FROM seq_1_to_{count}"
    ));
}

fn count(db: &MariaDbServer, condition: &str) -> u64 {
    db.query(&format!(
        "SELECT COUNT(*) FROM fleet_sessions WHERE {condition}"
    ))
    .parse()
    .unwrap_or(u64::MAX)
}

/// How many automatic gc runs there have been (kept in the marker row).
fn runs(db: &MariaDbServer) -> u64 {
    db.query(&format!(
        "SELECT data FROM fleet_sessions WHERE id = '{GC_MARKER_ID}'"
    ))
    .parse()
    .unwrap_or(0)
}

#[test]
fn expired_rows_are_deleted_by_one_worker_per_interval() {
    let db = MariaDbServer::start();
    let path = db.save_path("gc_interval=1");
    let mut workers: Vec<MySqlStore> = (0..6).map(|_| open(&path)).collect();
    for (i, w) in workers.iter_mut().enumerate() {
        request(w, &format!("live{i}"));
    }
    expired_rows(&db, 5000);
    let runs_before = runs(&db);
    let started = Instant::now();
    let mut requests = 0;
    // Long enough for several intervals (so uncoordinated workers would each have run the gc
    // many times), and on until the backlog is gone however slow the machine is.
    while started.elapsed() < Duration::from_millis(3500) || count(&db, "id LIKE 'old%'") > 0 {
        for (i, w) in workers.iter_mut().enumerate() {
            request(w, &format!("live{i}"));
            requests += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    let runs = runs(&db) - runs_before;
    println!(
        "6 workers, {requests} requests in {elapsed:?}, gc_interval=1: {runs} gc runs; expired rows left: {}",
        count(&db, "id LIKE 'old%'")
    );
    assert_eq!(count(&db, "id LIKE 'live%'"), 6, "live sessions are kept");
    // The interval is kept in whole seconds of the server's clock: a span of `elapsed` touches
    // at most elapsed + 2 of them, whatever the load. Six workers checking every ~20 ms
    // without coordination would run it far more often.
    assert!(
        (1..=elapsed.as_secs() + 2).contains(&runs),
        "{runs} runs in {elapsed:?}: more than one worker ran in an interval"
    );
}

#[test]
fn gc_interval_0_leaves_the_table_to_php() {
    let db = MariaDbServer::start();
    let mut worker = open(&db.save_path("gc_interval=0"));
    request(&mut worker, "live");
    expired_rows(&db, 100);
    std::thread::sleep(Duration::from_millis(1200));
    for _ in 0..20 {
        request(&mut worker, "live");
    }
    assert_eq!(count(&db, "id LIKE 'old%'"), 100);
    // PHP's own gc still works.
    assert_eq!(worker.gc(Duration::from_secs(1)).unwrap(), 100);
}

#[test]
fn a_backlog_of_a_million_expired_rows_is_worked_off_in_bounded_batches() {
    let db = MariaDbServer::start();
    let mut worker = open(&db.save_path("gc_interval=1"));
    request(&mut worker, "live");
    let t = Instant::now();
    expired_rows(&db, 1_000_000);
    println!("inserted 1,000,000 expired rows in {:?}", t.elapsed());
    // Requests until the automatic gc has run once on the backlog.
    let runs_before = runs(&db);
    let mut slowest = Duration::ZERO;
    let mut requests = 0;
    while runs(&db) == runs_before {
        let t = Instant::now();
        request(&mut worker, "live");
        slowest = slowest.max(t.elapsed());
        requests += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = count(&db, "id LIKE 'old%'");
    println!(
        "{requests} requests until one gc run: slowest {slowest:?} (batch budget 200 ms); {} of 1,000,000 deleted",
        1_000_000 - left,
    );
    assert!(left < 1_000_000, "the gc made progress");
    // A run stops once its budget is spent (after the batch under way), never by the backlog.
    assert!(
        left > 0,
        "one run is bounded: it did not delete a million rows at once"
    );
    // The next run goes on where this one stopped.
    let runs_before = runs(&db);
    while runs(&db) == runs_before {
        request(&mut worker, "live");
        std::thread::sleep(Duration::from_millis(20));
    }
    let left_after = count(&db, "id LIKE 'old%'");
    assert!(
        left_after < left,
        "{left_after} left after the second run, {left} after the first"
    );
}
