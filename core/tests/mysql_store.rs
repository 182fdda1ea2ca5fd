#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests: a panic here fails the test
//! The MySQL store against a real `mariadbd` started for each test.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use fleet_core::{create_table_sql, schema_script, BackendConfig, MySqlStore};
use fleet_core::{
    parse_save_path, ErrorKind, LeaseTerms, LockPolicy, SessionId, SessionStore, StoreConfig,
    Timeouts,
};
use fleet_harness::mariadb_server::{DATABASE, PASSWORD};
use fleet_harness::{Blackhole, MariaDbServer};

const LIFETIME: Duration = Duration::from_secs(1440);
const UNLOCKED: LockPolicy = LockPolicy { lease: None };

/// Every way Fleet can lock a session on MySQL, as a name and the save_path options that
/// select it: named locks through the stored procedures or plain statements, and row locks.
const LOCKING: [(&str, &str); 3] = [
    ("procedures", "lock=advisory&procedures=1"),
    ("statements", "lock=advisory&procedures=0"),
    ("row", "lock=row"),
];

fn open(save_path: &str) -> MySqlStore {
    match parse_save_path(save_path).expect("save_path") {
        StoreConfig {
            common,
            backend: BackendConfig::MySql(c),
        } => MySqlStore::new(&c, common.connection(Timeouts::default())).expect("store"),
        other => panic!("not mysql: {other:?}"),
    }
}

fn id(s: &str) -> SessionId {
    SessionId::parse(s.as_bytes()).expect("valid id")
}

fn locked(wait_ms: u64) -> LockPolicy {
    LockPolicy {
        lease: Some(LeaseTerms {
            ttl: Duration::from_secs(30),
            wait_timeout: Duration::from_millis(wait_ms),
            renew_for: None,
        }),
    }
}

/// Which connection holds the named lock of session `sid` (empty if none).
fn lock_holder(db: &MariaDbServer, sid: &str) -> String {
    lock_holder_in(db, "fleet_sessions", sid)
}

fn lock_holder_in(db: &MariaDbServer, table: &str, sid: &str) -> String {
    db.admin(&format!(
        "SELECT IFNULL(IS_USED_LOCK(CONCAT('fleet:', SHA1('{DATABASE}.{table}:{sid}'))), '')"
    ))
}

#[test]
fn advisory_round_trip_creates_the_table_and_holds_a_named_lock() {
    let db = MariaDbServer::start();
    let mut s = open(&db.save_path(""));
    let sid = id("abc123");
    let read = s.lock_and_read(&sid, locked(1_000)).unwrap();
    assert_eq!(read.data, None, "a new session reads as absent");
    assert_ne!(
        lock_holder(&db, "abc123"),
        "",
        "the named lock is held while the request runs"
    );
    // The server's clock before the write and after it bound the expiry exactly.
    let before: i64 = db.query("SELECT UNIX_TIMESTAMP()").parse().unwrap();
    s.write_and_unlock(&sid, b"n|i:1;", LIFETIME, read.lock.as_ref())
        .unwrap();
    assert_eq!(lock_holder(&db, "abc123"), "", "write releases the lock");
    let row =
        db.query("SELECT data, expires, UNIX_TIMESTAMP() FROM fleet_sessions WHERE id = 'abc123'");
    let fields: Vec<&str> = row.split('\t').collect();
    assert_eq!(fields[0], "n|i:1;");
    let expires: i64 = fields[1].parse().unwrap();
    let after: i64 = fields[2].parse().unwrap();
    let lifetime = LIFETIME.as_secs() as i64;
    assert!(
        (before + lifetime..=after + lifetime).contains(&expires),
        "lifetime is session.gc_maxlifetime: expires {expires}, written between {before} and {after}"
    );
    let ddl = db.query("SHOW CREATE TABLE fleet_sessions");
    assert!(
        ddl.contains("longblob") && ddl.contains("KEY `expires`"),
        "{ddl}"
    );

    let read = s.lock_and_read(&sid, UNLOCKED).unwrap();
    assert_eq!(read.data.as_deref(), Some(&b"n|i:1;"[..]));
    assert!(read.lock.is_none());
    assert!(s.exists(&sid).unwrap());
    assert!(!s.exists(&id("nope")).unwrap());
}

