//! Sessions at rest through nginx and PHP-FPM: two app servers with the same
//! encryption_key_file share a visitor's session; a third with another key sees it empty,
//! with a warning naming the key, and the stored session is unharmed (the first two go on
//! counting); with hash_ids=1 nothing is stored under the session id at all. Redis, a
//! Cluster and MariaDB.

use fleet_harness::{Http, WebStack};

use crate::backend::Backend;
use crate::common::{fleet_stack, session_id};

matrix!(servers_with_one_key_share_sessions_and_another_key_sees_them_empty => shared_key:
    redis, cluster, mysql_advisory);

/// `save_path` with `options` added to its query string.
fn with(save_path: &str, options: &str) -> String {
    let sep = if save_path.contains('?') { '&' } else { '?' };
    format!("{save_path}{sep}{options}")
}

/// A key file holding `key` (base64 of 32 bytes, as `head -c 32 /dev/urandom | base64`).
fn key_file(dir: &std::path::Path, name: &str, key: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{key}\n")).expect("key file");
    path.display().to_string()
}

/// Requests of one visitor on `web`, the counter going on from `from`.
fn count(web: &WebStack, http: &Http, cookie: Option<&str>, from: u32, to: u32) -> String {
    let mut cookie = cookie.map(str::to_owned);
    let mut servers = Vec::new();
    for expected in from..=to {
        let reply = http
            .get(&web.url("counter.php"), cookie.as_deref())
            .expect("request");
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(
            reply.body.trim(),
            expected.to_string(),
            "on {}",
            reply.worker
        );
        if cookie.is_none() {
            cookie = reply.set_cookie.clone();
        }
        servers.push(reply.worker);
    }
    assert!(servers.iter().any(|s| s == "app-a") && servers.iter().any(|s| s == "app-b"));
    cookie.expect("a session cookie")
}

fn shared_key(backend: Backend) {
    let keys = tempfile::tempdir().expect("temp dir");
    let ours = key_file(
        keys.path(),
        "ours",
        "q1JvTgYJ0zH7b3o6ZK2aK3m0ZlLwz2cX4n2v0Yv7cXQ=",
    );
    let theirs = key_file(
        keys.path(),
        "theirs",
        "7yq3VJq1cR2B0xWvF4Yb1d0n8m6l5k4j3h2g1f0e9dA=",
    );
    let hash = key_file(
        keys.path(),
        "hash",
        "mZc0VfT4r6yK2xQ8wN1pL5sH9dJ3gB7aE0uI4oY2tR8=",
    );
    let http = Http::default();

    let sealed = with(&backend.save_path(), &format!("encryption_key_file={ours}"));
    let web = fleet_stack(&sealed, 2, &[]);
    let cookie = count(&web, &http, None, 1, 6);
    let sid = session_id(&cookie);
    let stored = backend.stored(&sid);
    assert!(!stored.is_empty(), "stored under its id without hash_ids");
    assert!(
        !stored.contains("n|i:"),
        "plaintext in the store: {stored:?}"
    );

    // A third server with another key: the session reads empty, with a warning, and is
    // left as it was (read.php changes nothing, so lazy_write only refreshes it).
    let other = fleet_stack(
        &with(
            &backend.save_path(),
            &format!("encryption_key_file={theirs}"),
        ),
        1,
        &[],
    );
    let reply = http
        .get(&other.url("read.php"), Some(&cookie))
        .expect("request");
    assert_eq!((reply.status, reply.body.trim()), (200, "0"), "{reply:?}");
    let log = other.php_log();
    assert!(
        log.contains("which is not in encryption_key_file") && log.contains(&sid[..6]),
        "{log}"
    );
    assert_eq!(
        backend.stored(&sid),
        stored,
        "the other key's server changed it"
    );
    count(&web, &http, Some(&cookie), 7, 10);
    assert_eq!(
        web.php_log(),
        "",
        "the servers with the key logged problems"
    );

    // hash_ids=1: the counter works, and nothing is stored under the id.
    let hashed = with(&sealed, &format!("hash_ids=1&hash_key_file={hash}"));
    let web = fleet_stack(&hashed, 2, &[]);
    let cookie = count(&web, &http, None, 1, 4);
    let sid = session_id(&cookie);
    let under_id = backend.stored(&sid);
    assert!(
        under_id.is_empty() || under_id == "(nil)" || under_id == "$-1",
        "stored under the id: {under_id:?}"
    );
    assert_eq!(web.php_log(), "");
    println!(
        "{}: one key shared by two servers, another key's server saw an empty session and left it, hash_ids kept the id out",
        backend.name()
    );
}
