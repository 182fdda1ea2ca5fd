//! `fleetctl` against real servers.

use std::process::Command;

use fleet_harness::paths::fleetctl;
use fleet_harness::{MariaDbServer, RedisServer};

fn fleetctl_gc(store: &str) -> (bool, String) {
    let out = Command::new(fleetctl())
        .args(["gc", "--store", store])
        .output()
        .expect("fleetctl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn fleetctl_gc_deletes_expired_sessions_and_says_how_many() {
    let db = MariaDbServer::start();
    // The table as Fleet makes it, then 2500 expired rows and one live one.
    let ddl = Command::new(fleetctl())
        .arg("schema")
        .output()
        .expect("fleetctl schema");
    db.query(&String::from_utf8_lossy(&ddl.stdout));
    db.query(
        "INSERT INTO fleet_sessions (id, data, expires) SELECT CONCAT('old', seq), '', 1 FROM seq_1_to_2500;
         INSERT INTO fleet_sessions VALUES ('live', 'n|i:1;', UNIX_TIMESTAMP() + 600);",
    );
    let (ok, text) = fleetctl_gc(&db.save_path(""));
    assert!(ok, "{text}");
    assert!(text.contains("deleted 2500 expired sessions"), "{text}");
    assert!(
        !text.contains(fleet_harness::mariadb_server::PASSWORD),
        "{text}"
    );
    assert_eq!(db.query("SELECT id FROM fleet_sessions"), "live");

    let (ok, text) = fleetctl_gc(&format!("mysql://fleet@127.0.0.1:{}/fleet", db.port));
    assert!(!ok, "a refused password fails: {text}");
    assert!(text.contains("refused the credentials"), "{text}");

    let redis = RedisServer::start();
    let (ok, text) = fleetctl_gc(&redis.url());
    assert!(ok && text.contains("nothing to delete"), "{text}");
}