/// Server-wide counts of (`CALL`s, prepared statements executed): each prepared execution
/// is one round trip of a request. The test's own queries use the text protocol.
fn executed(db: &MariaDbServer) -> (u64, u64) {
    let out = db.admin(
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS
         WHERE VARIABLE_NAME IN ('COM_CALL_PROCEDURE', 'COM_STMT_EXECUTE') ORDER BY VARIABLE_NAME",
    );
    let counts: Vec<u64> = out.lines().map(|l| l.trim().parse().unwrap()).collect();
    (counts[0], counts[1])
}

/// Locks, reads and writes `sid` through a new store on `save_path`.
fn one_request(save_path: &str, sid: &str, data: &[u8]) {
    let mut s = open(save_path);
    let sid = id(sid);
    let read = s.lock_and_read(&sid, locked(1_000)).unwrap();
    assert!(read.lock.is_some());
    s.write_and_unlock(&sid, data, LIFETIME, read.lock.as_ref())
        .unwrap();
}

fn routines(db: &MariaDbServer) -> String {
    db.admin(&format!(
        "SELECT GROUP_CONCAT(CONCAT(ROUTINE_NAME, ':', SECURITY_TYPE) ORDER BY ROUTINE_NAME)
         FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{DATABASE}'"
    ))
}

#[test]
fn a_locked_request_is_two_round_trips_with_the_procedures_and_four_without() {
    let db = MariaDbServer::start();
    for (options, calls, round_trips) in [("", 2, 2), ("procedures=0", 0, 4)] {
        let mut s = open(&db.save_path(options));
        s.connect().unwrap();
        let sid = id(&format!("counted{calls}"));
        let before = executed(&db);
        let read = s.lock_and_read(&sid, locked(1_000)).unwrap();
        s.write_and_unlock(&sid, b"x", LIFETIME, read.lock.as_ref())
            .unwrap();
        let after = executed(&db);
        assert_eq!(
            (after.0 - before.0, after.1 - before.1),
            (calls, round_trips),
            "{options:?}: (CALLs, round trips) of lock+read+write+unlock"
        );
        // lazy_write's path: lock, read, extend the expiry, unlock.
        let read = s.lock_and_read(&sid, locked(1_000)).unwrap();
        s.touch_and_unlock(&sid, LIFETIME, read.lock.as_ref())
            .unwrap();
        let again = executed(&db);
        assert_eq!(
            (again.0 - after.0, again.1 - after.1),
            (calls, round_trips),
            "{options:?}: (CALLs, round trips) of lock+read+touch+unlock"
        );
    }
    assert_eq!(
        routines(&db),
        "fleet1_fleet_sessions_read:INVOKER,fleet1_fleet_sessions_touch:INVOKER,fleet1_fleet_sessions_write:INVOKER",
        "procedures=auto (the default) created them, running with the caller's rights"
    );
}

#[test]
fn procedures_auto_uses_statements_where_the_procedures_cannot_be_used() {
    let db = MariaDbServer::start();
    db.query(&schema_script("dba_made", false));
    db.admin("CREATE USER 'dml'@'127.0.0.1' IDENTIFIED BY 'dml-pw'; GRANT SELECT, INSERT, UPDATE, DELETE ON fleet.dba_made TO 'dml'@'127.0.0.1';");
    let path = format!(
        "mysql://dml:dml-pw@127.0.0.1:{}/fleet?table=dba_made",
        db.port
    );
    // No procedures, and no right to create them.
    one_request(&path, "a", b"without");
    assert_eq!(routines(&db), "NULL", "nothing was created");
    // Procedures a DBA created, but no right to execute them.
    db.query(&schema_script("dba_made", true));
    one_request(&path, "b", b"not-executable");
    // Executable: used.
    db.admin("GRANT EXECUTE ON fleet.* TO 'dml'@'127.0.0.1'");
    let before = executed(&db);
    one_request(&path, "c", b"with");
    assert_eq!(executed(&db).0 - before.0, 2, "two CALLs once allowed");
    assert_eq!(
        db.query("SELECT GROUP_CONCAT(id, '=', data ORDER BY id) FROM dba_made"),
        "a=without,b=not-executable,c=with"
    );

    // procedures=1 insists, and says how to make them; no lock is left behind.
    db.query(&create_table_sql("bare"));
    let mut s = open(&db.save_path("table=bare&create_table=0&procedures=1"));
    let err = s.lock_and_read(&id("d"), locked(1_000)).unwrap_err();
    assert!(err.kind() == ErrorKind::Schema, "{err}");
    assert!(
        err.to_string().contains("fleetctl schema --table bare"),
        "{err}"
    );
    assert_eq!(
        lock_holder_in(&db, "bare", "d"),
        "",
        "no named lock is held"
    );
}

