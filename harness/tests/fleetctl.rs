//! `fleetctl` against real servers.

use std::process::Command;
use std::time::{Duration, Instant};

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

/// A store to run `fleetctl run-once` against.
enum LeaseBackend {
    Redis(RedisServer),
    MySql(MariaDbServer),
}

impl LeaseBackend {
    fn url(&self) -> String {
        match self {
            LeaseBackend::Redis(r) => r.url(),
            LeaseBackend::MySql(db) => db.save_path(""),
        }
    }
}

/// `fleetctl run-once --store … --name NAME EXTRA -- sh -c SCRIPT`, started now, in a
/// process group of its own (so a test can kill it and its job together, as a node dies).
fn run_once(store: &str, name: &str, extra: &[&str], script: &str) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    Command::new(fleetctl())
        .args(["run-once", "--store", store, "--name", name])
        .args(extra)
        .args(["--", "sh", "-c", script])
        .process_group(0)
        .spawn()
        .expect("fleetctl starts")
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn five_at_once_run_once_and_a_killed_holder_is_taken_over(backend: LeaseBackend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("ran");
    let job = format!("echo $FLEET_LEASE_TOKEN >> {}; sleep 1", log.display());
    let started: Vec<_> = (0..5)
        .map(|_| run_once(&backend.url(), "invoices", &[], &job))
        .collect();
    let mut codes: Vec<i32> = started
        .into_iter()
        .map(|mut c| c.wait().expect("wait").code().unwrap_or(-1))
        .collect();
    codes.sort_unstable();
    let ran = lines(&log);
    println!("five run-once on one name: exit codes {codes:?}, ran {ran:?}");
    assert_eq!(
        codes,
        [0, 75, 75, 75, 75],
        "one ran, four were told another node holds it"
    );
    assert_eq!(ran.len(), 1, "the job ran exactly once");

    // A holder that dies (SIGKILL to it and its job) stops renewing; another node takes
    // over after the TTL, with a larger fencing token.
    let long = format!("echo $FLEET_LEASE_TOKEN >> {}; sleep 60", log.display());
    let mut holder = run_once(&backend.url(), "invoices", &["--ttl", "2s"], &long);
    let t = Instant::now();
    while lines(&log).len() < 2 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the holder never ran"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let group = libc::pid_t::try_from(holder.id()).expect("pid");
    // SAFETY: kill(2) on the process group of our own child.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    let _ = holder.wait();
    let killed_at = Instant::now();
    let quick = format!("echo $FLEET_LEASE_TOKEN >> {}", log.display());
    let mut next = run_once(&backend.url(), "invoices", &["--wait", "10s"], &quick);
    let code = next.wait().expect("wait").code();
    let ran = lines(&log);
    println!(
        "after SIGKILL of the holder (TTL 2 s): the next node ran the job {:?} later, tokens {ran:?}",
        killed_at.elapsed()
    );
    assert_eq!(code, Some(0));
    let tokens: Vec<u64> = ran.iter().filter_map(|l| l.parse().ok()).collect();
    assert_eq!(tokens.len(), 3);
    assert!(
        tokens[2] > tokens[1] && tokens[1] > tokens[0],
        "fencing tokens grow: {tokens:?}"
    );
}

#[test]
fn run_once_on_redis() {
    five_at_once_run_once_and_a_killed_holder_is_taken_over(LeaseBackend::Redis(
        RedisServer::start(),
    ));
}

#[test]
fn run_once_on_mysql() {
    five_at_once_run_once_and_a_killed_holder_is_taken_over(LeaseBackend::MySql(
        MariaDbServer::start(),
    ));
}

#[test]
fn run_once_every_period_runs_once_per_slot_across_skewed_clocks() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("ran");
    let job = format!("echo ran >> {}; sleep 0.1", log.display());
    let period = 6u64;
    // Start 0.3 s into a slot, as cron does on each node at its own clock's slot start.
    let into_slot = || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock");
        let next = (now.as_secs() / period + 1) * period;
        std::thread::sleep(Duration::from_secs(next) - now + Duration::from_millis(300));
    };
    let every = ["--every", "6s"];
    into_slot();
    let first = run_once(&redis.url(), "report", &every, &job)
        .wait()
        .expect("wait")
        .code();
    // The same line 1 s later on another node of the same slot.
    std::thread::sleep(Duration::from_secs(1));
    let again = run_once(&redis.url(), "report", &every, &job)
        .wait()
        .expect("wait")
        .code();
    // A node whose clock is 2 s behind fires at its own slot start: 2 s later in real time.
    std::thread::sleep(Duration::from_millis(700));
    let skewed = Command::new("faketime")
        .args(["-f", "-2s"])
        .arg(fleetctl())
        .args([
            "run-once",
            "--store",
            &redis.url(),
            "--name",
            "report",
            "--every",
            "6s",
        ])
        .args(["--", "sh", "-c", &job])
        .status()
        .expect("faketime runs (scripts/setup.sh installs it)")
        .code();
    assert_eq!(lines(&log).len(), 1, "ran once in the slot");
    into_slot();
    let next_slot = run_once(&redis.url(), "report", &every, &job)
        .wait()
        .expect("wait")
        .code();
    println!(
        "--every 6s: first {first:?}, 1 s later {again:?}, a node 2 s behind {skewed:?}, next slot {next_slot:?}"
    );
    assert_eq!((first, again, skewed), (Some(0), Some(75), Some(75)));
    assert_eq!(next_slot, Some(0));
    assert_eq!(lines(&log).len(), 2, "the next slot ran it again");
}

