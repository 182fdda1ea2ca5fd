//! PHP-FPM pools behind an nginx round-robin balancer, as two app servers behind a load
//! balancer would be, and a small HTTP client for them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::paths::{free_port, wait_for_port, www};
use crate::process::Process;

/// One PHP-FPM master (this machine's, [`crate::php::fpm`]) with one pool: one "app server".
pub struct FpmPool {
    pub name: String,
    pub port: u16,
    process: Process,
    php_log: PathBuf,
}

impl FpmPool {
    /// Starts PHP-FPM without any php.ini (`-n`), so only `ini` applies; `ini` may load
    /// extensions (`("extension", "/path/to/fleet.so")`).
    pub fn start(name: &str, workers: usize, ini: &[(&str, &str)], dir: &Path) -> FpmPool {
        let port = free_port();
        let php_log = dir.join(format!("php-{name}.log"));
        let config = dir.join(format!("fpm-{name}.conf"));
        let conf = format!(
            "[global]\npid = {dir}/fpm-{name}.pid\nerror_log = {dir}/fpm-{name}.log\ndaemonize = no\nlog_level = warning\n\
             [{name}]\nlisten = 127.0.0.1:{port}\nlisten.backlog = 1024\npm = static\npm.max_children = {workers}\n\
             clear_env = no\ncatch_workers_output = yes\nenv[FLEET_WORKER] = {name}\n\
             php_admin_flag[log_errors] = on\nphp_admin_flag[display_errors] = off\nphp_admin_value[error_log] = {log}\n",
            dir = dir.display(),
            log = php_log.display(),
        );
        std::fs::write(&config, conf).unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
        let mut command = Command::new(crate::php::fpm());
        command.args(["-n", "-F", "-R", "-y"]).arg(&config);
        for (k, v) in ini {
            // Quoted: save paths contain `=` and `?`, which the INI parser reads as syntax.
            command.arg("-d").arg(format!("{k}=\"{v}\""));
        }
        let process = Process::spawn(&format!("php-fpm pool {name}"), &mut command);
        wait_for_port(
            port,
            Duration::from_secs(10),
            &format!("php-fpm pool {name}"),
        );
        FpmPool {
            name: name.to_owned(),
            port,
            process,
            php_log,
        }
    }

    /// What PHP logged (warnings, notices) in this pool so far.
    pub fn php_log(&self) -> String {
        std::fs::read_to_string(&self.php_log).unwrap_or_default()
    }

    pub fn master_pid(&self) -> u32 {
        self.process.pid()
    }
}

/// nginx balancing round robin over several FPM pools, serving `harness/www`.
pub struct WebStack {
    pub port: u16,
    pub pools: Vec<FpmPool>,
    // Declared before `dir` so nginx stops before its prefix dir is removed.
    _nginx: Process,
    dir: tempfile::TempDir,
}

impl WebStack {
    /// Starts one FPM pool per name (each with `workers` workers and the same `ini`) and an
    /// nginx in front of them.
    pub fn start(pool_names: &[&str], workers: usize, ini: &[(&str, &str)]) -> WebStack {
        let dir = tempfile::Builder::new()
            .prefix("fleet-web-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        let pools: Vec<FpmPool> = pool_names
            .iter()
            .map(|n| FpmPool::start(n, workers, ini, dir.path()))
            .collect();
        let port = free_port();
        let d = dir.path().display();
        let mut upstreams = String::new();
        for p in &pools {
            let _ = writeln!(upstreams, "    server 127.0.0.1:{};", p.port);
        }
        // As root, nginx would otherwise switch its workers to a user that cannot use the
        // temp dirs below.
        // SAFETY: geteuid has no preconditions.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root;"
        } else {
            ""
        };
        let conf = format!(
            "{user}\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  fastcgi_temp_path {d}/fastcgi;\n\
               proxy_temp_path {d}/proxy;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               upstream app {{\n{upstreams}  }}\n\
               server {{\n    listen 127.0.0.1:{port} backlog=4096;\n    root {www};\n\
                 location ~ \\.php$ {{\n      include {location};\n    }}\n  }}\n}}\n",
            www = www().display(),
            // The PHP location the docker compose stack's nginx uses too.
            location = crate::paths::repo_root().join("docker/nginx/php-location.conf").display(),
        );
        let config = dir.path().join("nginx.conf");
        std::fs::write(&config, conf).unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
        let mut command = Command::new("nginx");
        command
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&config)
            .args(["-g", "daemon off;"]);
        let nginx = Process::spawn("nginx", &mut command);
        wait_for_port(port, Duration::from_secs(10), "nginx");
        WebStack {
            port,
            pools,
            _nginx: nginx,
            dir,
        }
    }

    /// Two app servers (`app-a`, `app-b`) of `workers` workers each with the built Fleet
    /// extension as their session handler on `save_path`, plus `extra` INI settings.
    pub fn fleet(save_path: &str, workers: usize, extra: &[(&str, &str)]) -> WebStack {
        let ext = crate::paths::extension().display().to_string();
        let mut ini = vec![
            ("extension", ext.as_str()),
            ("session.save_handler", "fleet"),
            ("session.save_path", save_path),
        ];
        ini.extend_from_slice(extra);
        WebStack::start(&["app-a", "app-b"], workers, &ini)
    }

    /// Whether any FPM worker died (a crash, not a test's own SIGKILL) per the masters' logs.
    pub fn a_worker_died(&self) -> Option<String> {
        let logs: String = self
            .pools
            .iter()
            .map(|p| {
                std::fs::read_to_string(self.dir().join(format!("fpm-{}.log", p.name)))
                    .unwrap_or_default()
            })
            .collect();
        logs.contains("exited on signal").then_some(logs)
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    /// Everything PHP logged in all pools.
    pub fn php_log(&self) -> String {
        self.pools
            .iter()
            .map(FpmPool::php_log)
            .collect::<Vec<_>>()
            .join("")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A reply, with what the tests look at.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// `name=value` of the session cookie, if the reply set one.
    pub set_cookie: Option<String>,
    /// The FPM pool that served the request (`X-Fleet-Worker`).
    pub worker: String,
}

/// A blocking HTTP client with bounded timeouts.
#[derive(Clone)]
pub struct Http {
    agent: ureq::Agent,
}

impl Default for Http {
    fn default() -> Self {
        Http::new(Duration::from_secs(60))
    }
}

impl Http {
    pub fn new(timeout: Duration) -> Http {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_idle_connections_per_host(64)
            .build()
            .new_agent();
        Http { agent }
    }

    pub fn get(&self, url: &str, cookie: Option<&str>) -> Result<Reply, String> {
        self.get_as(url, cookie, None)
    }

    /// A GET with a User-Agent header of `user_agent`, if given.
    pub fn get_as(
        &self,
        url: &str,
        cookie: Option<&str>,
        user_agent: Option<&str>,
    ) -> Result<Reply, String> {
        let mut request = self.agent.get(url);
        if let Some(cookie) = cookie {
            request = request.header("Cookie", cookie);
        }
        if let Some(agent) = user_agent {
            request = request.header("User-Agent", agent);
        }
        let mut response = request.call().map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let set_cookie = header("set-cookie").and_then(|c| c.split(';').next().map(str::to_owned));
        let worker = header("x-fleet-worker").unwrap_or_default();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("GET {url}: body: {e}"))?;
        Ok(Reply {
            status,
            body,
            set_cookie,
            worker,
        })
    }
}

impl Drop for WebStack {
    /// A failing test shows what nginx, FPM and PHP logged, since the temp dir goes away.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                eprintln!("--- last lines of {} ---", path.display());
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}