#[test]
fn procedures_and_statements_exclude_each_other() {
    let db = MariaDbServer::start();
    let mut with = open(&db.save_path("procedures=1"));
    let mut without = open(&db.save_path("procedures=0"));
    let sid = id("shared");
    let held = with.lock_and_read(&sid, locked(1_000)).unwrap();
    let err = without.lock_and_read(&sid, locked(300)).unwrap_err();
    assert!(err.kind() == ErrorKind::LockWaitTimeout, "{err}");
    with.write_and_unlock(&sid, b"one", LIFETIME, held.lock.as_ref())
        .unwrap();
    let held = without.lock_and_read(&sid, locked(1_000)).unwrap();
    assert_eq!(held.data.as_deref(), Some(&b"one"[..]));
    let err = with.lock_and_read(&sid, locked(300)).unwrap_err();
    assert!(err.kind() == ErrorKind::LockWaitTimeout, "{err}");
    without
        .write_and_unlock(&sid, b"two", LIFETIME, held.lock.as_ref())
        .unwrap();
    let read = with.lock_and_read(&sid, locked(1_000)).unwrap();
    assert_eq!(read.data.as_deref(), Some(&b"two"[..]));
    with.unlock(&sid, read.lock.as_ref().unwrap()).unwrap();
}

#[test]
fn a_statement_failing_inside_a_procedure_releases_the_lock() {
    let db = MariaDbServer::start();
    let mut s = open(&db.save_path("procedures=1"));
    let sid = id("doomed");
    let read = s.lock_and_read(&sid, locked(1_000)).unwrap();
    assert_ne!(lock_holder(&db, "doomed"), "");
    db.query("RENAME TABLE fleet_sessions TO moved_away");
    let err = s
        .write_and_unlock(&sid, b"x", LIFETIME, read.lock.as_ref())
        .unwrap_err();
    assert!(
        err.kind() == ErrorKind::Schema && err.to_string().contains("fleet_sessions"),
        "{err}"
    );
    assert_eq!(
        lock_holder(&db, "doomed"),
        "",
        "the failed write released the lock"
    );
    // The same for a read that fails after the lock was taken.
    let err = s.lock_and_read(&sid, locked(1_000)).unwrap_err();
    assert!(err.kind() == ErrorKind::Schema, "{err}");
    assert_eq!(
        lock_holder(&db, "doomed"),
        "",
        "the failed read released the lock"
    );
}

