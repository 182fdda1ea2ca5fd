#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests: a panic here fails the test
//! PHP's gc inside a locked request on MySQL (issue 22, item 5): PHP calls the handler's gc
//! right after the read, while the request holds its session's lock. That gc must not cost
//! the request its lock, whether by a deadlock or lock wait timeout that rolls back a
//! `lock=row` transaction, or by a slow `DELETE` whose read timeout drops the connection
//! holding a named lock. Against a real `mariadbd`, with real threads, each with its own
//! store, as PHP workers have.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ::mysql::prelude::Queryable;
use common::{id, open_mysql, LIFETIME};
use fleet_core::{LeaseTerms, LockPolicy, SessionId, SessionStore, StoreError};
use fleet_harness::mariadb_server::{DATABASE, PASSWORD, USER};
use fleet_harness::MariaDbServer;

fn locked(wait: Duration) -> LockPolicy {
    LockPolicy {
        lease: Some(LeaseTerms {
            ttl: Duration::from_secs(30),
            wait_timeout: wait,
            renew_for: None,
        }),
    }
}

fn deadlocks(db: &MariaDbServer) -> u64 {
    db.admin(
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'INNODB_DEADLOCKS'",
    )
    .trim()
    .parse()
    .unwrap_or(u64::MAX)
}

/// One request as PHP drives it with `session.gc_probability = gc_divisor`: lock and read,
/// gc (whose failure PHP ignores: the request goes on), then write what `next` makes of the
/// data read, with `lifetime`.
fn request(
    store: &mut impl SessionStore,
    sid: &SessionId,
    lifetime: Duration,
    next: impl FnOnce(Option<&[u8]>) -> Vec<u8>,
) -> Result<(), StoreError> {
    let read = store.lock_and_read(sid, locked(Duration::from_secs(20)))?;
    let _ = store.gc(LIFETIME);
    let data = next(read.data.as_deref());
    store.write_and_unlock(sid, &data, lifetime, read.lock.as_ref())
}

