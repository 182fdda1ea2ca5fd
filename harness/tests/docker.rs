//! The docker/ files, built and run for real: scripts/docker-base.sh makes the base images
//! (no registry is reachable from the machines that test Fleet), `compose up --build` starts
//! the demo, one visitor's ten requests through the nginx container count 1..10 alternating
//! app1/app2, and `compose run --rm tests` runs the .phpt suite in containers: exit 0, and
//! non-zero with a failing test. Once per Debian release (PHP 8.2 on 12, PHP 8.4 on 13).
//! Without a Docker engine the live tests skip with the reason printed, except under CI=true,
//! where a missing engine fails them; FLEET_DOCKER_SUITES (e.g. "trixie") limits the
//! releases. Static checks of the files run everywhere.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use fleet_harness::paths::{extension, free_port, repo_root, run_tests_count};
use fleet_harness::Http;

/// docker/compose.yaml as JSON, read by PyYAML (Debian's python3-yaml).
fn compose_file() -> serde_json::Value {
    let path = repo_root().join("docker/compose.yaml");
    let out = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(&path)
        .output()
        .expect("python3 runs (python3-yaml installed by scripts/setup.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The stage names (`FROM … AS name`) of a Dockerfile.
fn stages(dockerfile: &str) -> BTreeSet<String> {
    dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .filter_map(|l| l.split(" AS ").nth(1).map(|s| s.trim().to_owned()))
        .collect()
}

/// The text of stage `name`, from its FROM line to the next one.
fn stage<'a>(dockerfile: &'a str, name: &str) -> &'a str {
    let starts: Vec<usize> = dockerfile
        .match_indices("FROM ")
        .map(|(i, _)| i)
        .filter(|&i| i == 0 || dockerfile.as_bytes()[i - 1] == b'\n')
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(k, &start)| {
            &dockerfile[start..starts.get(k + 1).copied().unwrap_or(dockerfile.len())]
        })
        .find(|text| {
            text.lines()
                .next()
                .is_some_and(|l| l.ends_with(&format!(" AS {name}")))
        })
        .unwrap_or_else(|| panic!("no stage {name}"))
}

#[test]
fn compose_file_names_only_what_exists() {
    let compose = compose_file();
    let docker = repo_root().join("docker");
    let services = compose["services"].as_object().expect("services");
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    for wanted in ["nginx", "app1", "app2", "redis", "mariadb", "tests"] {
        assert!(
            names.contains(wanted),
            "service {wanted} missing: {names:?}"
        );
    }
    for (name, service) in services {
        // Every service is built from docker/ on the Debian base: no registry image.
        let build = service
            .get("build")
            .unwrap_or_else(|| panic!("{name} has no build"));
        let context = docker.join(build["context"].as_str().expect("context"));
        let file = context.join(build["dockerfile"].as_str().expect("dockerfile"));
        assert!(file.is_file(), "{name}: {} missing", file.display());
        let target = build["target"].as_str().expect("target");
        let defined = stages(&std::fs::read_to_string(&file).expect("Dockerfile"));
        assert!(
            defined.contains(target),
            "{name}: no stage {target} in {defined:?}"
        );
        assert_eq!(
            build["args"]["DEBIAN"], "${DEBIAN:-bookworm}",
            "{name}: the Debian release is a build argument"
        );
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let source = volume
                .as_str()
                .and_then(|v| v.split(':').next())
                .expect("a mount");
            assert!(
                compose["volumes"].get(source).is_some(),
                "{name}: {source} is a named volume (no bind mounts: the images hold their files)"
            );
        }
        let deps = &service["depends_on"];
        for dep in deps
            .as_object()
            .map(|d| d.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            assert!(names.contains(dep.as_str()), "{name} depends on {dep}");
            assert_eq!(
                deps[&dep]["condition"], "service_healthy",
                "{name} waits for {dep}'s health check"
            );
        }
    }
    // The balancer sends to both app containers, with the PHP location the e2e tests use.
    let nginx = read("docker/nginx/default.conf");
    assert!(nginx.contains("server app1:9000;") && nginx.contains("server app2:9000;"));
    assert!(nginx.contains("include /etc/nginx/fleet/php-location.conf;"));
    let services_file = read("docker/services.Dockerfile");
    assert!(
        services_file.contains("COPY nginx/php-location.conf /etc/nginx/fleet/php-location.conf")
    );
    let web = read("harness/src/web.rs");
    assert!(
        web.contains("docker/nginx/php-location.conf"),
        "the harness includes the same location"
    );
}

