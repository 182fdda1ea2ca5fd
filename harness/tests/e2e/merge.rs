//! `fleet.locking = merge` through nginx and two PHP-FPM pools: 16 clients each incrementing
//! their own variable of ONE session lose nothing (and without locking they do); the
//! same-key counter shows the conflict policy, with the conflicts the pages saw equal to the
//! metrics'; a logout wins over 8 slow requests in flight, also with
//! session_regenerate_id(true). Redis, a Cluster and MariaDB (named and row locks).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleet_harness::{Http, WebStack};

use crate::backend::Backend;
use crate::common::{fleet_stack, session_id};

matrix!(sixteen_clients_incrementing_their_own_keys_of_one_session_lose_nothing => own_keys:
    redis, cluster, mysql_advisory, mysql_row);

matrix!(the_same_key_under_merge_shows_the_conflict_policy_and_its_counts => same_key:
    redis, mysql_advisory);

matrix!(a_logout_wins_over_eight_slow_requests_in_flight => logout_wins:
    redis, cluster, mysql_advisory, mysql_row);

const CLIENTS: usize = 16;
const PER_CLIENT: usize = 100;

fn merge_stack(backend: &Backend, locking: &str) -> WebStack {
    fleet_stack(
        &backend.save_path(),
        8,
        &[("fleet.locking", locking), ("session.gc_probability", "0")],
    )
}

/// A new session on `stack`: its cookie.
fn new_session(stack: &WebStack, http: &Http) -> String {
    let first = http
        .get(&stack.url("merge.php?k=start"), None)
        .expect("first request");
    first.set_cookie.expect("session cookie")
}

