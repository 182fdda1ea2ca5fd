//! A real `redis-server` on a free loopback port, with a temp dir and no persistence.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::paths::free_port;
use crate::process::Process;
use crate::redis_flavour;

pub struct RedisServer {
    /// The loopback address it listens on (127.0.0.1 unless started with [`RedisServer::start_at`]).
    pub bind: String,
    pub port: u16,
    /// Port of the TLS listener, for servers made by [`RedisServer::start_tls`].
    pub tls_port: Option<u16>,
    process: Option<Process>,
    extra_args: Vec<String>,
    dir: tempfile::TempDir,
    tls_dir: Option<tempfile::TempDir>,
}

/// A temp dir holding a fresh test CA (`ca.pem`) and a server certificate for 127.0.0.1
/// signed by it (`server.pem`, `server.key`), made with the `openssl` command.
pub fn test_certificates() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("fleet-tls-")
        .tempdir()
        .unwrap_or_else(|e| panic!("temp dir: {e}"));
    let d = dir.path();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .unwrap_or_else(|e| panic!("openssl: {e}"));
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1\n")
        .unwrap_or_else(|e| panic!("{e}"));
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=fleet-test-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    dir
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts with extra `redis-server` arguments, e.g. `["--requirepass", "pw"]`.
    pub fn start_with(extra_args: &[&str]) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("fleet-redis-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        let mut server = RedisServer {
            bind: "127.0.0.1".to_owned(),
            port: 0,
            tls_port: None,
            process: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            dir,
            tls_dir: None,
        };
        // A port found free can be taken before redis binds it; try a few.
        for _ in 0..5 {
            server.port = free_port();
            if server.launch() {
                return server;
            }
        }
        panic!(
            "{} did not start; see {}",
            redis_flavour::server(),
            server.dir.path().join("redis.log").display()
        );
    }

    /// Starts on a given loopback address and port, as a second host of a pair that one DNS
    /// name moves between (each on its own 127.0.0.x, the same port).
    pub fn start_at(bind: &str, port: u16, extra_args: &[&str]) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("fleet-redis-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        let mut server = RedisServer {
            bind: bind.to_owned(),
            port,
            tls_port: None,
            process: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            dir,
            tls_dir: None,
        };
        if !server.launch() {
            panic!(
                "{} did not start on {bind}:{port}; see {}",
                redis_flavour::server(),
                server.dir.path().join("redis.log").display()
            );
        }
        server
    }

    /// Starts a replica of `master`.
    pub fn start_replica_of(master: &RedisServer) -> RedisServer {
        let port = master.port.to_string();
        RedisServer::start_with(&["--replicaof", &master.bind, &port])
    }

    /// Waits until this replica has caught up with its master's link (`master_link_status:up`).
    pub fn wait_for_replication(&self) {
        let start = Instant::now();
        while !self
            .command(&["INFO", "replication"])
            .contains("master_link_status:up")
        {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "replica on port {} never linked to its master",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a server with a TLS listener as well, using a fresh test CA and a server
    /// certificate for 127.0.0.1 made with the `openssl` command. The CA is at
    /// [`RedisServer::tls_ca_file`].
    pub fn start_tls() -> RedisServer {
        let dir = test_certificates();
        let d = dir.path();
        let tls_port = free_port();
        let path = |f: &str| d.join(f).display().to_string();
        let args = [
            "--tls-port".to_owned(),
            tls_port.to_string(),
            "--tls-cert-file".to_owned(),
            path("server.pem"),
            "--tls-key-file".to_owned(),
            path("server.key"),
            "--tls-ca-cert-file".to_owned(),
            path("ca.pem"),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut server = RedisServer::start_with(&args);
        crate::paths::wait_for_port(tls_port, Duration::from_secs(10), "redis TLS listener");
        server.tls_port = Some(tls_port);
        server.tls_dir = Some(dir);
        server
    }

    /// The test CA that signed a TLS server's certificate.
    pub fn tls_ca_file(&self) -> Option<std::path::PathBuf> {
        self.tls_dir.as_ref().map(|d| d.path().join("ca.pem"))
    }

    fn launch(&mut self) -> bool {
        let mut command = Command::new(redis_flavour::server());
        command
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                &self.bind,
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--daemonize", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"))
            .arg("--unixsocket")
            .arg(self.socket_path())
            .args(&self.extra_args);
        let mut process = Process::spawn(redis_flavour::server(), &mut command);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if !process.is_running() {
                return false;
            }
            if TcpStream::connect((self.bind.as_str(), self.port)).is_ok() {
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
        format!("redis://{}:{}", self.bind, self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    /// SIGKILLs the server, as a crash or the OOM killer would.
    pub fn kill(&mut self) {
        if let Some(p) = self.process.take() {
            p.signal(libc::SIGKILL);
            drop(p);
        }
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
        panic!(
            "{} did not restart on port {}",
            redis_flavour::server(),
            self.port
        );
    }

    /// Sends one command and returns the first reply line (a bulk string whole), for
    /// inspection from tests without going through the code under test.
    pub fn command(&self, args: &[&str]) -> String {
        command_at(&self.bind, self.port, args)
    }

    /// A numeric field of `INFO`, e.g. `total_connections_received`. Each call opens one
    /// connection of its own, which that field counts.
    pub fn info_field(&self, field: &str) -> u64 {
        let info = self.command(&["INFO", "everything"]);
        info.lines()
            .find_map(|l| {
                l.strip_prefix(field)?
                    .strip_prefix(':')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("INFO has no numeric field {field}"))
    }

    /// Total calls of each command since the last `CONFIG RESETSTAT`, from INFO commandstats.
    pub fn command_calls(&self) -> Vec<(String, u64)> {
        let info = self.command(&["INFO", "commandstats"]);
        info.lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("cmdstat_")?;
                let (name, stats) = rest.split_once(':')?;
                let calls = stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("calls="))?
                    .parse()
                    .ok()?;
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

/// Sends one command to `host:port` and returns the first reply line (a bulk string whole).
pub fn command_at(host: &str, port: u16, args: &[&str]) -> String {
    let mut stream = TcpStream::connect((host, port))
        .unwrap_or_else(|e| panic!("connect to redis at {host}:{port}: {e}"));
    let mut request = format!("*{}\r\n", args.len());
    for a in args {
        request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream
        .write_all(request.as_bytes())
        .unwrap_or_else(|e| panic!("write to redis: {e}"));
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("read from redis: {e}"));
    if let Some(len) = line
        .strip_prefix('$')
        .and_then(|n| n.trim().parse::<usize>().ok())
    {
        let mut body = vec![0u8; len + 2];
        std::io::Read::read_exact(&mut reader, &mut body)
            .unwrap_or_else(|e| panic!("read from redis: {e}"));
        body.truncate(len);
        return String::from_utf8_lossy(&body).into_owned();
    }
    line.trim_end().to_owned()
}

/// A `redis-server --sentinel` watching one master under a name.
pub struct Sentinel {
    pub port: u16,
    _process: Process,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    pub fn command(&self, args: &[&str]) -> String {
        command_at("127.0.0.1", self.port, args)
    }

    /// Waits until this sentinel knows `sentinels` sentinels (itself included) and
    /// `replicas` replicas of master `name`, as it must before it can vote in a failover.
    pub fn wait_until_it_knows(&self, name: &str, sentinels: usize, replicas: usize) {
        let want = format!("name={name},status=ok,");
        let tail = format!("slaves={replicas},sentinels={sentinels}");
        let start = Instant::now();
        loop {
            let info = self.command(&["INFO", "sentinel"]);
            if info
                .lines()
                .any(|l| l.contains(&want) && l.ends_with(&tail))
            {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "sentinel on port {} never saw {tail}: {info}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts a sentinel that watches `master` as `name`, with `quorum`, declaring it down
    /// after `down_after_ms`. `extra` lines go into its config (e.g. `requirepass pw`,
    /// `sentinel auth-pass NAME pw`).
    pub fn start(
        master: &RedisServer,
        name: &str,
        quorum: u32,
        down_after_ms: u64,
        extra: &[&str],
    ) -> Sentinel {
        Sentinel::launch(|port| {
            let mut conf = format!(
                "port {port}\nbind 127.0.0.1\n\
                 sentinel monitor {name} {host} {mport} {quorum}\n\
                 sentinel down-after-milliseconds {name} {down_after_ms}\n\
                 sentinel failover-timeout {name} 10000\nsentinel parallel-syncs {name} 1\n",
                host = master.bind,
                mport = master.port,
            );
            for line in extra {
                conf.push_str(line);
                conf.push('\n');
            }
            conf
        })
    }

    /// Starts a sentinel that listens with TLS only and watches the TLS listener of
    /// `master` (made by [`RedisServer::start_tls`]), with the master's test certificate.
    pub fn start_tls(master: &RedisServer, name: &str) -> Sentinel {
        let (Some(tls_port), Some(ca)) = (master.tls_port, master.tls_ca_file()) else {
            panic!("Sentinel::start_tls needs a master made by RedisServer::start_tls");
        };
        let dir = ca.parent().map(|d| d.to_path_buf()).unwrap_or_default();
        let file = |f: &str| dir.join(f).display().to_string();
        Sentinel::launch(|port| {
            format!(
                "port 0\ntls-port {port}\nbind 127.0.0.1\n\
                 tls-cert-file {cert}\ntls-key-file {key}\ntls-ca-cert-file {ca}\n\
                 tls-auth-clients no\ntls-replication yes\n\
                 sentinel monitor {name} 127.0.0.1 {tls_port} 1\n",
                cert = file("server.pem"),
                key = file("server.key"),
                ca = file("ca.pem"),
            )
        })
    }

    /// Starts `redis-server --sentinel` with the config `conf(port)` gives, on a free port.
    fn launch(conf: impl Fn(u16) -> String) -> Sentinel {
        let dir = tempfile::Builder::new()
            .prefix("fleet-sentinel-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        for _ in 0..5 {
            let port = free_port();
            let config = dir.path().join("sentinel.conf");
            let text = format!(
                "dir {d}\nlogfile {d}/sentinel.log\n{body}",
                d = dir.path().display(),
                body = conf(port)
            );
            std::fs::write(&config, text).unwrap_or_else(|e| panic!("write sentinel.conf: {e}"));
            let mut command = Command::new(redis_flavour::server());
            command.arg(&config).arg("--sentinel");
            let mut process = Process::spawn("redis sentinel", &mut command);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) && process.is_running() {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Sentinel {
                        port,
                        _process: process,
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!(
            "redis sentinel did not start; see {}",
            dir.path().join("sentinel.log").display()
        );
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
        let port = listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("addr: {e}"));
        // The kernel completes handshakes into the backlog; nobody ever reads.
        Blackhole {
            port,
            _listener: listener,
        }
    }
}