#[test]
fn dockerfile_builds_with_the_phpize_steps_and_copies_only_what_exists() {
    let dockerfile = read("docker/Dockerfile");
    let first_from = dockerfile.find("\nFROM ").expect("a FROM");
    assert!(
        dockerfile[..first_from].contains("ARG DEBIAN=bookworm\n"),
        "the Debian release is a build argument"
    );
    assert!(
        dockerfile[..first_from].contains("ARG RUST_VERSION="),
        "the Rust version is pinned"
    );
    assert!(dockerfile.contains("FROM rust:${RUST_VERSION}-${DEBIAN} AS build\n"));
    assert!(dockerfile.contains("FROM debian:${DEBIAN}-slim AS app\n"));
    // The same commands harness/tests/install.rs runs natively.
    assert!(dockerfile.contains("RUN phpize && ./configure --enable-fleet && make && make install"));
    let install = read("harness/tests/install.rs");
    for step in [
        "\"phpize\"",
        "\"./configure\", &[\"--enable-fleet\"]",
        "\"make\", &[]",
        "\"install\"",
    ] {
        assert!(install.contains(step), "install.rs runs {step}");
    }
    // Paths from php-config, never a PHP version written down.
    let version = regex_like_php_version(&dockerfile);
    assert!(
        version.is_none(),
        "a PHP version in docker/Dockerfile: {version:?}"
    );
    let app = stage(&dockerfile, "app");
    for word in ["rust", "cargo", "clang", "gcc", "php-dev", "make "] {
        assert!(!app.contains(word), "no {word} in the app image");
    }
    assert!(
        app.contains("HEALTHCHECK "),
        "the app image has a health check"
    );
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for source in &parts[1..parts.len() - 1] {
            assert!(
                repo_root().join(source).exists(),
                "COPY source {source} missing"
            );
        }
    }
    let services = read("docker/services.Dockerfile");
    for name in ["redis", "mariadb", "nginx"] {
        let text = stage(&services, name);
        assert!(
            text.starts_with(&format!("FROM debian:${{DEBIAN}}-slim AS {name}")),
            "{name} on the Debian base"
        );
        assert!(text.contains("HEALTHCHECK "), "{name} has a health check");
    }
    for script in [
        "docker/run-tests.sh",
        "docker/mariadb/start.sh",
        "scripts/docker-base.sh",
    ] {
        let shell = if script.ends_with("docker-base.sh") {
            "bash"
        } else {
            "sh"
        };
        let syntax = Command::new(shell)
            .arg("-n")
            .arg(repo_root().join(script))
            .status()
            .expect("sh");
        assert!(syntax.success(), "{script} parses");
    }
    // A failed .phpt makes run-tests.php (and so the script) exit non-zero.
    assert!(read("docker/run-tests.sh").contains("REPORT_EXIT_STATUS=1"));
}

/// A `d.d` (8.2, 8.4) outside comments: a PHP version the Dockerfile should not name.
fn regex_like_php_version(dockerfile: &str) -> Option<String> {
    dockerfile
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.contains("RUST_VERSION"))
        .find(|l| {
            l.as_bytes()
                .windows(3)
                .any(|w| w[0] == b'8' && w[1] == b'.' && w[2].is_ascii_digit())
        })
        .map(str::to_owned)
}

#[test]
fn the_app_containers_php_settings_read_as_meant() {
    let ini = repo_root().join("docker/php/fleet.ini");
    let out = Command::new("php")
        .arg("-n")
        .arg("-d")
        .arg(format!("extension={}", extension().display()))
        .arg("-c")
        .arg(&ini)
        .args(["-r", "echo ini_get('session.save_handler'), ' ', ini_get('session.save_path'), ' ', ini_get('fleet.busy_status');"])
        .env("FLEET_SAVE_PATH", "redis://redis:6379?prefix=demo:")
        .output()
        .expect("php");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "fleet redis://redis:6379?prefix=demo: 429",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pool = read("docker/php/pool.conf");
    let web = read("harness/src/web.rs");
    for setting in [
        "pm = static",
        "clear_env = no",
        "catch_workers_output = yes",
    ] {
        assert!(
            pool.contains(setting) && web.contains(setting),
            "{setting} in both pools"
        );
    }
    assert!(
        Path::new(&repo_root().join("harness/www/index.php")).is_file(),
        "the demo page"
    );
}

// ---- The stack, built and run ----

#[test]
fn demo_and_phpt_suite_in_containers_debian12_php82() {
    stack("bookworm");
}

#[test]
fn demo_and_phpt_suite_in_containers_debian13_php84() {
    stack("trixie");
}