#[test]
fn binary_and_large_data_survive() {
    let db = MariaDbServer::start();
    for (mode, options) in LOCKING {
        let mut s = open(&db.save_path(options));
        let sid = id(&format!("bin-{mode}"));
        let data: Vec<u8> = (0..4_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let read = s.lock_and_read(&sid, locked(1_000)).unwrap();
        s.write_and_unlock(&sid, &data, LIFETIME, read.lock.as_ref())
            .unwrap();
        let read = s.lock_and_read(&sid, locked(1_000)).unwrap();
        assert!(
            read.data.as_deref() == Some(&data[..]),
            "{mode}: 4 MB of binary data read back intact"
        );
        s.unlock(&sid, read.lock.as_ref().unwrap()).unwrap();
    }
}

#[test]
fn expired_rows_are_never_returned_and_gc_deletes_them_in_batches() {
    let db = MariaDbServer::start();
    let mut s = open(&db.save_path(""));
    s.connect().unwrap();
    db.query(
        "INSERT INTO fleet_sessions (id, data, expires) SELECT CONCAT('old', seq), 'x', UNIX_TIMESTAMP() - 10 FROM seq_1_to_2500;
         INSERT INTO fleet_sessions (id, data, expires) VALUES ('live', 'y', UNIX_TIMESTAMP() + 100);",
    );
    let read = s.lock_and_read(&id("old7"), locked(1_000)).unwrap();
    assert_eq!(read.data, None, "an expired row reads as no session");
    s.unlock(&id("old7"), read.lock.as_ref().unwrap()).unwrap();
    assert!(!s.exists(&id("old7")).unwrap());
    assert_eq!(s.gc(LIFETIME).unwrap(), 2500);
    assert_eq!(
        db.query("SELECT GROUP_CONCAT(id) FROM fleet_sessions"),
        "live"
    );
    assert_eq!(s.gc(LIFETIME).unwrap(), 0);
}

#[test]
fn touch_moves_only_the_expiry() {
    let db = MariaDbServer::start();
    for (mode, options) in LOCKING {
        touch_moves_only_the_expiry_in(&db, mode, options);
    }
}

fn touch_moves_only_the_expiry_in(db: &MariaDbServer, mode: &str, options: &str) {
    let mut s = open(&db.save_path(options));
    let sid = id(&format!("lazy-{mode}"));
    let read = s.lock_and_read(&sid, locked(1_000)).unwrap();
    s.write_and_unlock(&sid, b"a|i:1;", Duration::from_secs(10), read.lock.as_ref())
        .unwrap();
    let read = s.lock_and_read(&sid, locked(1_000)).unwrap();
    s.touch_and_unlock(&sid, Duration::from_secs(5000), read.lock.as_ref())
        .unwrap();
    let row = db.query(&format!(
        "SELECT data, expires - UNIX_TIMESTAMP() > 4000 FROM fleet_sessions WHERE id = 'lazy-{mode}'"
    ));
    assert_eq!(row, "a|i:1;\t1", "{mode}");
    assert_eq!(
        lock_holder(db, &format!("lazy-{mode}")),
        "",
        "{mode}: touch releases the lock"
    );
}

#[test]
fn destroy_deletes_and_releases() {
    let db = MariaDbServer::start();
    for (mode, options) in LOCKING {
        let mut s = open(&db.save_path(options));
        let sid = id(&format!("gone-{mode}"));
        let read = s.lock_and_read(&sid, locked(1_000)).unwrap();
        s.write_and_unlock(&sid, b"x", LIFETIME, read.lock.as_ref())
            .unwrap();
        let read = s.lock_and_read(&sid, locked(1_000)).unwrap();
        s.destroy(&sid, read.lock.as_ref()).unwrap();
        assert_eq!(
            db.query(&format!(
                "SELECT COUNT(*) FROM fleet_sessions WHERE id = 'gone-{mode}'"
            )),
            "0"
        );
        let mut other = open(&db.save_path(options));
        let read = other
            .lock_and_read(&sid, locked(500))
            .expect("the lock was released by destroy");
        other.unlock(&sid, read.lock.as_ref().unwrap()).unwrap();
    }
}

fn options_of(mode: &str) -> &'static str {
    match LOCKING.iter().find(|(name, _)| *name == mode) {
        Some((_, options)) => options,
        None => panic!("no locking mode {mode}"),
    }
}

