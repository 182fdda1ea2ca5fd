//! A TCP proxy on loopback that delays every chunk of data by a fixed time in each
//! direction, standing in for a LAN between app servers and the backend (this machine's
//! kernel has no netem).
//!
//! Each direction has a reader that timestamps what it reads and a writer that sends it when
//! it is due, so the delay is added to every round trip without limiting throughput.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

const SPIN: Duration = Duration::from_micros(120);

pub struct LatencyProxy {
    pub port: u16,
    /// Reads from clients, i.e. client-to-server messages: a request/reply protocol's round
    /// trips (a pipelined batch that arrives together counts once).
    client_messages: Arc<AtomicU64>,
}

impl LatencyProxy {
    /// Listens on a free loopback port and forwards to `127.0.0.1:upstream_port`.
    pub fn start(upstream_port: u16, delay: Duration) -> LatencyProxy {
        let listener =
            TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("proxy bind: {e}"));
        let port = listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("proxy addr: {e}"));
        let client_messages = Arc::new(AtomicU64::new(0));
        let counter = client_messages.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                pipe(client, server, delay, Some(counter.clone()));
                pipe(s2, c2, delay, None);
            }
        });
        LatencyProxy {
            port,
            client_messages,
        }
    }

    /// Client-to-server messages forwarded so far.
    pub fn client_messages(&self) -> u64 {
        self.client_messages.load(Ordering::Relaxed)
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration, count: Option<Arc<AtomicU64>>) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Some(count) = &count {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    thread::spawn(move || {
        for (due, data) in rx {
            // Sleep most of the way, then yield until due: a plain sleep overshoots by
            // 50-100 µs, which would make the "LAN" slower than intended.
            let now = Instant::now();
            if due > now + SPIN {
                thread::sleep(due - now - SPIN);
            }
            while Instant::now() < due {
                thread::yield_now();
            }
            if to.write_all(&data).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