/// `docker compose` where the plugin answers, else `docker-compose`; None without an engine
/// (the reason printed), a panic under CI=true.
fn compose_command() -> Option<Vec<&'static str>> {
    let reason = if std::env::var_os("FLEET_PLATFORM_INNER").is_some() {
        // scripts/platform.sh's root has no Docker; the host's run covers this.
        println!(
            "docker: skipped in the other platform's root (the host's run builds both releases)"
        );
        return None;
    } else if !ok(Command::new("docker").arg("info")) {
        "no Docker engine answers (`docker info` failed)"
    } else if ok(Command::new("docker").args(["compose", "version"])) {
        return Some(vec!["docker", "compose"]);
    } else if ok(Command::new("docker-compose").arg("version")) {
        return Some(vec!["docker-compose"]);
    } else {
        "neither `docker compose` nor `docker-compose` runs"
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true: {reason}"
    );
    println!("docker: skipped: {reason}");
    None
}

fn ok(command: &mut Command) -> bool {
    command.output().is_ok_and(|o| o.status.success())
}

/// One compose project (a unique name, its own published port); `down -v` when dropped.
struct Project {
    compose: Vec<&'static str>,
    name: String,
    suite: &'static str,
    port: u16,
}

impl Project {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(self.compose[0]);
        command
            .args(&self.compose[1..])
            .arg("-f")
            .arg(repo_root().join("docker/compose.yaml"))
            .args(["-p", &self.name])
            .args(args)
            .env("DEBIAN", self.suite)
            .env("FLEET_PORT", self.port.to_string())
            .current_dir(repo_root());
        command
    }

    /// Runs, prints the output, and returns it.
    fn run(&self, args: &[&str]) -> Output {
        let start = Instant::now();
        let out = self.command(args).output().expect("compose runs");
        println!(
            "--- compose {} ({:.0?}, {})\n{}{}",
            args.join(" "),
            start.elapsed(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn must(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "compose {} failed", args.join(" "));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn container(&self, service: &str) -> String {
        self.must(&["ps", "-q", service]).trim().to_owned()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self
            .command(&["--profile", "tests", "down", "-v", "--remove-orphans"])
            .output();
    }
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn stack(suite: &'static str) {
    // FLEET_DOCKER_SUITES="trixie" (space or comma separated) limits the releases built.
    if let Ok(wanted) = std::env::var("FLEET_DOCKER_SUITES") {
        if !wanted.split([' ', ',']).any(|s| s == suite) {
            println!("docker: {suite} skipped: FLEET_DOCKER_SUITES={wanted}");
            return;
        }
    }
    let Some(compose) = compose_command() else {
        return;
    };
    let started = Instant::now();
    let base = Command::new("bash")
        .arg(repo_root().join("scripts/docker-base.sh"))
        .arg(suite)
        .status()
        .expect("scripts/docker-base.sh runs");
    assert!(base.success(), "scripts/docker-base.sh {suite} failed");
    println!("docker: base images ready after {:.0?}", started.elapsed());

    let project = Project {
        compose,
        name: format!("fleet-test-{suite}-{}", std::process::id()),
        suite,
        port: free_port(),
    };
    project.must(&["up", "--build", "-d"]);
    println!("docker: demo up after {:.0?}", started.elapsed());

    // One visitor through the nginx container: counter 1..10, app1 and app2 in turn.
    let http = Http::new(Duration::from_secs(10));
    let base_url = format!("http://127.0.0.1:{}", project.port);
    let ready = Instant::now();
    while http
        .get(&format!("{base_url}/nginx-health"), None)
        .map(|r| r.status)
        != Ok(200)
    {
        assert!(
            ready.elapsed() < Duration::from_secs(60),
            "nginx never answered on {base_url}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut cookie: Option<String> = None;
    let mut servers = Vec::new();
    for n in 1..=10 {
        let reply = http
            .get(&format!("{base_url}/"), cookie.as_deref())
            .expect("a reply");
        assert_eq!(reply.status, 200, "request {n}: {}", reply.body);
        if cookie.is_none() {
            cookie = Some(
                reply
                    .set_cookie
                    .clone()
                    .expect("the first reply sets the session cookie"),
            );
        }
        let server = reply
            .body
            .strip_prefix("served by ")
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("request {n}: {}", reply.body))
            .to_owned();
        assert!(
            reply
                .body
                .contains(&format!("requests in this session: {n}\n")),
            "request {n}: the counter is {n}: {}",
            reply.body
        );
        println!("request {n:2}: served by {server}  counter = {n}");
        servers.push(server);
    }
    for pair in servers.windows(2) {
        assert_ne!(
            pair[0], pair[1],
            "round robin: one app server after the other: {servers:?}"
        );
    }
    let seen: BTreeSet<&str> = servers.iter().map(String::as_str).collect();
    assert_eq!(seen, BTreeSet::from(["app1", "app2"]), "{servers:?}");

    // Health checks, FPM workers as www-data, no compiler in the app image.
    for service in ["app1", "app2", "redis", "mariadb", "nginx"] {
        let id = project.container(service);
        let since = Instant::now();
        loop {
            let health = docker(&["inspect", "--format", "{{.State.Health.Status}}", &id]);
            if health == "healthy" {
                break;
            }
            assert!(
                since.elapsed() < Duration::from_secs(60),
                "{service}: {health}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let processes = project.must(&["exec", "-T", "app1", "ps", "-eo", "user=,comm="]);
    let fpm: Vec<&str> = processes
        .lines()
        .filter(|l| l.contains("php-fpm"))
        .collect();
    let workers = fpm.iter().filter(|l| l.starts_with("www-data ")).count();
    assert_eq!(workers, 4, "four FPM workers as www-data: {fpm:?}");
    assert_eq!(fpm.len(), 5, "and the master: {fpm:?}");
    let image = format!("fleet-app:{suite}");
    let tools = Command::new("docker")
        .args(["run", "--rm", "--entrypoint", "sh", &image, "-c"])
        .arg("for t in cc gcc clang cargo rustc phpize php-config; do command -v $t; done; true")
        .output()
        .expect("docker run");
    assert_eq!(
        String::from_utf8_lossy(&tools.stdout),
        "",
        "no build tools in {image}"
    );
    let php = docker(&[
        "run",
        "--rm",
        &image,
        "php",
        "-r",
        "echo PHP_VERSION, ' ', extension_loaded('fleet') ? 'fleet' : 'none';",
    ]);
    let want = if suite == "bookworm" { "8.2." } else { "8.4." };
    assert!(
        php.starts_with(want) && php.ends_with(" fleet"),
        "{image}: PHP {php}"
    );
    println!(
        "docker: images\n{}",
        docker(&[
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}}\t{{.Size}}",
            "--filter",
            &format!("reference=fleet-*:{suite}")
        ])
    );

    // The .phpt suite in a container against the Redis and MariaDB containers.
    project.must(&["build", "tests"]);
    let suite_run = project.run(&["run", "--rm", "tests"]);
    let report = String::from_utf8_lossy(&suite_run.stdout);
    assert!(
        suite_run.status.success(),
        "the .phpt suite failed in containers ({suite})"
    );
    assert!(report.contains("run-tests: every suite passed"));
    // As harness/tests/phpt.rs checks natively: every test runs and passes but those written
    // for the other backend (the unix socket and phpredis tests run in containers too).
    let files: Vec<String> = std::fs::read_dir(repo_root().join("php-tests"))
        .expect("php-tests")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "phpt"))
        .map(|e| std::fs::read_to_string(e.path()).expect("a .phpt"))
        .collect();
    let runs: Vec<&str> = report.split("=== .phpt on ").skip(1).collect();
    assert_eq!(runs.len(), 2, "two runs (Redis, MariaDB): {report}");
    for (run, backend) in runs.iter().zip(["redis", "mysql"]) {
        assert!(
            run.starts_with(&format!("{backend} ")),
            "{backend} run: {run}"
        );
        let for_other = fleet_harness::paths::phpt_for_other_backends(&files, backend);
        // phpredis_interop.phpt talks to 127.0.0.1, so the tests image has no phpredis and
        // it skips on Redis (see docker/Dockerfile).
        let interop = usize::from(backend == "redis");
        if interop == 1 {
            assert!(run.contains("SKIP phpredis interoperability"), "{run}");
        }
        let count = |label: &str| run_tests_count(run, label).unwrap_or(0);
        assert_eq!(
            count("Tests passed"),
            files.len() - for_other - interop,
            "{backend}: all others pass"
        );
        assert_eq!(
            count("Tests skipped"),
            for_other + interop,
            "{backend}: only the other backend's skip"
        );
        assert_eq!(
            count("Tests failed") + count("Tests borked"),
            0,
            "{backend}"
        );
    }

    // And a failing .phpt makes `run --rm tests` exit non-zero.
    let failing = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        failing.path().join("fails.phpt"),
        "--TEST--\nFails on purpose\n--FILE--\n<?php echo 'one';\n--EXPECT--\ntwo\n",
    )
    .expect("write");
    let mount = format!("{}:/fleet/failing", failing.path().display());
    let failed = project.run(&[
        "run",
        "--rm",
        "-v",
        &mount,
        "-e",
        "FLEET_PHPT_DIR=/fleet/failing",
        "tests",
    ]);
    assert!(
        !failed.status.success(),
        "a failing .phpt must fail `run --rm tests`"
    );
    let report = String::from_utf8_lossy(&failed.stdout);
    assert_eq!(
        report
            .matches("FAIL Fails on purpose [/fleet/failing/fails.phpt]")
            .count(),
        2,
        "the failing test failed on both backends: {report}"
    );
    println!("docker: {suite} done in {:.0?}", started.elapsed());
}
