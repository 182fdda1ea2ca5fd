//! Runs the `.phpt` tests in `php-tests/` with PHP's own run-tests.php against the built
//! extension, once per backend (a real Redis, a real Redis Cluster, a real MariaDB), and
//! fails if any test fails, leaks, or is skipped other than a test written for another
//! backend.

use std::process::Command;

use fleet_harness::mariadb_server::PASSWORD;
use fleet_harness::paths::{extension, fleetctl, repo_root, run_tests_php};
use fleet_harness::{MariaDbServer, RedisCluster, RedisServer};

#[test]
fn phpt_suite_passes_on_redis() {
    let redis = RedisServer::start();
    run_suite(
        "redis",
        &[
            ("FLEET_PORT", redis.port.to_string()),
            ("FLEET_SOCKET", redis.socket_path().display().to_string()),
        ],
    );
}

#[test]
fn phpt_suite_passes_on_redis_cluster() {
    let cluster = RedisCluster::start(3, 0);
    run_suite(
        "cluster",
        &[
            ("FLEET_PORT", cluster.nodes[0].port.to_string()),
            ("FLEET_SEEDS", cluster.seeds()),
        ],
    );
}

#[test]
fn phpt_suite_passes_on_mysql() {
    let db = MariaDbServer::start();
    // As a DBA would: the table from `fleetctl schema` (Fleet would also create it itself).
    let ddl = Command::new(fleetctl())
        .arg("schema")
        .output()
        .expect("fleetctl runs");
    assert!(
        ddl.status.success(),
        "fleetctl schema: {}",
        String::from_utf8_lossy(&ddl.stderr)
    );
    db.query(&String::from_utf8_lossy(&ddl.stdout));
    run_suite(
        "mysql",
        &[
            ("FLEET_PORT", db.port.to_string()),
            ("FLEET_SOCKET", db.socket_path().display().to_string()),
            ("FLEET_MYSQL_PASSWORD", PASSWORD.to_owned()),
        ],
    );
}

fn run_suite(backend: &str, env: &[(&str, String)]) {
    let ext = extension();
    let dir = repo_root().join("php-tests");
    let output = Command::new("php")
        .arg(run_tests_php())
        .args(["-n", "-q", "-j2", "--show-diff", "-p"])
        .arg(which_php())
        .arg("-d")
        .arg(format!("extension={}", ext.display()))
        // As PHP's own session tests do: no cookies or cache headers in the CLI, and output
        // buffered so printing does not count as "headers sent".
        .args([
            "-d",
            "output_buffering=1",
            "-d",
            "session.use_cookies=0",
            "-d",
            "session.cache_limiter=",
        ])
        .arg(&dir)
        .env("NO_INTERACTION", "1")
        .env("REPORT_EXIT_STATUS", "1")
        .env("FLEET_BACKEND", backend)
        .env("FLEET_EXT", &ext)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run-tests.php runs (php-dev installed?)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    let count = |label: &str| fleet_harness::paths::run_tests_count(&stdout, label).unwrap_or(0);
    let tests: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "phpt"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    // A test written for some backends only says so with fleet_only('…', …) and skips
    // elsewhere.
    let for_other = fleet_harness::paths::phpt_for_other_backends(&tests, backend);
    let files = tests.len();
    assert_eq!(
        count("Tests passed"),
        files - for_other,
        "{backend}: every .phpt file not written for another backend must run and pass"
    );
    assert_eq!(
        count("Tests failed"),
        0,
        "{backend}: failed .phpt tests (diffs above)"
    );
    assert_eq!(
        count("Tests skipped"),
        for_other,
        "{backend}: only the {for_other} tests written for another backend may skip (see SKIP lines above)"
    );
    assert_eq!(count("Tests borked"), 0, "{backend}: borked .phpt tests");
    assert!(
        output.status.success(),
        "run-tests.php exited with {}",
        output.status
    );
}

fn which_php() -> String {
    // run-tests.php runs the tests with this binary; the same one the extension was built for.
    std::env::var("TEST_PHP_EXECUTABLE")
        .unwrap_or_else(|_| fleet_harness::php::binary().display().to_string())
}
