//! The MySQL store through failovers, against real MariaDB servers with replication set up
//! by the harness: a host list whose primary dies and whose replica is promoted, and an
//! Aurora/RDS-style endpoint name moved from a primary made read-only to a promoted
//! replica. Recovery times are printed for the record, never asserted.

mod common;

use common::{id, increment, open_mysql};

use std::time::{Duration, Instant};

use fleet_core::{LeaseTerms, LockPolicy, SessionStore};
use fleet_harness::mariadb_server::{DATABASE, PASSWORD, USER};
use fleet_harness::paths::free_port;
use fleet_harness::{HostName, MariaDbServer};

const LOCKED: LockPolicy = LockPolicy {
    lease: Some(LeaseTerms {
        ttl: Duration::from_secs(30),
        wait_timeout: Duration::from_secs(2),
        renew_for: None,
    }),
};

fn stored(db: &MariaDbServer, sid: &str) -> String {
    db.query(&format!(
        "SELECT data FROM fleet_sessions WHERE id = '{sid}'"
    ))
}

/// Statements the server prepared: Fleet prepares its statements only on a connection to a
/// server that passed the read-only check, so a read-only node must see none.
fn prepared(db: &MariaDbServer) -> u64 {
    db.admin("SHOW GLOBAL STATUS LIKE 'Com_stmt_prepare'")
        .split('\t')
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_host_list_uses_the_writable_host_and_follows_a_promotion() {
    let mut primary = MariaDbServer::start_at("127.0.0.1", None, 1);
    let replica = MariaDbServer::start_at("127.0.0.1", None, 2);
    replica.replicate_from(&primary);
    // The replica comes first in the list: Fleet must pass over it, as read-only.
    let path = format!(
        "mysql://{USER}:{PASSWORD}@127.0.0.1:{},127.0.0.1:{}/{DATABASE}",
        replica.port, primary.port
    );
    let mut store = open_mysql(&path);
    let sid = id("hostlistfailover1");
    for expected in 1..=3 {
        assert_eq!(increment(&mut store, &sid, LOCKED).unwrap(), expected);
    }
    assert_eq!(stored(&primary, "hostlistfailover1"), "3");
    replica.wait_caught_up(&primary);
    assert_eq!(stored(&replica, "hostlistfailover1"), "3");
    assert_eq!(
        prepared(&replica),
        0,
        "Fleet prepared statements on the read-only replica"
    );

    // The primary dies. Until an orchestrator promotes the replica, no host is writable,
    // and requests fail with a message that says so for each host.
    primary.stop();
    let killed_at = Instant::now();
    let e = increment(&mut store, &sid, LOCKED).expect_err("no writable host");
    let message = e.to_string();
    assert!(
        message.contains("no host of the list is a writable primary")
            && message.contains("read-only"),
        "{message}"
    );
    assert!(!message.contains(PASSWORD), "{message}");
    assert_eq!(
        prepared(&replica),
        0,
        "a request wrote to the read-only replica"
    );

    std::thread::sleep(Duration::from_millis(300));
    replica.promote();
    let promoted_at = Instant::now();
    let n = loop {
        match increment(&mut store, &sid, LOCKED) {
            Ok(n) => break n,
            Err(e) => assert!(
                promoted_at.elapsed() < Duration::from_secs(10),
                "never followed the promotion: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    println!(
        "mysql host list: first success {:?} after the promotion ({:?} after the primary stopped)",
        promoted_at.elapsed(),
        killed_at.elapsed()
    );
    assert_eq!(n, 4, "the session went on from its replicated value");
    assert_eq!(stored(&replica, "hostlistfailover1"), "4");
}

#[test]
fn a_name_moved_from_a_read_only_primary_is_followed() {
    let port = free_port();
    let primary = MariaDbServer::start_at("127.0.0.2", Some(port), 1);
    let replica = MariaDbServer::start_at("127.0.0.3", Some(port), 2);
    replica.replicate_from(&primary);
    let name = HostName::add("mysql", "127.0.0.2");
    let mut store = open_mysql(&format!(
        "mysql://{USER}:{PASSWORD}@{}:{port}/{DATABASE}",
        name.name
    ));
    let sid = id("dnsfailovermysql1");
    assert_eq!(increment(&mut store, &sid, LOCKED).unwrap(), 1);
    assert_eq!(increment(&mut store, &sid, LOCKED).unwrap(), 2);
    replica.wait_caught_up(&primary);

    // The switch as Aurora or an orchestrator makes it: the old primary goes read-only, the
    // replica is promoted, the name moves. The worker's kept connection still reaches the
    // old primary: its lock+read is served there, but the write is refused, and the
    // request is told so (its change is not saved; nothing is written to a read-only node).
    primary.admin("SET GLOBAL read_only = 1");
    replica.promote();
    name.point_to("127.0.0.3");
    let switched_at = Instant::now();
    let e = increment(&mut store, &sid, LOCKED).expect_err("the old primary refuses the write");
    assert!(e.is_not_primary(), "{e}");
    assert!(e.to_string().contains(&name.name), "{e}");
    assert_eq!(stored(&primary, "dnsfailovermysql1"), "2");

    // The refusal ended that connection: the next request resolves the name again.
    assert_eq!(increment(&mut store, &sid, LOCKED).unwrap(), 3);
    println!(
        "mysql endpoint name: served again {:?} after the switch (one refused write per kept connection)",
        switched_at.elapsed()
    );
    assert_eq!(stored(&replica, "dnsfailovermysql1"), "3");
    assert_eq!(stored(&primary, "dnsfailovermysql1"), "2");

    // A worker that connects while the name still points at the read-only node is refused
    // at connect, before it takes any lock there.
    name.point_to("127.0.0.2");
    let mut late = open_mysql(&format!(
        "mysql://{USER}:{PASSWORD}@{}:{port}/{DATABASE}",
        name.name
    ));
    let e = late.connect().expect_err("read-only at connect");
    assert!(
        e.is_not_primary() && e.to_string().contains("read-only"),
        "{e}"
    );
}
