//! Runs `wrk` (Debian's package) and reads its report.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct WrkResult {
    pub requests: u64,
    pub rps: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// Replies that were not 2xx/3xx, plus socket errors: should be 0.
    pub errors: u64,
}

/// `connections` clients for `duration` against `url`, optionally with a Lua script.
pub fn run(
    url: &str,
    connections: usize,
    duration: Duration,
    script: Option<&Path>,
    env: &[(&str, String)],
) -> WrkResult {
    run_threads(url, connections.min(2), connections, duration, script, env)
}

/// As [`run`], with `threads` wrk threads (one per connection lets a script tell its
/// clients apart: each thread is one client).
pub fn run_threads(
    url: &str,
    threads: usize,
    connections: usize,
    duration: Duration,
    script: Option<&Path>,
    env: &[(&str, String)],
) -> WrkResult {
    let mut command = Command::new("wrk");
    command
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .args(["--latency", "--timeout", "10s"]);
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    command
        .arg(url)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run wrk: {e}; run bench/run.sh, which installs it"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse(&text).unwrap_or_else(|| panic!("cannot read wrk's report:\n{text}"))
}

fn parse(text: &str) -> Option<WrkResult> {
    let mut r = WrkResult::default();
    for line in text.lines().map(str::trim) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["50%", v] => r.p50 = duration(v)?,
            ["99%", v] => r.p99 = duration(v)?,
            ["Requests/sec:", v] => r.rps = v.parse().ok()?,
            [n, "requests", "in", ..] => r.requests = n.parse().ok()?,
            ["Non-2xx", "or", "3xx", "responses:", n] => r.errors += n.parse::<u64>().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                // "connect 0, read 0, write 0, timeout 0"
                r.errors += rest
                    .iter()
                    .filter_map(|f| f.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    (r.rps > 0.0).then_some(r)
}

fn duration(v: &str) -> Option<Duration> {
    let (number, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = number.parse().ok()?;
    let secs = match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_wrk_report() {
        let report = "Running 2s test @ http://127.0.0.1:1/x\n  2 threads and 32 connections\n  Latency Distribution\n     50%  795.00us\n     75%    1.10ms\n     90%    2.00ms\n     99%   12.34ms\n  5000 requests in 2.00s, 1.00MB read\n  Socket errors: connect 0, read 1, write 0, timeout 2\n  Non-2xx or 3xx responses: 4\nRequests/sec:   2500.50\n";
        let r = parse(report).unwrap();
        assert_eq!(r.requests, 5000);
        assert_eq!(r.p50, Duration::from_micros(795));
        assert_eq!(r.p99, Duration::from_micros(12_340));
        assert_eq!(r.errors, 7);
        assert!((r.rps - 2500.5).abs() < 1e-9);
    }
}
