//! Runs the `.phpt` tests in `php-tests/` with PHP's own run-tests.php against the built
//! extension and a real Redis, and fails if any test fails, leaks, or is skipped.

use std::process::Command;

use fleet_harness::paths::{extension, repo_root, run_tests_php};
use fleet_harness::RedisServer;

#[test]
fn phpt_suite_passes() {
    let redis = RedisServer::start();
    let ext = extension();
    let output = Command::new("php")
        .arg(run_tests_php())
        .args(["-n", "-q", "-j2", "--show-diff", "-p"])
        .arg(which_php())
        .arg("-d")
        .arg(format!("extension={}", ext.display()))
        // As PHP's own session tests do: no cookies or cache headers in the CLI, and output
        // buffered so printing does not count as "headers sent".
        .args(["-d", "output_buffering=1", "-d", "session.use_cookies=0", "-d", "session.cache_limiter="])
        .arg(repo_root().join("php-tests"))
        .env("NO_INTERACTION", "1")
        .env("REPORT_EXIT_STATUS", "1")
        .env("FLEET_REDIS_PORT", redis.port.to_string())
        .env("FLEET_REDIS_SOCKET", redis.socket_path())
        .env("FLEET_EXT", &ext)
        .output()
        .expect("run-tests.php runs (php8.2-dev installed?)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    let count = |label: &str| -> usize {
        stdout
            .lines()
            .find(|l| l.starts_with(label))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let files = std::fs::read_dir(repo_root().join("php-tests"))
        .map(|d| d.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "phpt")).count())
        .unwrap_or(0);
    assert_eq!(count("Tests passed"), files, "every one of the {files} .phpt files must run and pass");
    assert_eq!(count("Tests failed"), 0, "failed .phpt tests (diffs above)");
    assert_eq!(count("Tests skipped"), 0, "skipped .phpt tests hide failures (see SKIP lines above)");
    assert_eq!(count("Tests borked"), 0, "borked .phpt tests");
    assert!(output.status.success(), "run-tests.php exited with {}", output.status);
}

fn which_php() -> String {
    // run-tests.php runs the tests with this binary; the same one the extension was built for.
    std::env::var("TEST_PHP_EXECUTABLE").unwrap_or_else(|_| "/usr/bin/php8.2".to_owned())
}
