//! The session cookie set by one app server is honoured by the other: one visitor's counter
//! goes 1..10 with the balancer alternating servers, on Redis, a Cluster and MariaDB.

use fleet_harness::Http;

use crate::backend::Backend;
use crate::common::fleet_stack;

matrix!(cookie_set_by_one_app_server_is_honoured_by_the_other => cookie_honoured_across_app_servers:
    redis, cluster, mysql_advisory);

fn cookie_honoured_across_app_servers(backend: Backend) {
    let web = fleet_stack(&backend.save_path(), 2, &[]);
    let http = Http::default();

    let first = http
        .get(&web.url("counter.php"), None)
        .expect("first request");
    assert_eq!((first.status, first.body.trim()), (200, "1"), "{first:?}");
    let cookie = first
        .set_cookie
        .clone()
        .expect("the first reply sets a session cookie");
    let mut workers = vec![first.worker.clone()];
    for expected in 2..=10 {
        let reply = http
            .get(&web.url("counter.php"), Some(&cookie))
            .expect("request");
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(
            reply.body.trim(),
            expected.to_string(),
            "request {expected} on {}",
            reply.worker
        );
        assert_eq!(
            reply.set_cookie, None,
            "request {expected} was given a new session"
        );
        workers.push(reply.worker);
    }
    println!("{}: workers in order: {workers:?}", backend.name());
    for pair in workers.windows(2) {
        assert_ne!(
            pair[0], pair[1],
            "round robin should alternate app servers: {workers:?}"
        );
    }
    assert_eq!(web.php_log(), "", "PHP logged problems");
}
