//! A real `redis-server` on a free loopback port, with a temp dir and no persistence.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::paths::free_port;
use crate::process::Process;

pub struct RedisServer {
    pub port: u16,
    process: Option<Process>,
    extra_args: Vec<String>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts with extra `redis-server` arguments, e.g. `["--requirepass", "pw"]`.
    pub fn start_with(extra_args: &[&str]) -> RedisServer {
        let dir = tempfile::Builder::new().prefix("fleet-redis-").tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let mut server = RedisServer {
            port: 0,
            process: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            dir,
        };
        // A port found free can be taken before redis binds it; try a few.
        for _ in 0..5 {
            server.port = free_port();
            if server.launch() {
                return server;
            }
        }
        panic!("redis-server did not start; see {}", server.dir.path().join("redis.log").display());
    }

    fn launch(&mut self) -> bool {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"))
            .arg("--unixsocket")
            .arg(self.socket_path())
            .args(&self.extra_args);
        let mut process = Process::spawn("redis-server", &mut command);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if !process.is_running() {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                self.process = Some(process);
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// The server's unix socket.
    pub fn socket_path(&self) -> std::path::PathBuf {
        self.dir.path().join("redis.sock")
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    /// Stops the server (data is lost: no persistence).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }

    /// Stops and starts again on the same port, as a crashed-and-restarted server would.
    pub fn restart(&mut self) {
        self.stop();
        for _ in 0..50 {
            if self.launch() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("redis-server did not restart on port {}", self.port);
    }

    /// Sends one command (inline protocol) and returns the first reply line, for
    /// inspection from tests without going through the code under test.
    pub fn command(&self, args: &[&str]) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap_or_else(|e| panic!("connect to redis: {e}"));
        let mut request = format!("*{}\r\n", args.len());
        for a in args {
            request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream.write_all(request.as_bytes()).unwrap_or_else(|e| panic!("write to redis: {e}"));
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap_or_else(|e| panic!("read from redis: {e}"));
        if let Some(len) = line.strip_prefix('$').and_then(|n| n.trim().parse::<usize>().ok()) {
            let mut body = vec![0u8; len + 2];
            std::io::Read::read_exact(&mut reader, &mut body).unwrap_or_else(|e| panic!("read from redis: {e}"));
            body.truncate(len);
            return String::from_utf8_lossy(&body).into_owned();
        }
        line.trim_end().to_owned()
    }

    /// Total calls of each command since the last `CONFIG RESETSTAT`, from INFO commandstats.
    pub fn command_calls(&self) -> Vec<(String, u64)> {
        let info = self.command(&["INFO", "commandstats"]);
        info.lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("cmdstat_")?;
                let (name, stats) = rest.split_once(':')?;
                let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls="))?.parse().ok()?;
                Some((name.to_owned(), calls))
            })
            .collect()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP endpoint that accepts connections and never answers, like a hung server.
pub struct Blackhole {
    pub port: u16,
    _listener: TcpListener,
}

impl Blackhole {
    pub fn start() -> Blackhole {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("addr: {e}"));
        // The kernel completes handshakes into the backlog; nobody ever reads.
        Blackhole { port, _listener: listener }
    }
}
