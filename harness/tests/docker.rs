//! The docker/ files, validated as far as a machine without a container engine can: the
//! compose file parsed by a YAML parser, every path it and the Dockerfile name present, the
//! stages it builds defined, the build running the same phpize steps the install test runs,
//! and the PHP settings read by PHP itself. The stack itself is not started here.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use fleet_harness::paths::{extension, repo_root};

/// docker/compose.yaml as JSON, read by PyYAML (Debian's python3-yaml).
fn compose() -> serde_json::Value {
    let path = repo_root().join("docker/compose.yaml");
    let out = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(&path)
        .output()
        .expect("python3 runs (python3-yaml installed by scripts/setup.sh)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn dockerfile() -> String {
    std::fs::read_to_string(repo_root().join("docker/Dockerfile")).expect("docker/Dockerfile")
}

/// The stage names (`FROM … AS name`) of the Dockerfile.
fn stages(dockerfile: &str) -> BTreeSet<String> {
    dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .filter_map(|l| l.split(" AS ").nth(1).map(|s| s.trim().to_owned()))
        .collect()
}

#[test]
fn compose_file_names_only_what_exists() {
    let compose = compose();
    let docker = repo_root().join("docker");
    let services = compose["services"].as_object().expect("services");
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    for wanted in ["nginx", "app1", "app2", "redis", "mariadb", "tests"] {
        assert!(names.contains(wanted), "service {wanted} missing: {names:?}");
    }
    let defined = stages(&dockerfile());
    for (name, service) in services {
        if let Some(build) = service.get("build") {
            let context = docker.join(build["context"].as_str().expect("context"));
            let file = context.join(build["dockerfile"].as_str().expect("dockerfile"));
            assert!(file.is_file(), "{name}: {} missing", file.display());
            let target = build["target"].as_str().expect("target");
            assert!(defined.contains(target), "{name}: no stage {target} in {defined:?}");
        } else {
            assert!(service["image"].is_string(), "{name} has an image or a build");
        }
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let source = volume.as_str().and_then(|v| v.split(':').next()).expect("a bind mount");
            assert!(docker.join(source).exists(), "{name}: mount source {source} missing");
        }
        for dep in service["depends_on"].as_array().into_iter().flatten() {
            assert!(names.contains(dep.as_str().unwrap_or("")), "{name} depends on {dep}");
        }
    }
    // The balancer sends to both app containers, with the PHP location the e2e tests use.
    let nginx = std::fs::read_to_string(docker.join("nginx/default.conf")).expect("nginx conf");
    assert!(nginx.contains("server app1:9000;") && nginx.contains("server app2:9000;"));
    let mounted: Vec<&str> = services["nginx"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(mounted.contains(&"./nginx/php-location.conf:/etc/nginx/fleet/php-location.conf:ro"));
    assert!(nginx.contains("include /etc/nginx/fleet/php-location.conf;"));
    let web = std::fs::read_to_string(repo_root().join("harness/src/web.rs")).expect("web.rs");
    assert!(web.contains("docker/nginx/php-location.conf"), "the harness includes the same location");
}

#[test]
fn dockerfile_builds_with_the_phpize_steps_and_copies_only_what_exists() {
    let dockerfile = dockerfile();
    let first_from = dockerfile.find("\nFROM ").expect("a FROM");
    assert!(dockerfile[..first_from].contains("ARG PHP_VERSION="), "PHP_VERSION is a build argument");
    assert!(dockerfile.contains("FROM php:${PHP_VERSION}-fpm-bookworm AS build"));
    assert!(dockerfile.contains("FROM php:${PHP_VERSION}-fpm-bookworm AS app"));
    // The same commands harness/tests/install.rs runs natively.
    assert!(dockerfile.contains("RUN phpize && ./configure --enable-fleet && make && make install"));
    let install = std::fs::read_to_string(repo_root().join("harness/tests/install.rs")).expect("install.rs");
    for step in ["\"phpize\"", "\"./configure\", &[\"--enable-fleet\"]", "\"make\", &[]", "\"install\""] {
        assert!(install.contains(step), "install.rs runs {step}");
    }
    // Rust only in the build stage.
    let app = &dockerfile[dockerfile.find("AS app").expect("app stage")..];
    assert!(!app.contains("rustup") && !app.contains("cargo"), "no Rust in the app image");
    for line in dockerfile.lines().filter(|l| l.starts_with("COPY ") && !l.contains("--from")) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for source in &parts[1..parts.len() - 1] {
            assert!(repo_root().join(source).exists(), "COPY source {source} missing");
        }
    }
    let script = repo_root().join("docker/run-tests.sh");
    let syntax = Command::new("sh").arg("-n").arg(&script).status().expect("sh");
    assert!(syntax.success(), "docker/run-tests.sh parses");
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
    let pool = std::fs::read_to_string(repo_root().join("docker/php/pool.conf")).expect("pool.conf");
    let web = std::fs::read_to_string(repo_root().join("harness/src/web.rs")).expect("web.rs");
    for setting in ["pm = static", "clear_env = no", "catch_workers_output = yes"] {
        assert!(pool.contains(setting) && web.contains(setting), "{setting} in both pools");
    }
    assert!(Path::new(&repo_root().join("harness/www/index.php")).is_file(), "the demo page");
}