fn counter_value(data: Option<&[u8]>) -> u64 {
    data.and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

/// 500 increments of one session by 8 workers, beside 32 workers creating new sessions
/// (short-lived, so they expire and give gc rows to delete), gc after every read: every
/// increment that succeeded is counted, and one that failed failed with an error.
#[test]
fn row_lock_survives_gc_after_every_read_beside_new_sessions() {
    const INCREMENTS: u64 = 500;
    const COUNTING_WORKERS: usize = 8;
    const CREATING_WORKERS: usize = 32;
    let db = MariaDbServer::start();
    // gc_interval=0: only PHP's gc runs, as here on every request.
    let path = db.save_path("lock=row&gc_interval=0");
    let counter = id("counter");
    {
        let mut s = open_mysql(&path);
        request(&mut s, &counter, LIFETIME, |_| b"0".to_vec()).expect("first write");
    }
    // Expired sessions for the first gc runs to delete.
    db.query(
        "INSERT INTO fleet_sessions (id, data, expires) SELECT CONCAT('old', seq), 'x', 1 FROM seq_1_to_3000",
    );
    let deadlocks_before = deadlocks(&db);

    let tickets = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let counted = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let created = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..COUNTING_WORKERS {
        let (path, tickets, done, counted, errors) = (
            path.clone(),
            tickets.clone(),
            done.clone(),
            counted.clone(),
            errors.clone(),
        );
        let counter = counter.clone();
        workers.push(thread::spawn(move || {
            let mut s = open_mysql(&path);
            while tickets.fetch_add(1, Ordering::SeqCst) < INCREMENTS {
                match request(&mut s, &counter, LIFETIME, |d| {
                    (counter_value(d) + 1).to_string().into_bytes()
                }) {
                    Ok(()) => {
                        counted.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => errors.lock().expect("errors").push(format!("counter: {e}")),
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for w in 0..CREATING_WORKERS {
        let (path, done, errors, created) =
            (path.clone(), done.clone(), errors.clone(), created.clone());
        workers.push(thread::spawn(move || {
            let mut s = open_mysql(&path);
            let mut n = 0;
            while done.load(Ordering::SeqCst) < INCREMENTS {
                n += 1;
                let sid = id(&format!("new{w}x{n}"));
                match request(&mut s, &sid, Duration::from_secs(1), |d| {
                    assert_eq!(d, None, "a new session reads as empty");
                    b"n|i:1;".to_vec()
                }) {
                    Ok(()) => {
                        created.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => errors.lock().expect("errors").push(format!("new: {e}")),
                }
            }
        }));
    }
    for w in workers {
        w.join().expect("worker");
    }
    let elapsed = started.elapsed();
    let deadlocks_after = deadlocks(&db);
    let value: u64 = db
        .query("SELECT data FROM fleet_sessions WHERE id = 'counter'")
        .trim()
        .parse()
        .expect("counter");
    let counted = counted.load(Ordering::SeqCst);
    let errors = errors.lock().expect("errors").clone();
    let counter_errors = errors.iter().filter(|e| e.starts_with("counter")).count();
    eprintln!(
        "{elapsed:?}: counter {value}, {counted} increments succeeded, {counter_errors} failed; \
         {} new sessions; {} errors in all; Innodb_deadlocks {deadlocks_before} -> {deadlocks_after}",
        created.load(Ordering::SeqCst),
        errors.len(),
    );
    for e in errors.iter().take(10) {
        eprintln!("  {e}");
    }
    assert_eq!(
        value,
        counted,
        "every successful increment is in the counter, and no failed one is ({} lost)",
        counted.saturating_sub(value)
    );
    assert_eq!(
        counted + counter_errors as u64,
        INCREMENTS,
        "every increment either succeeded or failed with an error"
    );
    // gc in the request's transaction deadlocked here; it may not any more.
    assert_eq!(
        deadlocks_after, deadlocks_before,
        "no deadlock: gc no longer runs inside the requests' transactions"
    );
    assert!(errors.is_empty(), "no request failed: {errors:?}");
}

/// A plain connection of the test's own, as a DBA's session or another program would have.
fn other_client(db: &MariaDbServer) -> ::mysql::Conn {
    let opts = ::mysql::OptsBuilder::new()
        .ip_or_hostname(Some("127.0.0.1"))
        .tcp_port(db.port)
        .user(Some(USER))
        .pass(Some(PASSWORD))
        .db_name(Some(DATABASE));
    ::mysql::Conn::new(opts).expect("test connection")
}

/// An expired row that another transaction holds locked makes gc's `DELETE` wait, longer
/// than the read timeout in advisory mode (InnoDB's default lock wait is 50 s). That wait
/// must not drop the connection holding the request's named lock, nor fail the request.
#[test]
fn a_gc_waiting_on_a_locked_row_does_not_cost_the_request_its_lock() {
    let db = MariaDbServer::start();
    for (name, options) in [
        ("advisory", "lock=advisory&gc_interval=0"),
        ("statements", "lock=advisory&procedures=0&gc_interval=0"),
        ("row", "lock=row&gc_interval=0"),
    ] {
        let path = db.save_path(options);
        let mut s = open_mysql(&path);
        let sid = id(&format!("slowgc{name}"));
        s.lock_and_read(&sid, locked(Duration::from_secs(2)))
            .and_then(|r| s.write_and_unlock(&sid, b"0", LIFETIME, r.lock.as_ref()))
            .expect("first request");
        db.query(&format!(
            "INSERT INTO fleet_sessions (id, data, expires) VALUES ('held{name}', 'x', 1)"
        ));
        let mut dba = other_client(&db);
        dba.query_drop("START TRANSACTION").expect("begin");
        dba.query_drop(format!(
            "SELECT * FROM fleet_sessions WHERE id = 'held{name}' FOR UPDATE"
        ))
        .expect("lock the expired row");

        let started = Instant::now();
        let read = s
            .lock_and_read(&sid, locked(Duration::from_secs(2)))
            .expect("lock and read");
        let gc = s.gc(LIFETIME);
        let gc_took = started.elapsed();
        let written = s.write_and_unlock(&sid, b"1", LIFETIME, read.lock.as_ref());
        dba.query_drop("ROLLBACK").expect("rollback");
        eprintln!("{name}: gc {gc:?} after {gc_took:?}, write {written:?}");
        assert!(
            written.is_ok(),
            "{name}: the request still held its lock after gc: {written:?}"
        );
        // Waiting for the held row would last InnoDB's lock wait (50 s by default).
        let innodb_wait: u64 = db
            .query("SELECT @@innodb_lock_wait_timeout")
            .parse()
            .expect("innodb_lock_wait_timeout");
        assert!(
            gc_took < Duration::from_secs(innodb_wait),
            "{name}: gc waited out InnoDB's lock wait for the held row: {gc_took:?}"
        );
        assert_eq!(
            db.query(&format!(
                "SELECT data FROM fleet_sessions WHERE id = 'slowgc{name}'"
            )),
            "1",
            "{name}"
        );
    }
}
