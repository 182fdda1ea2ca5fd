//! Helpers the scenarios share: the web stack, session ids from cookies, `hammer` (many
//! clients on one session) and its percentiles, and `hold_session` (a page that keeps a
//! session while the test looks at the waiters).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleet_harness::{Http, WebStack};

pub fn session_id(cookie: &str) -> String {
    cookie
        .split_once('=')
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

pub fn fleet_stack(save_path: &str, workers: usize, extra: &[(&str, &str)]) -> WebStack {
    WebStack::fleet(save_path, workers, extra)
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// What `hammer` saw: each reply's counter, each request's latency (sorted), and the wall time.
pub struct Load {
    pub counters: Vec<usize>,
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
}

/// Sends `requests` GETs of `url` with `cookie` from `clients` threads at once; every reply
/// must be a 200 carrying a counter.
pub fn hammer(http: &Http, url: &str, cookie: &str, requests: usize, clients: usize) -> Load {
    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (http, url, cookie) = (http.clone(), url.to_owned(), cookie.to_owned());
            let (next, results) = (next.clone(), results.clone());
            std::thread::spawn(move || {
                while next.fetch_add(1, Ordering::SeqCst) < requests {
                    let t = Instant::now();
                    let reply = http.get(&url, Some(&cookie)).expect("request");
                    let latency = t.elapsed();
                    assert_eq!(reply.status, 200, "{reply:?}");
                    let counter = reply.body.trim().parse::<usize>().expect("a counter");
                    results.lock().unwrap().push((counter, latency));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let elapsed = start.elapsed();
    let results = results.lock().unwrap().clone();
    let counters = results.iter().map(|(c, _)| *c).collect();
    let mut latencies: Vec<Duration> = results.iter().map(|(_, l)| *l).collect();
    latencies.sort_unstable();
    Load {
        counters,
        latencies,
        elapsed,
    }
}

/// Starts hold_for.php on the visitor's session for `ms` and returns once it holds the
/// session, with the thread that returns the holder's reply.
pub fn hold_session(
    stack: &WebStack,
    http: &Http,
    cookie: &str,
    ms: u64,
    tag: &str,
) -> std::thread::JoinHandle<String> {
    let pid_file = stack.dir().join(format!("holder-{tag}"));
    let url = stack.url(&format!(
        "/hold_for.php?ms={ms}&pid_file={}",
        pid_file.display()
    ));
    let (http, cookie) = (http.clone(), cookie.to_owned());
    let holder = std::thread::spawn(move || http.get(&url, Some(&cookie)).expect("hold").body);
    let t = Instant::now();
    while !pid_file.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the holder never got the session"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    holder
}
