//! 500 requests at 32 concurrent on one session lose no increment, each sees a distinct
//! counter, and every FPM worker keeps its one connection: Redis, a Cluster, and MariaDB in
//! every lock mode.

use fleet_harness::Http;

use crate::backend::Backend;
use crate::common::{fleet_stack, hammer, percentile, session_id};

matrix!(five_hundred_concurrent_increments_of_one_session_lose_nothing => five_hundred_concurrent_increments:
    redis,
    cluster,
    mysql_advisory,
    /// The default uses the stored procedures; this is the plain-statement path.
    mysql_advisory_without_procedures,
    mysql_row);

fn five_hundred_concurrent_increments(backend: Backend) {
    const REQUESTS: usize = 500;
    const CLIENTS: usize = 32;
    // PHP's gc (1 request in 100 by default) runs on a short-lived connection of its own on
    // MySQL while a session is held, which would blur the count of request connections
    // below; gc under this load is core/tests/mysql_gc_in_request.rs's.
    let web = fleet_stack(&backend.save_path(), 8, &[("session.gc_probability", "0")]);
    let http = Http::default();
    let first = http
        .get(&web.url("counter.php"), None)
        .expect("first request");
    let cookie = first.set_cookie.clone().expect("session cookie");
    let sid = session_id(&cookie);
    if let Backend::Redis(redis) = &backend {
        redis.command(&["CONFIG", "RESETSTAT"]);
    }
    let connections_before = backend.connections();

    let load = hammer(&http, &web.url("counter.php"), &cookie, REQUESTS, CLIENTS);

    // Each FPM worker connects at most once and keeps its connection (+1: the query that
    // counts them).
    let new_connections = backend.connections() - connections_before;
    let workers = 2 * 8;
    println!(
        "{}: new connections during {REQUESTS} requests: {new_connections} (for {workers} workers)",
        backend.name()
    );
    assert!(
        new_connections <= workers as u64 * backend.connections_per_worker() + 1,
        "connections are not reused: {new_connections}"
    );
    let stored = backend.stored(&sid);
    let final_counter: usize = stored
        .trim_start_matches("n|i:")
        .trim_end_matches(';')
        .parse()
        .unwrap_or(0);
    assert_eq!(
        final_counter,
        REQUESTS + 1,
        "{} of {REQUESTS} increments were lost",
        (REQUESTS + 1).saturating_sub(final_counter)
    );
    let mut seen = load.counters.clone();
    seen.sort_unstable();
    seen.dedup();
    // The first request made it 1; each of the 500 must have seen a distinct next value.
    assert_eq!(
        seen.len(),
        REQUESTS,
        "two requests saw the same counter value"
    );

    let lat = &load.latencies;
    println!(
        "{}: {REQUESTS} requests, {CLIENTS} concurrent, one session: final counter {} (+1 initial), {:.0} req/s, p50 {:?}, p99 {:?}, max {:?}",
        backend.name(),
        seen.len(),
        REQUESTS as f64 / load.elapsed.as_secs_f64(),
        percentile(lat, 0.5),
        percentile(lat, 0.99),
        lat[lat.len() - 1]
    );
    if let Backend::Redis(redis) = &backend {
        println!("redis commands during the run: {:?}", redis.command_calls());
    }
    assert_eq!(web.php_log(), "", "PHP logged problems");
}