/// `fleetctl run-once … --ttl TTL -- sh -c SCRIPT` on `store`, its stderr captured.
fn run_once_captured(store: &str, name: &str, ttl: &str, script: &str) -> std::process::Child {
    Command::new(fleetctl())
        .args(["run-once", "--store", store, "--name", name, "--ttl", ttl])
        .args(["--", "sh", "-c", script])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("fleetctl starts")
}

fn signal(pid: Option<u32>, signal: &str) {
    let pid = pid.expect("redis-server runs").to_string();
    let sent = Command::new("kill").args([signal, &pid]).status();
    assert!(sent.is_ok_and(|s| s.success()), "kill {signal} {pid}");
}

/// Issue 22 #11: a renewal that fails while the store is paused for less than the TTL (here
/// the first renewal attempt times out after 1 s) is retried; the job runs to its end.
#[test]
fn run_once_survives_a_store_paused_for_less_than_the_ttl() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let done = dir.path().join("done");
    let job = format!("sleep 8; echo done > {}", done.display());
    let started = Instant::now();
    let child = run_once_captured(&redis.url(), "paused", "6s", &job);
    // Renewals are due at 2 s, 4 s, …: the one at 4 s meets a stopped server and times out.
    std::thread::sleep(Duration::from_millis(2500));
    signal(redis.pid(), "-STOP");
    std::thread::sleep(Duration::from_secs(3));
    signal(redis.pid(), "-CONT");
    let out = child.wait_with_output().expect("fleetctl ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!(
        "paused 3 s of a 6 s TTL: {:?} after {:?}: {stderr}",
        out.status.code(),
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(lines(&done), ["done"], "the job ran to its end: {stderr}");
    assert!(!stderr.contains("lost the lease"), "{stderr}");
}

/// …and a store gone longer than the TTL stops the job (SIGTERM, exit 76) before the lease
/// would lapse, so no other node runs it at the same time.
#[test]
fn run_once_stops_the_job_when_the_store_is_gone_longer_than_the_ttl() {
    let redis = RedisServer::start();
    let started = Instant::now();
    // `exec`: the job is the process that gets SIGTERM (a shell would leave its sleep behind,
    // holding stderr open).
    let child = run_once_captured(&redis.url(), "gone", "3s", "exec sleep 30");
    std::thread::sleep(Duration::from_millis(1500));
    // When the lease lapses, from its TTL as the stopped server will keep it: no renewal
    // gets through after this.
    let lease_key = "PHPREDIS_SESSION:lease:{gone}";
    let pttl: u64 = redis
        .command(&["PTTL", lease_key])
        .trim_start_matches(':')
        .parse()
        .unwrap_or(0);
    assert!(pttl > 0, "the lease {lease_key} is held and has a TTL");
    let lapses = Instant::now() + Duration::from_millis(pttl);
    signal(redis.pid(), "-STOP");
    let out = child.wait_with_output().expect("fleetctl ends");
    let ended = Instant::now();
    let elapsed = ended - started;
    signal(redis.pid(), "-CONT");
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!(
        "store stopped for good: {:?} after {elapsed:?}: {stderr}",
        out.status.code()
    );
    assert_eq!(out.status.code(), Some(76), "{stderr}");
    assert!(stderr.contains("lost the lease gone"), "{stderr}");
    // Two events compared, not a tolerance: fleetctl had ended (so had its job) before the
    // lease it held lapsed, so no other node could have run the job at the same time.
    assert!(
        ended < lapses,
        "the job outlived the lease by {:?}",
        ended - lapses
    );
}

/// Issue 22 #12: a duration no clock can hold is refused with the option named, no panic.
#[test]
fn run_once_refuses_a_huge_ttl_without_panicking() {
    for ttl in ["1e300s", "100000000000000000000000s"] {
        let out = Command::new(fleetctl())
            .args([
                "run-once",
                "--store",
                "redis://127.0.0.1:1",
                "--name",
                "j",
                "--ttl",
                ttl,
            ])
            .args(["--", "true"])
            .output()
            .expect("fleetctl runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            stderr.contains("--ttl") && stderr.contains("at most 366d"),
            "{stderr}"
        );
    }
}
