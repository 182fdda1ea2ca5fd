//! Locations in the repository and on the system.

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

/// The built extension: `$FLEET_EXT` if set, else `target/<profile>/libfleet.so` for the
/// first profile that has one (debug first; tests build it with `cargo build -p fleet`).
pub fn extension() -> PathBuf {
    if let Some(path) = std::env::var_os("FLEET_EXT") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let candidates = [
        target.join("debug/libfleet.so"),
        target.join("release/libfleet.so"),
    ];
    match candidates.iter().find(|p| p.exists()) {
        Some(p) => p.clone(),
        None => panic!("the fleet extension is not built: run `cargo build -p fleet` first (looked for {candidates:?})"),
    }
}

/// The `fleetctl` binary (`cargo build -p fleetctl`), next to the extension.
pub fn fleetctl() -> PathBuf {
    match extension().parent() {
        Some(dir) if dir.join("fleetctl").exists() => dir.join("fleetctl"),
        _ => repo_root().join("target/debug/fleetctl"),
    }
}

/// PHP's own test runner, from php-dev (see [`crate::php::run_tests`]).
pub fn run_tests_php() -> PathBuf {
    crate::php::run_tests()
}

/// The PHP pages served in end-to-end tests, benchmarks and the demo.
pub fn www() -> PathBuf {
    repo_root().join("harness/www")
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// Waits until something accepts TCP connections on `port`, or panics after `limit`.
pub fn wait_for_port(port: u16, limit: std::time::Duration, what: &str) {
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > limit {
            panic!("{what} did not start listening on 127.0.0.1:{port} within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// How many of the `.phpt` sources `tests` are written for other backends than `backend`
/// (their SKIPIF calls `fleet_only('…', …)` without it), and so skip on it.
pub fn phpt_for_other_backends(tests: &[String], backend: &str) -> usize {
    tests
        .iter()
        .filter(|t| {
            t.split("fleet_only(").nth(1).is_some_and(|call| {
                let arguments = call.split(')').next().unwrap_or_default();
                !arguments.contains(&format!("'{backend}'"))
            })
        })
        .count()
}

/// A count from run-tests.php's summary (`label` such as "Tests passed"), or `None` if the
/// report has no such line.
pub fn run_tests_count(report: &str, label: &str) -> Option<usize> {
    report
        .lines()
        .find(|l| l.starts_with(label))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}
