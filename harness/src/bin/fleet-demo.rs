//! The demo: a local Redis, two PHP-FPM app servers behind an nginx round-robin balancer,
//! and ten requests of one visitor, showing each app server honouring the session cookie
//! the other one set.

use fleet_harness::paths::extension;
use fleet_harness::{Http, RedisServer, WebStack};

fn main() {
    // Exit only after `run` has dropped the servers, so none is left running.
    std::process::exit(if run() { 0 } else { 1 });
}

fn run() -> bool {
    let ext = extension();
    let redis = RedisServer::start();
    let save_path = format!("{}?prefix=demo:", redis.url());
    let ext_s = ext.display().to_string();
    let web = WebStack::start(
        &["app-a", "app-b"],
        2,
        &[
            ("extension", &ext_s),
            ("session.save_handler", "fleet"),
            ("session.save_path", &save_path),
        ],
    );
    println!("Fleet demo");
    println!("  extension: {ext_s}");
    println!(
        "  redis:     {} (pid {})",
        redis.url(),
        redis.pid().unwrap_or(0)
    );
    for p in &web.pools {
        println!(
            "  {}:     php-fpm on 127.0.0.1:{} (pid {})",
            p.name,
            p.port,
            p.master_pid()
        );
    }
    println!("  nginx:     round robin on {}", web.url(""));
    println!();
    let http = Http::default();
    let mut cookie: Option<String> = None;
    let mut ok = true;
    for i in 1..=10 {
        let reply = match http.get(&web.url("counter.php"), cookie.as_deref()) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("request {i}: {e}");
                return false;
            }
        };
        let counter = reply.body.trim();
        let note = match (&cookie, &reply.set_cookie) {
            (None, Some(c)) => format!("new session, cookie {}…", &c[..c.len().min(18)]),
            (Some(_), None) => "sent the cookie back".to_owned(),
            (Some(_), Some(_)) => "cookie sent, got a NEW one (session lost!)".to_owned(),
            (None, None) => "no cookie set (session failed!)".to_owned(),
        };
        println!(
            "request {i:>2}: served by {:<6} counter = {counter:<3} {note}",
            reply.worker
        );
        ok &= reply.status == 200 && counter == i.to_string();
        if cookie.is_none() {
            cookie = reply.set_cookie.clone();
        }
    }
    println!();
    let log = web.php_log();
    if !log.is_empty() {
        println!("PHP logged:\n{log}");
    }
    if ok {
        println!("OK: one session shared by both app servers, counter 1..10 with no loss.");
    } else {
        println!("FAILED: the session was not shared correctly.");
    }
    ok
}
