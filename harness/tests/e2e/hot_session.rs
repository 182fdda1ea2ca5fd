//! A hot session (16 clients, a page that holds it 20 ms) is served in turn without long
//! tails, every increment kept: Redis, a Cluster and MariaDB.

use fleet_harness::Http;

use crate::backend::Backend;
use crate::common::{fleet_stack, hammer, percentile, session_id};

matrix!(a_hot_session_is_served_in_turn_without_long_tails => hot_session: redis, cluster, mysql_advisory);

fn hot_session(backend: Backend) {
    // 16 clients on one session whose page holds it 20 ms: the serial limit is 50 req/s,
    // and with fair turns each request waits about 15 others' turns, not seconds.
    const REQUESTS: usize = 160;
    const CLIENTS: usize = 16;
    let web = fleet_stack(&backend.save_path(), 8, &[]);
    let http = Http::default();
    let cookie = http
        .get(&web.url("counter.php"), None)
        .expect("first")
        .set_cookie
        .expect("cookie");
    let load = hammer(
        &http,
        &web.url("counter.php?hold_ms=20"),
        &cookie,
        REQUESTS,
        CLIENTS,
    );
    let (lat, rps) = (
        &load.latencies,
        REQUESTS as f64 / load.elapsed.as_secs_f64(),
    );
    println!(
        "{}: hot session, {CLIENTS} clients, 20 ms hold: {:.1} req/s ({:.0}% of the 50 req/s serial limit), p50 {:?}, p99 {:?}, max {:?}",
        backend.name(),
        rps,
        rps / 50.0 * 100.0,
        percentile(lat, 0.5),
        percentile(lat, 0.99),
        lat[lat.len() - 1]
    );
    assert_eq!(
        backend.stored(&session_id(&cookie)),
        format!("n|i:{};", REQUESTS + 1)
    );
    assert_eq!(web.php_log(), "", "PHP logged problems");
}
