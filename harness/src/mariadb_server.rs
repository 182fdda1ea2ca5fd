//! A real `mariadbd` on a free loopback port: `mariadb-install-db` into a temp datadir, a
//! database and a password user for Fleet, stopped by PID when dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::paths::free_port;
use crate::process::Process;

/// The database, user and password every test server has.
pub const DATABASE: &str = "fleet";
pub const USER: &str = "fleet";
pub const PASSWORD: &str = "fleet-test-pw";

pub struct MariaDbServer {
    /// The loopback address it listens on (127.0.0.1 unless started with [`MariaDbServer::start_at`]).
    pub bind: String,
    pub port: u16,
    /// With a server id the server writes a binary log, so replicas can follow it.
    server_id: Option<u32>,
    process: Option<Process>,
    dir: tempfile::TempDir,
    tls_dir: Option<tempfile::TempDir>,
}

impl MariaDbServer {
    pub fn start() -> MariaDbServer {
        MariaDbServer::start_inner(None, "127.0.0.1", None, None)
    }

    /// Starts on a given loopback address and port (e.g. the second host of a pair one DNS
    /// name moves between), as a replication primary with binary log and `server_id`.
    pub fn start_at(bind: &str, port: Option<u16>, server_id: u32) -> MariaDbServer {
        MariaDbServer::start_inner(None, bind, port, Some(server_id))
    }