/// Holds a session in one thread for `hold`, while another asks for it: the waiter gets it
/// right after the holder writes, and sees the holder's data.
fn waiter_is_served_after_release(mode: &str) {
    let db = MariaDbServer::start();
    let path = db.save_path(options_of(mode));
    let sid = id("contended");
    let mut holder = open(&path);
    let read = holder.lock_and_read(&sid, locked(1_000)).unwrap();
    let (path2, sid2) = (path.clone(), sid.clone());
    let waiter = thread::spawn(move || {
        let mut s = open(&path2);
        let start = Instant::now();
        let read = s.lock_and_read(&sid2, locked(5_000)).unwrap();
        let waited = start.elapsed();
        s.unlock(&sid2, read.lock.as_ref().unwrap()).unwrap();
        (read.data, waited, Instant::now())
    });
    // The sleep gives the waiter time to start waiting; the test does not depend on it.
    thread::sleep(Duration::from_millis(1_500));
    let released_at = Instant::now();
    holder
        .write_and_unlock(&sid, b"by-holder", LIFETIME, read.lock.as_ref())
        .unwrap();
    let (data, waited, served_at) = waiter.join().unwrap();
    assert_eq!(
        data.as_deref(),
        Some(&b"by-holder"[..]),
        "{mode}: the waiter reads what the holder wrote"
    );
    assert!(
        served_at >= released_at,
        "{mode}: the waiter was served only after the release ({waited:?})"
    );
    eprintln!(
        "{mode}: waited {waited:?}; served {:?} after the release",
        released_at.elapsed()
    );
}

#[test]
fn procedures_waiter_is_served_after_release() {
    waiter_is_served_after_release("procedures");
}

#[test]
fn statements_waiter_is_served_after_release() {
    waiter_is_served_after_release("statements");
}

#[test]
fn row_waiter_is_served_after_release() {
    waiter_is_served_after_release("row");
}

/// A holder whose connection dies without releasing (a killed worker) frees the session at
/// once: the server ends its named lock or rolls back its transaction.
fn dead_holder_frees_the_session(mode: &str) {
    let db = MariaDbServer::start();
    let path = db.save_path(options_of(mode));
    let sid = id("crashed");
    let mut holder = open(&path);
    let read = holder.lock_and_read(&sid, locked(1_000)).unwrap();
    assert!(read.lock.is_some());
    let (path2, sid2) = (path.clone(), sid.clone());
    let waiter = thread::spawn(move || {
        let mut s = open(&path2);
        let read = s.lock_and_read(&sid2, locked(10_000));
        (read.map(|r| r.lock.is_some()), Instant::now())
    });
    thread::sleep(Duration::from_millis(500));
    let conn_id = db.admin("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'fleet' ORDER BY TIME DESC, ID LIMIT 1");
    let killed_at = Instant::now();
    db.admin(&format!("KILL {conn_id}"));
    let (got, at) = waiter.join().unwrap();
    assert!(got.unwrap(), "{mode}: the waiter got the lock");
    let after = at.duration_since(killed_at);
    eprintln!("{mode}: waiter got the session {after:?} after the holder's connection died");
    // The waiter gives up after 10 s, the lease lasts 30 s: getting the lock at all means the
    // server freed it when the connection died, not the lease's expiry.
    let err = holder
        .write_and_unlock(&sid, b"late", LIFETIME, read.lock.as_ref())
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::ConnectionLost | ErrorKind::LockConnectionLost
        ),
        "{mode}: a write after losing the lock is refused: {err}"
    );
    assert_eq!(
        db.query("SELECT COUNT(*) FROM fleet_sessions WHERE data = 'late'"),
        "0"
    );
}

#[test]
fn procedures_dead_holder_frees_the_session() {
    dead_holder_frees_the_session("procedures");
}

#[test]
fn statements_dead_holder_frees_the_session() {
    dead_holder_frees_the_session("statements");
}

#[test]
fn row_dead_holder_frees_the_session() {
    dead_holder_frees_the_session("row");
}

#[test]
fn lock_wait_timeout_in_every_mode() {
    let db = MariaDbServer::start();
    for (mode, options) in LOCKING {
        // A short command timeout makes the 2.5 s wait span several server-side waits.
        let path = db.save_path(&format!("{options}&timeout=0.5"));
        let sid = id(&format!("busy-{mode}"));
        let mut holder = open(&path);
        let held = holder.lock_and_read(&sid, locked(1_000)).unwrap();
        let mut waiter = open(&path);
        let start = Instant::now();
        let err = waiter.lock_and_read(&sid, locked(2_500)).unwrap_err();
        let waited = start.elapsed();
        assert!(err.kind() == ErrorKind::LockWaitTimeout, "{mode}: {err}");
        assert!(
            err.to_string().contains("did not finish within 2.5s"),
            "{err}"
        );
        // The deadline is the floor; a wait that never ends is caught by nextest's timeout.
        assert!(waited >= Duration::from_millis(2_500), "{mode}: {waited:?}");
        // The waiter's connection is still good, and the holder can still write.
        holder
            .write_and_unlock(&sid, b"kept", LIFETIME, held.lock.as_ref())
            .unwrap();
        let read = waiter.lock_and_read(&sid, locked(1_000)).unwrap();
        assert_eq!(read.data.as_deref(), Some(&b"kept"[..]), "{mode}");
        waiter.unlock(&sid, read.lock.as_ref().unwrap()).unwrap();
    }
}