/// `CLIENTS` threads, each sending `PER_CLIENT` requests for `path(client)`; every reply's
/// body, by client, and the wall time.
fn clients(
    http: &Http,
    stack: &WebStack,
    cookie: &str,
    path: impl Fn(usize) -> String,
) -> (Vec<Vec<String>>, Duration) {
    let replies = Arc::new(Mutex::new(vec![Vec::new(); CLIENTS]));
    let start = Instant::now();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (http, url, cookie) = (http.clone(), stack.url(&path(client)), cookie.to_owned());
            let replies = replies.clone();
            std::thread::spawn(move || {
                for _ in 0..PER_CLIENT {
                    let reply = http.get(&url, Some(&cookie)).expect("request");
                    assert_eq!(reply.status, 200, "{reply:?}");
                    replies.lock().unwrap()[client].push(reply.body.trim().to_owned());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let elapsed = start.elapsed();
    let replies = replies.lock().unwrap().clone();
    (replies, elapsed)
}

/// The session's variables, as `name → integer`, from the php-format data.
fn counters(stored: &str) -> BTreeMap<String, i64> {
    stored
        .split(';')
        .filter_map(|var| {
            let (name, value) = var.split_once("|i:")?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The sum of `counter` over both pools' fleet_stats().
fn stat(stack: &WebStack, http: &Http, counter: &str) -> i64 {
    let mut per_pool = BTreeMap::new();
    for _ in 0..20 {
        let reply = http.get(&stack.url("stats.php"), None).expect("stats");
        let stats: serde_json::Value = serde_json::from_str(&reply.body).expect("JSON");
        per_pool.insert(reply.worker, stats[counter].as_i64().unwrap_or(0));
        if per_pool.len() == 2 {
            break;
        }
    }
    assert_eq!(per_pool.len(), 2, "both pools answered");
    per_pool.values().sum()
}

fn own_keys(backend: Backend) {
    let stack = merge_stack(&backend, "merge");
    let http = Http::default();
    let cookie = new_session(&stack, &http);
    let sid = session_id(&cookie);
    let (replies, elapsed) = clients(&http, &stack, &cookie, |c| {
        format!("merge.php?k=k{c}&hold_ms=5")
    });
    let log = stack.php_log();
    assert!(!log.contains("Warning"), "a merge-mode write failed: {log}");
    for (client, replies) in replies.iter().enumerate() {
        // Each of a client's requests saw its own previous one: 1, 2, … 100 in order.
        let seen: Vec<i64> = replies
            .iter()
            .map(|r| r.split(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(
            seen,
            (1..=PER_CLIENT as i64).collect::<Vec<_>>(),
            "client {client}: {replies:?}"
        );
    }
    let stored = counters(&backend.stored(&sid));
    for client in 0..CLIENTS {
        assert_eq!(
            stored.get(&format!("k{client}")),
            Some(&(PER_CLIENT as i64)),
            "client {client}'s key lost increments: {stored:?}"
        );
    }
    let conflicts = replies
        .iter()
        .flatten()
        .filter(|r| r.ends_with("conflict"))
        .count();
    assert_eq!(conflicts, 0, "distinct keys never conflict");
    let retries = stat(&stack, &http, "merge_retries");
    let fallbacks = stat(&stack, &http, "merge_lock_fallbacks");
    println!(
        "{}: merge, {CLIENTS} clients x {PER_CLIENT} increments of their own key on one session (5 ms between read and write): 0 lost, {:.0} req/s, {retries} retried writes, {fallbacks} took the lock",
        backend.name(),
        (CLIENTS * PER_CLIENT) as f64 / elapsed.as_secs_f64()
    );

    // The control: the same load without locking loses increments.
    let stack = merge_stack(&backend, "0");
    let cookie = new_session(&stack, &http);
    let sid = session_id(&cookie);
    clients(&http, &stack, &cookie, |c| {
        format!("merge.php?k=k{c}&hold_ms=5")
    });
    let stored = counters(&backend.stored(&sid));
    let kept: i64 = (0..CLIENTS)
        .map(|c| stored.get(&format!("k{c}")).copied().unwrap_or(0))
        .sum();
    let total = (CLIENTS * PER_CLIENT) as i64;
    println!(
        "{}: fleet.locking = 0, the same load: {} of {total} increments lost",
        backend.name(),
        total - kept
    );
    assert!(
        kept < total,
        "without locking, parallel writes of whole sessions must lose some: the control shows nothing"
    );
}

fn same_key(backend: Backend) {
    for policy in ["ours", "theirs"] {
        let stack = fleet_stack(
            &backend.save_path(),
            8,
            &[
                ("fleet.locking", "merge"),
                ("fleet.merge_conflict", policy),
                ("session.gc_probability", "0"),
            ],
        );
        let http = Http::default();
        let cookie = new_session(&stack, &http);
        let sid = session_id(&cookie);
        let (replies, _) = clients(&http, &stack, &cookie, |_| {
            "merge.php?k=n&hold_ms=2".to_owned()
        });
        let seen_conflicts = replies
            .iter()
            .flatten()
            .filter(|r| r.ends_with("conflict"))
            .count();
        let counted = stat(&stack, &http, "merge_conflicts");
        let n = counters(&backend.stored(&sid))
            .get("n")
            .copied()
            .unwrap_or(0);
        let total = (CLIENTS * PER_CLIENT) as i64;
        println!(
            "{}: merge, fleet.merge_conflict = {policy}, {CLIENTS} clients x {PER_CLIENT} increments of ONE key: final n = {n}, {} lost, {seen_conflicts} conflicts (metrics: {counted})",
            backend.name(),
            total - n
        );
        assert_eq!(
            seen_conflicts as i64, counted,
            "the conflicts the pages were told of are the metrics' count"
        );
        // One key incremented from a stale base cannot be merged: merge loses increments
        // there (documented), and reports those from different bases as conflicts.
        assert!(n < total, "merge cannot keep a same-key counter: {n}");
        assert!(n >= 1);
    }
}

fn logout_wins(backend: Backend) {
    let stack = merge_stack(&backend, "merge");
    let http = Http::default();
    for how in ["destroy", "regenerate"] {
        let cookie = new_session(&stack, &http);
        let sid = session_id(&cookie);
        // 8 slow requests that read the session, then write 1 s later.
        let slow: Vec<_> = (0..8)
            .map(|i| {
                let ready = stack.dir().join(format!("ready-{how}-{i}"));
                let url = stack.url(&format!(
                    "merge.php?k=slow{i}&hold_ms=1000&ready_file={}",
                    ready.display()
                ));
                let (http, cookie) = (http.clone(), cookie.clone());
                let thread =
                    std::thread::spawn(move || http.get(&url, Some(&cookie)).expect("slow").body);
                (ready, thread)
            })
            .collect();
        let t = Instant::now();
        while !slow.iter().all(|(ready, _)| ready.exists()) {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the slow requests never read"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let logout = http
            .get(&stack.url(&format!("merge.php?{how}=1")), Some(&cookie))
            .expect("logout");
        assert_eq!(logout.status, 200, "{logout:?}");
        let outcomes: Vec<String> = slow
            .into_iter()
            .map(|(_, t)| t.join().expect("slow request").trim().to_owned())
            .collect();
        assert!(
            outcomes.iter().all(|o| o.ends_with("gone")),
            "{how}: every request in flight was told its write was dropped: {outcomes:?}"
        );
        let left = backend.stored(&sid);
        assert!(
            matches!(left.trim(), "" | "$-1"),
            "{how}: the destroyed session was written back: {left}"
        );
        if how == "regenerate" {
            let new_sid = logout.body.trim();
            assert_ne!(new_sid, sid);
            assert_eq!(
                backend.stored(new_sid).trim(),
                "start|i:1;user|s:3:\"ann\";",
                "the login moved to the new id"
            );
        }
        println!(
            "{}: {how} with 8 requests in flight: session gone, 8 writes dropped",
            backend.name()
        );
    }
}