    /// Makes this (fresh) server a read-only replica of `primary`, from the primary's
    /// current binary log position (both were bootstrapped alike), and waits until it runs.
    pub fn replicate_from(&self, primary: &MariaDbServer) {
        primary.admin(&format!(
            "CREATE USER IF NOT EXISTS 'repl'@'%' IDENTIFIED BY '{PASSWORD}';
             GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';"
        ));
        let status = primary.admin("SHOW MASTER STATUS");
        let mut fields = status.split('\t');
        let (Some(file), Some(position)) = (fields.next(), fields.next()) else {
            panic!("the primary has no binary log: {status:?}");
        };
        self.admin(&format!(
            "CHANGE MASTER TO MASTER_HOST='{host}', MASTER_PORT={port}, MASTER_USER='repl',
               MASTER_PASSWORD='{PASSWORD}', MASTER_LOG_FILE='{file}', MASTER_LOG_POS={position};
             SET GLOBAL read_only = 1;
             START SLAVE;",
            host = primary.bind,
            port = primary.port,
        ));
        let start = Instant::now();
        loop {
            // ON once both the I/O and the SQL thread run.
            let running = self.admin("SHOW GLOBAL STATUS LIKE 'Slave_running'");
            if running.ends_with("ON") {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "replication did not start: {running}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until this replica has applied everything its primary has written.
    pub fn wait_caught_up(&self, primary: &MariaDbServer) {
        let start = Instant::now();
        loop {
            let want = primary.admin("SELECT @@global.gtid_binlog_pos");
            let have = self.admin("SELECT @@global.gtid_slave_pos");
            if want == have {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "replica stuck at {have}, primary at {want}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Promotes a replica as an orchestrator would: stop replicating, take writes.
    pub fn promote(&self) {
        self.admin("STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0;");
    }

    /// Starts a server that offers TLS with a certificate from a fresh test CA (see
    /// [`MariaDbServer::tls_ca_file`]), and a user `fleet_tls` (same password) that must use it.
    pub fn start_tls() -> MariaDbServer {
        let server = MariaDbServer::start_inner(
            Some(crate::redis_server::test_certificates()),
            "127.0.0.1",
            None,
            None,
        );
        server.admin(&format!(
            "CREATE USER 'fleet_tls'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}' REQUIRE SSL;
             GRANT ALL ON {DATABASE}.* TO 'fleet_tls'@'127.0.0.1';"
        ));
        server
    }

    /// The test CA that signed a TLS server's certificate.
    pub fn tls_ca_file(&self) -> Option<PathBuf> {
        self.tls_dir.as_ref().map(|d| d.path().join("ca.pem"))
    }

    fn start_inner(
        tls_dir: Option<tempfile::TempDir>,
        bind: &str,
        port: Option<u16>,
        server_id: Option<u32>,
    ) -> MariaDbServer {
        let dir = tempfile::Builder::new()
            .prefix("fleet-mariadb-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        // Its own tmpdir: servers bootstrapping side by side in /tmp trip over each other's
        // temporary tables.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap_or_else(|e| panic!("{}: {e}", tmp.display()));
        let install = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args(["--user=root", "--auth-root-authentication-method=socket", "--skip-test-db", "--skip-name-resolve"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run mariadb-install-db: {e}; is mariadb-server installed? run scripts/setup.sh"));
        assert!(
            install.status.success(),
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&install.stderr)
        );
        let mut server = MariaDbServer {
            bind: bind.to_owned(),
            server_id,
            port: 0,
            process: None,
            dir,
            tls_dir,
        };
        // A port found free can be taken before mariadbd binds it; try a few.
        for _ in 0..5 {
            server.port = port.unwrap_or_else(free_port);
            if server.launch() {
                server.admin(&format!(
                    "CREATE DATABASE {DATABASE};
                     CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';
                     CREATE USER '{USER}'@'localhost' IDENTIFIED BY '{PASSWORD}';
                     GRANT ALL ON {DATABASE}.* TO '{USER}'@'127.0.0.1';
                     GRANT ALL ON {DATABASE}.* TO '{USER}'@'localhost';"
                ));
                return server;
            }
        }
        panic!(
            "mariadbd did not start; see {}",
            server.log_path().display()
        );
    }

    fn launch(&mut self) -> bool {
        let d = self.dir.path();
        let mut command = Command::new("mariadbd");
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--socket={}", self.socket_path().display()))
            .arg(format!("--pid-file={}", d.join("mariadbd.pid").display()))
            .arg(format!("--log-error={}", self.log_path().display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--tmpdir={}", d.join("tmp").display()))
            .arg(format!("--bind-address={}", self.bind))
            .args(["--user=root", "--skip-name-resolve"])
            // A small, throwaway server: little memory, no durability work, instant shutdown.
            .args([
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=16M",
                "--innodb-flush-log-at-trx-commit=2",
            ])
            .args([
                "--innodb-doublewrite=0",
                "--innodb-fast-shutdown=2",
                "--max-connections=500",
            ]);
        match self.server_id {
            Some(id) => command.arg(format!("--server-id={id}")).args([
                "--log-bin=binlog",
                "--binlog-format=ROW",
                "--log-slave-updates=1",
            ]),
            None => command.arg("--skip-log-bin"),
        };
        if let Some(tls) = &self.tls_dir {
            let t = tls.path();
            command
                .arg(format!("--ssl-ca={}", t.join("ca.pem").display()))
                .arg(format!("--ssl-cert={}", t.join("server.pem").display()))
                .arg(format!("--ssl-key={}", t.join("server.key").display()));
        }
        let mut process = Process::spawn("mariadbd", &mut command);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if !process.is_running() {
                return false;
            }
            if TcpStream::connect((self.bind.as_str(), self.port)).is_ok()
                && self.socket_path().exists()
            {
                self.process = Some(process);
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("mariadbd.log")
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("mariadbd.sock")
    }

    /// A save_path for the test database as the test user, with extra `options`.
    pub fn save_path(&self, options: &str) -> String {
        let sep = if options.is_empty() { "" } else { "?" };
        format!(
            "mysql://{USER}:{PASSWORD}@{}:{}/{DATABASE}{sep}{options}",
            self.bind, self.port
        )
    }

    /// Runs SQL as root over the socket with the `mariadb` client; returns its tab-separated
    /// output without headers.
    pub fn admin(&self, sql: &str) -> String {
        run_client(&self.socket_path(), sql)
    }

    /// Runs SQL in the test database as root.
    pub fn query(&self, sql: &str) -> String {
        self.admin(&format!("USE {DATABASE}; {sql}"))
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    /// Stops the server (SIGKILL-like fast shutdown); the datadir is kept for [`start_again`].
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }

    /// Starts the stopped server again on the same port and datadir.
    pub fn start_again(&mut self) {
        assert!(
            self.launch(),
            "mariadbd did not restart; see {}",
            self.log_path().display()
        );
    }
}

fn run_client(socket: &Path, sql: &str) -> String {
    let out = Command::new("mariadb")
        .arg("--no-defaults")
        .arg(format!("--socket={}", socket.display()))
        .args(["-uroot", "--batch", "--skip-column-names", "-e", sql])
        .output()
        .unwrap_or_else(|e| panic!("cannot run the mariadb client: {e}"));
    assert!(
        out.status.success(),
        "mariadb client failed on {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        self.stop();
    }
}
