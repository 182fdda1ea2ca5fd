//! `fleetctl copy` and `fleetctl sessions` against real servers, with sessions written by
//! PHP itself (its files handler, phpredis's redis and rediscluster handlers, and Fleet).

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use fleet_harness::paths::{extension, fleetctl};
use fleet_harness::{MariaDbServer, RedisCluster, RedisServer};

/// Runs PHP code in the CLI with phpredis and Fleet loaded and `ini` set; returns stdout.
fn php(ini: &[(&str, &str)], code: &str) -> String {
    let mut cmd = Command::new("php");
    cmd.args(["-n", "-d", "extension=igbinary", "-d", "extension=redis"])
        .arg("-d")
        .arg(format!("extension={}", extension().display()))
        .args([
            "-d",
            "session.use_cookies=0",
            "-d",
            "session.cache_limiter=",
        ]);
    for (k, v) in ini {
        // Quoted: a save_path's query string has '=' in it.
        cmd.arg("-d").arg(format!("{k}=\"{v}\""));
    }
    let out = cmd.arg("-r").arg(code).output().expect("php runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "php failed: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes session `id` with `vars` (PHP code for an array) through `handler` at `path`.
fn php_write(handler: &str, path: &str, id: &str, vars: &str) {
    php(
        &[
            ("session.save_handler", handler),
            ("session.save_path", path),
        ],
        &format!("session_id('{id}'); session_start(); $_SESSION = {vars}; session_write_close();"),
    );
}

/// Reads variable `name` of session `id` through Fleet at `save_path`.
fn fleet_read(save_path: &str, id: &str, name: &str) -> String {
    php(
        &[
            ("session.save_handler", "fleet"),
            ("session.save_path", save_path),
        ],
        &format!(
            "session_id('{id}'); session_start(); echo json_encode($_SESSION['{name}'] ?? null);"
        ),
    )
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn fleetctl_run(args: &[&str]) -> Run {
    let out = Command::new(fleetctl())
        .args(args)
        .output()
        .expect("fleetctl runs");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `fleetctl copy … --json`: the counts (copied, expired, present, failed).
fn copy(from: &str, to: &str, extra: &[&str]) -> [u64; 4] {
    let mut args = vec!["copy", "--from", from, "--to", to, "--json"];
    args.extend_from_slice(extra);
    let run = fleetctl_run(&args);
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    let v = json(&run.stdout);
    let n = |k: &str| v[k].as_u64().unwrap_or(u64::MAX);
    [
        n("copied"),
        n("skipped_expired"),
        n("skipped_present"),
        n("failed"),
    ]
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// The wall clock in milliseconds since the epoch (Redis expiries are on the same clock).
fn now_ms() -> i64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    i64::try_from(ms).expect("a clock before 2262")
}

/// A key's PTTL and the instants just before and after it was read.
fn pttl(redis: &RedisServer, key: &str) -> (i64, std::ops::Range<i64>) {
    let start = now_ms();
    let reply = redis.command(&["PTTL", key]);
    let end = now_ms();
    let ttl = reply
        .trim_start_matches(':')
        .parse()
        .unwrap_or_else(|_| panic!("a TTL: {reply}"));
    (ttl, start..end)
}

/// Whether a key whose PTTL was `ttl` when read during `read` can end within [low, high].
/// Redis and the copy each drop a fraction of a millisecond (whole milliseconds in PX and
/// PTTL, and in the instants measured here), hence the 2 ms of rounding either side.
fn ends_within(ttl: i64, read: &std::ops::Range<i64>, low: i64, high: i64) -> bool {
    const ROUNDING_MS: i64 = 2;
    read.start + ttl <= high + ROUNDING_MS && read.end + ttl >= low - ROUNDING_MS
}

fn set_mtime(path: &Path, unix: u64) {
    let ok = Command::new("touch")
        .arg("-d")
        .arg(format!("@{unix}"))
        .arg(path)
        .status()
        .expect("touch");
    assert!(ok.success());
}

fn id(n: usize) -> String {
    format!("migr{n:04}abcdefghijklmnopq")
}

#[test]
fn copy_from_php_file_sessions_keeps_lifetimes_skips_expired_and_never_overwrites() {
    let redis = RedisServer::start();
    let dst = format!("{}?prefix=app:", redis.url());
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dir.path().to_str().expect("utf-8 path").to_owned();
    // Sessions written by PHP's own files handler: five fresh, last written 0..400 s ago …
    let stamped = now();
    for n in 0..5 {
        php_write(
            "files",
            &files,
            &id(n),
            &format!("['user' => 'u{n}', 'cart' => [1, 2, {n}]]"),
        );
        set_mtime(
            &dir.path().join(format!("sess_{}", id(n))),
            stamped - n as u64 * 100,
        );
    }
    // … two idle for longer than gc_maxlifetime, and a file that is not a session.
    for n in 5..7 {
        php_write("files", &files, &id(n), "['user' => 'gone']");
        set_mtime(&dir.path().join(format!("sess_{}", id(n))), now() - 2000);
    }
    std::fs::write(dir.path().join("README"), "not a session").expect("write");
    // One is already in Fleet, written by a visitor served since: it must stay as it is.
    php_write("fleet", &dst, &id(4), "['user' => 'newer']");

    let from = format!("files://{files}");
    let dry = copy(&from, &dst, &["--dry-run", "--max-lifetime", "1440"]);
    assert_eq!(
        dry,
        [4, 2, 1, 0],
        "dry run: would copy, expired, present, failed"
    );
    assert_eq!(
        redis.command(&["EXISTS", &format!("app:{}", id(0))]),
        ":0",
        "a dry run writes nothing"
    );

    let before = now_ms();
    let counts = copy(&from, &dst, &["--max-lifetime", "1440"]);
    let after = now_ms();
    assert_eq!(counts, [4, 2, 1, 0], "copied, expired, present, failed");
    for n in 0..4 {
        // A file's session ends at its mtime plus the lifetime; the copy measures what is
        // left at some instant in [before, after] and Redis counts it from a later one in
        // that interval, so the key ends in [end, end + (after - before)] whenever the copy
        // ran (a bound from the measured instants, not a tolerance).
        let end = (stamped as i64 - n as i64 * 100 + 1440) * 1000;
        let (ttl, read) = pttl(&redis, &format!("app:{}", id(n)));
        let ends = read.start + ttl;
        println!("session {n}: TTL {ttl} ms read in {read:?}, so it ends in [{ends}, {}]; the file's session ends at {end}", read.end + ttl);
        assert!(
            ends_within(ttl, &read, end, end + (after - before)),
            "remaining lifetime kept: a TTL of {ttl} ms read in {read:?} ends outside [{end}, {}] (copy ran in [{before}, {after}])",
            end + (after - before)
        );
        // A PHP request through Fleet now sees the copied session.
        assert_eq!(fleet_read(&dst, &id(n), "user"), format!("\"u{n}\""));
        assert_eq!(fleet_read(&dst, &id(n), "cart"), format!("[1,2,{n}]"));
    }
    assert_eq!(
        fleet_read(&dst, &id(4), "user"),
        "\"newer\"",
        "never overwritten"
    );
    assert_eq!(redis.command(&["EXISTS", &format!("app:{}", id(5))]), ":0");

    // Idempotent: run again after switching php.ini, only what is new is copied.
    php_write("files", &files, &id(7), "['user' => 'late']");
    assert_eq!(copy(&from, &dst, &[]), [1, 2, 5, 0]);
    assert_eq!(fleet_read(&dst, &id(7), "user"), "\"late\"");

    let bad = fleetctl_run(&["copy", "--from", "files:///no/such/dir", "--to", &dst]);
    assert!(
        !bad.ok && bad.stderr.contains("cannot read the directory"),
        "{}",
        bad.stderr
    );
}

#[test]
fn copy_from_phpredis_from_a_rediscluster_layout_and_from_mysql() {
    let target = RedisServer::start();
    let dst = format!("{}?prefix=app:", target.url());

    // phpredis's own session handler, with its default prefix.
    let source = RedisServer::start();
    let tcp = format!("tcp://127.0.0.1:{}", source.port);
    for n in 0..3 {
        php_write(
            "redis",
            &tcp,
            &id(n),
            &format!("['from' => 'phpredis', 'n' => {n}]"),
        );
    }
    let expire_before = now_ms();
    source.command(&["EXPIRE", &format!("PHPREDIS_SESSION:{}", id(0)), "300"]);
    let expire_after = now_ms();
    let from = format!("{}?prefix=PHPREDIS_SESSION:", source.url());
    let before = now_ms();
    assert_eq!(copy(&from, &dst, &[]), [3, 0, 0, 0]);
    let after = now_ms();
    assert_eq!(fleet_read(&dst, &id(1), "from"), "\"phpredis\"");
    // The source key ends 300 s after the EXPIRE ran; the copy reads what is left and sets
    // it a little later, within [before, after], so the copy ends up to (after - before)
    // after the source would have.
    let (ttl, read) = pttl(&target, &format!("app:{}", id(0)));
    let (low, high) = (
        expire_before + 300_000,
        expire_after + 300_000 + (after - before),
    );
    assert!(
        ends_within(ttl, &read, low, high),
        "the source TTL is kept: {ttl} ms read in {read:?} ends outside [{low}, {high}]"
    );

    // phpredis's rediscluster handler (keys without a hash tag), read from every master.
    let cluster = RedisCluster::start(3, 0);
    let seeds: String = cluster
        .seeds()
        .split(',')
        .map(|s| format!("seed[]={s}"))
        .collect::<Vec<_>>()
        .join("&");
    for n in 10..30 {
        php_write(
            "rediscluster",
            &format!("{seeds}&prefix=PHPCLUSTER:"),
            &id(n),
            "['from' => 'rediscluster']",
        );
    }
    let from = cluster.save_path("prefix=PHPCLUSTER:");
    assert_eq!(copy(&from, &dst, &[]), [20, 0, 0, 0]);
    assert_eq!(fleet_read(&dst, &id(29), "from"), "\"rediscluster\"");

    // MySQL, written through Fleet; an expired row is not a session any more.
    let db = MariaDbServer::start();
    let mysql = db.save_path("");
    for n in 40..43 {
        php_write("fleet", &mysql, &id(n), "['from' => 'mysql']");
    }
    db.query(&format!(
        "UPDATE fleet_sessions SET expires = UNIX_TIMESTAMP() - 1 WHERE id = '{}'",
        id(42)
    ));
    assert_eq!(copy(&mysql, &dst, &[]), [2, 0, 0, 0]);
    assert_eq!(fleet_read(&dst, &id(41), "from"), "\"mysql\"");
    assert_eq!(fleet_read(&dst, &id(42), "from"), "null");
    assert!(!fleetctl_run(&["copy", "--from", &mysql, "--to", &dst])
        .stdout
        .contains(fleet_harness::mariadb_server::PASSWORD));
}

/// `fleetctl sessions` on one backend: `store` holds sessions written by Fleet in both
/// serialize formats.
fn inspect(store: &str, locked_note: &str) {
    let vars = "['user' => ['id' => 7, 'roles' => ['admin']], 'ok' => true, 'price' => 9.5, 'bin' => \"\\x00\\xff\"]";
    for (n, format) in [(0, "php"), (1, "php_serialize"), (2, "php")] {
        php(
            &[
                ("session.save_handler", "fleet"),
                ("session.save_path", store),
                ("session.serialize_handler", format),
            ],
            &format!(
                "session_id('{}'); session_start(); $_SESSION = {vars}; session_write_close();",
                id(n)
            ),
        );
    }
    let sessions = |args: &[&str]| {
        let mut all = vec!["sessions", "--store", store];
        all.extend_from_slice(args);
        let run = fleetctl_run(&all);
        assert!(run.ok, "{}{}", run.stdout, run.stderr);
        run.stdout
    };
    assert_eq!(json(&sessions(&["count", "--json"]))["sessions"], 3);
    let list = json(&sessions(&["list", "--json"]));
    let listed = list["sessions"].as_array().expect("a list");
    assert_eq!(listed.len(), 3, "{list}");
    assert!(
        listed
            .iter()
            .all(|s| s["size"].as_u64() > Some(50) && s["ttl"].as_f64() > Some(1000.0)),
        "{list}"
    );
    // Paged: one at a time, with a cursor, reaches every session once.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut args = vec!["list", "--json", "--limit", "1"];
        if let Some(a) = &after {
            args.extend_from_slice(&["--after", a]);
        }
        let page = json(&sessions(&args));
        seen.extend(
            page["sessions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|s| s["id"].clone()),
        );
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
        assert!(seen.len() <= 3, "paging loops: {seen:?}");
    }
    seen.sort_by_key(|v| v.to_string());
    seen.dedup();
    assert_eq!(seen.len(), 3, "{seen:?}");

    for n in [0, 1] {
        let shown = json(&sessions(&["show", &id(n), "--json"]));
        assert_eq!(
            shown["data"],
            json(
                r#"{"user":{"id":7,"roles":["admin"]},"ok":true,"price":9.5,"bin":{"@binary":"00ff"}}"#
            ),
            "{shown}"
        );
        assert_eq!(
            shown["format"],
            if n == 0 { "php" } else { "php_serialize" }
        );
        assert_eq!(shown["lock"], "not locked");
    }
    let text = sessions(&["show", &id(0)]);
    assert!(
        text.contains("[roles] => Array") && text.contains("[0] => admin"),
        "{text}"
    );

    // While a request holds the session, show says so.
    let mut holder = Command::new("php")
        .args(["-n", "-d"])
        .arg(format!("extension={}", extension().display()))
        .args([
            "-d",
            "session.use_cookies=0",
            "-d",
            "session.save_handler=fleet",
            "-d",
        ])
        .arg(format!("session.save_path=\"{store}\""))
        .arg("-r")
        .arg(format!(
            "session_id('{}'); session_start(); echo \"held\\n\"; sleep(3);",
            id(2)
        ))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("php");
    let mut first = [0u8; 5];
    std::io::Read::read_exact(holder.stdout.as_mut().expect("stdout"), &mut first).expect("held");
    let shown = json(&sessions(&["show", &id(2), "--json"]));
    assert!(
        shown["lock"].as_str().unwrap_or("").contains(locked_note),
        "{shown}"
    );
    let _ = holder.kill();
    let _ = holder.wait();

    let destroyed = sessions(&["destroy", &id(1)]);
    assert!(destroyed.contains("destroyed"), "{destroyed}");
    assert_eq!(json(&sessions(&["count", "--json"]))["sessions"], 2);
    let missing = fleetctl_run(&["sessions", "--store", store, "show", &id(1)]);
    assert!(
        !missing.ok && missing.stderr.contains("no session"),
        "{}",
        missing.stderr
    );
    let bad = fleetctl_run(&["sessions", "--store", store, "show", "../etc/passwd"]);
    assert!(
        !bad.ok && bad.stderr.contains("session id rejected"),
        "{}",
        bad.stderr
    );
}

#[test]
fn sessions_count_list_show_destroy_on_redis() {
    let redis = RedisServer::start();
    let store = format!("{}?prefix=app:", redis.url());
    inspect(&store, "locked by a request");
    // Data that is not PHP session data is shown raw, with a note, never a crash.
    redis.command(&[
        "SET",
        &format!("app:{}", id(9)),
        "\u{1}garbage|x",
        "EX",
        "100",
    ]);
    let run = fleetctl_run(&["sessions", "--store", &store, "show", &id(9)]);
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("note: not PHP session data") && run.stdout.contains("garbage"),
        "{}",
        run.stdout
    );
}

#[test]
fn sessions_count_list_show_destroy_on_mysql() {
    let db = MariaDbServer::start();
    inspect(&db.save_path(""), "locked by MySQL connection");
}

#[test]
fn sessions_count_list_show_destroy_on_a_cluster() {
    let cluster = RedisCluster::start(3, 0);
    inspect(&cluster.save_path(""), "locked by a request");
}

/// `fleetctl` on a store with encryption_key_file= and hash_ids=1: `show` and `destroy` hash
/// the id they are given and `show` decrypts; `list` shows no id; `copy --to` hashes and
/// encrypts on the way in, and refuses a hashed source; `rekey` re-encrypts with the first
/// key so the old key can leave the file.
fn at_rest(plain: &str, base: &str) {
    let keys = tempfile::tempdir().expect("temp dir");
    let (a, b) = (
        "q1JvTgYJ0zH7b3o6ZK2aK3m0ZlLwz2cX4n2v0Yv7cXQ=",
        "7yq3VJq1cR2B0xWvF4Yb1d0n8m6l5k4j3h2g1f0e9dA=",
    );
    let file = keys.path().join("keys");
    let hash = keys.path().join("hash");
    std::fs::write(&file, format!("{a}\n")).expect("key file");
    std::fs::write(&hash, "mZc0VfT4r6yK2xQ8wN1pL5sH9dJ3gB7aE0uI4oY2tR8=\n").expect("hash key");
    let sep = if base.contains('?') { '&' } else { '?' };
    let sealed = format!(
        "{base}{sep}encryption_key_file={}&hash_ids=1&hash_key_file={}",
        file.display(),
        hash.display()
    );
    php_write("fleet", &sealed, &id(1), "['user' => 'ann']");
    php_write("fleet", &sealed, &id(2), "['user' => 'bob']");
    php_write("fleet", plain, &id(3), "['user' => 'cy']");
    assert_eq!(copy(plain, &sealed, &[]), [1, 0, 0, 0]);
    let sessions = |args: &[&str]| {
        let mut all = vec!["sessions", "--store", sealed.as_str()];
        all.extend_from_slice(args);
        let run = fleetctl_run(&all);
        assert!(run.ok, "{args:?}: {}{}", run.stdout, run.stderr);
        run.stdout
    };
    let shown = sessions(&["show", &id(1)]);
    assert!(shown.contains("ann"), "{shown}");
    let listed = sessions(&["list"]);
    for n in 1..=3 {
        assert!(!listed.contains(&id(n)), "an id in the list: {listed}");
    }
    let refused = fleetctl_run(&["copy", "--from", &sealed, "--to", plain]);
    assert!(
        !refused.ok && refused.stderr.contains("hash_ids=1"),
        "{}",
        refused.stderr
    );

    std::fs::write(&file, format!("{b}\n{a}\n")).expect("rotated key file");
    let rekeyed = json(&sessions(&["rekey", "--json", "--batch", "2"]));
    assert_eq!(
        (
            &rekeyed["rekeyed"],
            &rekeyed["current"],
            &rekeyed["unreadable"]
        ),
        (&3.into(), &0.into(), &0.into()),
        "{rekeyed}"
    );
    std::fs::write(&file, format!("{b}\n")).expect("the old key removed");
    for (n, user) in [(1, "ann"), (2, "bob"), (3, "cy")] {
        assert_eq!(fleet_read(&sealed, &id(n), "user"), format!("\"{user}\""));
    }
    assert!(sessions(&["destroy", &id(1)]).contains("destroyed"));
    assert_eq!(fleet_read(&sealed, &id(1), "user"), "null");
    assert!(sessions(&["show", &id(2)]).contains("bob"));
}

#[test]
fn sessions_and_copy_and_rekey_with_encryption_and_hashed_ids_on_redis() {
    let redis = RedisServer::start();
    at_rest(
        &format!("{}?prefix=plain:", redis.url()),
        &format!("{}?prefix=app:", redis.url()),
    );
}

#[test]
fn sessions_and_copy_and_rekey_with_encryption_and_hashed_ids_on_mysql() {
    let redis = RedisServer::start();
    let db = MariaDbServer::start();
    at_rest(&redis.url(), &db.save_path(""));
}
