//! Memory safety of the FFI layer: PHP under valgrind (with PHP's own allocator off, so its
//! allocations are tracked too) runs every session hook and failure path many times.

use std::process::Command;

use fleet_harness::paths::{extension, repo_root};
use fleet_harness::{MariaDbServer, RedisCluster, RedisServer};

#[test]
fn session_hooks_have_no_memory_errors_or_leaks() {
    let redis = RedisServer::start();
    run_under_valgrind(&format!("{}?prefix=vg:", redis.url()));
}

#[test]
fn session_hooks_have_no_memory_errors_or_leaks_on_mysql() {
    let db = MariaDbServer::start();
    run_under_valgrind(&db.save_path("table=vg_sessions"));
}

/// On a cluster, with a replica acknowledgement no replica can give: the routing code, and
/// the warning raised after a successful write.
#[test]
fn session_hooks_have_no_memory_errors_or_leaks_on_a_cluster() {
    let cluster = RedisCluster::start(3, 0);
    run_under_valgrind(&cluster.save_path("prefix=vg:&wait_replicas=1&wait_timeout=0.01"));
}

/// Error handlers that call session_abort(), session_write_close(), session_destroy() or
/// session_start() while Fleet reports a problem from a hook: PHP frees the session the
/// reporting hook was using, so any use of it after the message shows up here.
#[test]
fn error_handlers_that_reenter_the_session_module_cause_no_memory_errors() {
    let redis = RedisServer::start();
    let expected = "handled: session id rejected:\nhandled: session id rejected:\nhandled: session vgheld… waited\nhandled: session vgheld… waited\nhandled: cannot connect to\ndone";
    run_script_under_valgrind(
        "reentry.php",
        &format!("{}?prefix=vgre:", redis.url()),
        expected,
    );
}

#[test]
fn error_handlers_that_reenter_the_session_module_cause_no_memory_errors_on_mysql() {
    let db = MariaDbServer::start();
    let expected = "handled: session id rejected:\nhandled: session id rejected:\nhandled: session vgheld… waited\nhandled: session vgheld… waited\nhandled: cannot connect to\ndone";
    run_script_under_valgrind("reentry.php", &db.save_path("table=vg_reentry"), expected);
}

/// Merge mode: conditional writes refused and merged, conflicts and their notices, a write
/// dropped after a logout, tombstones, the read's refresh (Redis and MariaDB).
#[test]
fn merge_mode_has_no_memory_errors_or_leaks() {
    let redis = RedisServer::start();
    run_script_under_valgrind(
        "merge_cycle.php",
        &format!("{}?prefix=vgm:", redis.url()),
        "done",
    );
    let db = MariaDbServer::start();
    run_script_under_valgrind("merge_cycle.php", &db.save_path("table=vg_merge"), "done");
}

fn run_under_valgrind(save_path: &str) {
    run_script_under_valgrind("session_cycle.php", save_path, "done");
}

fn run_script_under_valgrind(script: &str, save_path: &str, expected: &str) {
    let log = tempfile::NamedTempFile::new().expect("temp file");
    let output = Command::new("valgrind")
        .args([
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect",
            "--error-exitcode=9",
        ])
        .arg(format!("--log-file={}", log.path().display()))
        .args([
            "php",
            "-n",
            "-d",
            "output_buffering=1",
            "-d",
            "session.use_cookies=0",
            "-d",
        ])
        .arg(format!("extension={}", extension().display()))
        .arg(repo_root().join("harness/scripts").join(script))
        .env("USE_ZEND_ALLOC", "0")
        .env("ZEND_DONT_UNLOAD_MODULES", "1")
        .env("FLEET_SAVE_PATH", save_path)
        .env("FLEET_EXT", extension())
        .output()
        .expect("valgrind runs (installed by scripts/setup.sh)");
    let report = std::fs::read_to_string(log.path()).unwrap_or_default();
    let summary: Vec<&str> = report
        .lines()
        .filter(|l| {
            l.contains("ERROR SUMMARY")
                || l.contains("definitely lost")
                || l.contains("indirectly lost")
        })
        .collect();
    println!("{}", summary.join("\n"));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        expected,
        "the script ran to the end"
    );
    assert!(
        output.status.success(),
        "valgrind found errors or leaks:\n{report}"
    );
    assert!(report.contains("ERROR SUMMARY: 0 errors"), "{report}");
}