/// Threads hammer one session with read-increment-write; with locking no update is lost.
fn concurrent_increments(save_path: &str, threads: usize, per_thread: usize) -> u64 {
    let sid = id("counter");
    let barrier = Arc::new(Barrier::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (path, sid, barrier) = (save_path.to_owned(), sid.clone(), barrier.clone());
            thread::spawn(move || {
                let mut s = open(&path);
                barrier.wait();
                for _ in 0..per_thread {
                    let read = s.lock_and_read(&sid, locked(30_000)).unwrap();
                    let n: u64 = read
                        .data
                        .map(|d| String::from_utf8(d).unwrap().parse().unwrap())
                        .unwrap_or(0);
                    s.write_and_unlock(
                        &sid,
                        (n + 1).to_string().as_bytes(),
                        LIFETIME,
                        read.lock.as_ref(),
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let mut s = open(save_path);
    let read = s.lock_and_read(&sid, UNLOCKED).unwrap();
    String::from_utf8(read.data.unwrap())
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn no_increment_is_lost_in_any_lock_mode() {
    let db = MariaDbServer::start();
    for (mode, options) in LOCKING {
        let path = db.save_path(&format!("table=t_{mode}&{options}"));
        assert_eq!(concurrent_increments(&path, 8, 50), 400, "{mode}");
    }
}

#[test]
fn lock_none_takes_no_lock() {
    let db = MariaDbServer::start();
    let mut s = open(&db.save_path("lock=none"));
    let sid = id("free");
    let read = s.lock_and_read(&sid, s.lock_policy(locked(1_000))).unwrap();
    assert!(read.lock.is_none());
    assert_eq!(lock_holder(&db, "free"), "");
    s.write_and_unlock(&sid, b"v", LIFETIME, None).unwrap();
    assert_eq!(
        db.query("SELECT data FROM fleet_sessions WHERE id = 'free'"),
        "v"
    );
}

#[test]
fn new_session_in_row_mode_closed_unwritten_leaves_no_row() {
    let db = MariaDbServer::start();
    let mut s = open(&db.save_path("lock=row"));
    let sid = id("fresh");
    let read = s.lock_and_read(&sid, locked(1_000)).unwrap();
    assert_eq!(read.data, None);
    s.unlock(&sid, read.lock.as_ref().unwrap()).unwrap();
    assert_eq!(db.query("SELECT COUNT(*) FROM fleet_sessions"), "0");
}

#[test]
fn reconnects_after_a_server_restart() {
    let mut db = MariaDbServer::start();
    let mut s = open(&db.save_path(""));
    let sid = id("survivor");
    let read = s.lock_and_read(&sid, locked(1_000)).unwrap();
    s.write_and_unlock(&sid, b"kept", LIFETIME, read.lock.as_ref())
        .unwrap();
    db.stop();
    db.start_again();
    let read = s
        .lock_and_read(&sid, locked(1_000))
        .expect("a dead pooled connection is replaced");
    assert_eq!(read.data.as_deref(), Some(&b"kept"[..]));
    s.unlock(&sid, read.lock.as_ref().unwrap()).unwrap();
}

#[test]
fn dead_and_hung_servers_fail_fast_with_the_endpoint_and_no_password() {
    let dead_port = fleet_harness::paths::free_port();
    let mut s = open(&format!(
        "mysql://fleet:{PASSWORD}@127.0.0.1:{dead_port}/fleet"
    ));
    let err = s.connect().unwrap_err();
    let msg = err.to_string();
    assert!(err.kind() == ErrorKind::Connect, "{msg}");
    assert!(
        msg.contains(&format!("127.0.0.1:{dead_port}")) && !msg.contains(PASSWORD),
        "{msg}"
    );

    let hole = Blackhole::start();
    let mut s = open(&format!(
        "mysql://fleet:{PASSWORD}@127.0.0.1:{}/fleet?timeout=0.5&connect_timeout=0.5",
        hole.port
    ));
    // A server that accepts and never answers: without the timeouts this would never return
    // (nextest's terminate-after catches that); no wall-clock bound is asserted here.
    let err = s.connect().unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::TimedOut | ErrorKind::Connect),
        "{err}"
    );
    assert!(!err.to_string().contains(PASSWORD));
}

#[test]
fn wrong_password_and_missing_table_say_what_to_fix() {
    let db = MariaDbServer::start();
    let mut s = open(&format!(
        "mysql://fleet:not-the-password@127.0.0.1:{}/fleet",
        db.port
    ));
    let err = s.connect().unwrap_err();
    let msg = err.to_string();
    assert!(err.kind() == ErrorKind::Auth, "{msg}");
    assert!(!msg.contains("not-the-password"), "{msg}");

    let mut s = open(&db.save_path("create_table=0&table=missing"));
    let err = s
        .lock_and_read(&id("x"), locked(1_000))
        .unwrap_err()
        .to_string();
    assert!(err.contains("fleetctl schema --table missing"), "{err}");

    // A user with only DML rights on a table the DBA made works (CREATE TABLE is skipped).
    db.query(&create_table_sql("dba_made"));
    db.admin("CREATE USER 'dml'@'127.0.0.1' IDENTIFIED BY 'dml-pw'; GRANT SELECT, INSERT, UPDATE, DELETE ON fleet.dba_made TO 'dml'@'127.0.0.1';");
    let mut s = open(&format!(
        "mysql://dml:dml-pw@127.0.0.1:{}/fleet?table=dba_made",
        db.port
    ));
    let read = s.lock_and_read(&id("y"), locked(1_000)).unwrap();
    s.write_and_unlock(&id("y"), b"ok", LIFETIME, read.lock.as_ref())
        .unwrap();
    assert_eq!(db.query("SELECT data FROM dba_made"), "ok");
}

#[test]
fn unix_socket() {
    let db = MariaDbServer::start();
    let mut s = open(&format!(
        "mysql://fleet:{PASSWORD}@/fleet?socket={}",
        db.socket_path().display()
    ));
    let sid = id("sock");
    let read = s.lock_and_read(&sid, locked(1_000)).unwrap();
    s.write_and_unlock(&sid, b"via-socket", LIFETIME, read.lock.as_ref())
        .unwrap();
    assert_eq!(db.query("SELECT data FROM fleet_sessions"), "via-socket");
}

#[test]
fn tls_with_a_trusted_ca_and_refusal_of_an_untrusted_certificate() {
    let db = MariaDbServer::start_tls();
    let ca = db.tls_ca_file().expect("test CA");
    let base = format!("mysql://fleet_tls:{PASSWORD}@127.0.0.1:{}/fleet", db.port);

    let mut s = open(&format!("{base}?tls=1&tls_ca_file={}", ca.display()));
    let sid = id("secure");
    let read = s
        .lock_and_read(&sid, locked(1_000))
        .expect("TLS with the test CA");
    s.write_and_unlock(&sid, b"over-tls", LIFETIME, read.lock.as_ref())
        .unwrap();
    let cipher = db.admin("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'SSL_ACCEPTS'");
    assert_ne!(cipher, "0", "the server accepted TLS connections");

    let mut s = open(&format!("{base}?tls=1&tls_verify=0"));
    s.connect().expect("tls_verify=0 skips verification");

    let mut s = open(&format!("{base}?tls=1"));
    let err = s.connect().unwrap_err();
    assert!(
        err.kind() == ErrorKind::Tls,
        "an untrusted certificate is refused: {err}"
    );
    assert!(err.to_string().contains("TLS with"), "{err}");

    let mut s = open(&base);
    let err = s.connect().unwrap_err();
    assert!(
        err.kind() == ErrorKind::Auth,
        "the user requires TLS: {err}"
    );
}
