//! The lock holder named to those who wait: in a timed-out wait and in `fleet.slow_lock_wait`
//! notices (and no notice below the threshold): Redis and MariaDB.

use std::time::Duration;

use fleet_harness::Http;

use crate::backend::Backend;
use crate::common::{fleet_stack, hold_session};

matrix!(a_lock_wait_names_the_holder_in_timeouts_and_slow_wait_notices => lock_holder_named:
    redis, mysql_advisory);

fn lock_holder_named(backend: Backend) {
    let stack = fleet_stack(&backend.save_path(), 4, &[]);
    let http = Http::new(Duration::from_secs(30));
    let first = http.get(&stack.url("/counter.php"), None).expect("first");
    let cookie = first.set_cookie.clone().expect("a session cookie");
    let mysql = matches!(backend, Backend::MySql(..));

    // A wait that times out names the holder: its server, PID and page (Redis), or its
    // MySQL connection.
    let holder = hold_session(&stack, &http, &cookie, 1500, "a");
    let waited = http
        .get(&stack.url("/wait.php?timeout=0.3"), Some(&cookie))
        .expect("waiter");
    let holder_pid = holder.join().expect("holder").trim().to_owned();
    println!(
        "{}: lock wait timeout: {}",
        backend.name(),
        waited.body.trim()
    );
    assert!(waited.body.starts_with("no session"), "{}", waited.body);
    if mysql {
        assert!(
            waited.body.contains("held by MySQL connection"),
            "{}",
            waited.body
        );
    } else {
        assert!(
            waited
                .body
                .contains(&format!("pid {holder_pid} (GET /hold_for.php)")),
            "names the holder's PID and page: {}",
            waited.body
        );
        assert!(waited.body.contains(" held for "), "{}", waited.body);
    }

    // fleet.slow_lock_wait: a notice above the threshold, naming the holder …
    let holder = hold_session(&stack, &http, &cookie, 700, "b");
    let slow = http
        .get(&stack.url("/wait.php?timeout=10&slow=0.2"), Some(&cookie))
        .expect("slow waiter");
    let holder_pid = holder.join().expect("holder").trim().to_owned();
    println!("{}: slow lock wait: {}", backend.name(), slow.body.trim());
    assert!(slow.body.starts_with("session"), "{}", slow.body);
    assert!(
        slow.body
            .contains("notice: session_start(): Fleet: session")
            && slow
                .body
                .contains("for its lock (over fleet.slow_lock_wait = 0.20 s)"),
        "{}",
        slow.body
    );
    if !mysql {
        assert!(
            slow.body
                .contains(&format!("pid {holder_pid} (GET /hold_for.php)")),
            "{}",
            slow.body
        );
    }
    // … and none below it: a short wait, or none at all.
    let holder = hold_session(&stack, &http, &cookie, 100, "c");
    let short = http
        .get(&stack.url("/wait.php?timeout=10&slow=5"), Some(&cookie))
        .expect("short waiter");
    holder.join().expect("holder");
    assert_eq!(
        short.body.trim(),
        "session",
        "no notice below the threshold"
    );
    let free = http
        .get(&stack.url("/wait.php?timeout=10&slow=0.2"), Some(&cookie))
        .expect("free");
    assert_eq!(free.body.trim(), "session", "no notice without a wait");
    assert!(stack.a_worker_died().is_none());
}
