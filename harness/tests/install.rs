//! Installing Fleet as PHP users do: `phpize && ./configure --enable-fleet && make && make
//! install` and `make test`, on a fresh copy of the tree (what a clone or a PIE download
//! has), and the files that describe the install (composer.json for PIE, ext/fleet.ini).

use std::path::Path;
use std::process::{Command, Output};

use fleet_harness::paths::{extension, repo_root};
use fleet_harness::RedisServer;

fn run(dir: &Path, program: &str, args: &[&str], env: &[(&str, String)]) -> Output {
    let path = format!(
        "{}/.cargo/bin:{}",
        std::env::var("HOME").unwrap_or_default(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("PATH", path)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The repository's files as a clone has them (tracked and new, not ignored), in a new
/// directory that is its own git repository, so what the build leaves behind shows up in
/// `git status`.
fn fresh_copy() -> tempfile::TempDir {
    let root = repo_root();
    let dir = tempfile::tempdir().expect("temp dir");
    let files = run(
        &root,
        "git",
        &[
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ],
        &[],
    );
    for name in files.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        let (from, to) = (root.join(&name), dir.path().join(&name));
        if !from.is_file() {
            continue; // deleted in the work tree but not yet in the index
        }
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("mkdir");
        std::fs::copy(&from, &to).expect("copy");
    }
    let d = dir.path();
    run(d, "git", &["init", "-q"], &[]);
    run(d, "git", &["add", "-A"], &[]);
    run(
        d,
        "git",
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "copy",
        ],
        &[],
    );
    dir
}

#[test]
fn phpize_configure_make_install_and_make_test_on_a_fresh_copy() {
    let copy = fresh_copy();
    let d = copy.path();
    // What this test checks is phpize's flow (configure, make, install, make test), not the
    // optimiser: the release profile is built without optimisation here, in a target dir of
    // its own (from nothing on 2 cores: 183 s alone, where the optimised build took 410 s
    // beside the rest of the suite). The optimised build is the one docker/Dockerfile's build
    // stage makes with the same phpize steps (harness/tests/docker.rs) and the bench uses.
    // Under the suite's own target dir, so the other platform's root (scripts/platform.sh
    // sets CARGO_TARGET_DIR per release) never reuses artifacts built against this one's
    // PHP and C libraries.
    let suite_target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| repo_root().join(dir)) // a relative one is the workspace's, as for cargo
        .unwrap_or_else(|| repo_root().join("target"));
    let target = (
        "CARGO_TARGET_DIR",
        suite_target.join("install-test").display().to_string(),
    );
    let unoptimised = ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "0".to_owned());
    run(d, "phpize", &[], &[]);
    let configured = run(d, "./configure", &["--enable-fleet"], &[]);
    // Autoconf's `rm -f core` after each check meets the core/ crate (config.m4 keeps it quiet).
    let stderr = String::from_utf8_lossy(&configured.stderr);
    assert!(!stderr.contains("cannot remove"), "configure: {stderr}");
    run(d, "make", &[], &[target.clone(), unoptimised.clone()]);
    let module = d.join("modules/fleet.so");
    assert!(
        module.is_file(),
        "make leaves the module at modules/fleet.so"
    );

    // Nothing phpize, configure or make wrote is left for git to pick up.
    let status = text(&run(
        d,
        "git",
        &["status", "--porcelain", "--untracked-files=all"],
        &[],
    ));
    assert_eq!(status, "", "build files not covered by .gitignore");

    let info = text(&run(
        d,
        "php",
        &[
            "-n",
            "-d",
            &format!("extension={}", module.display()),
            "--ri",
            "fleet",
        ],
        &[],
    ));
    assert!(info.contains("Fleet session handler => enabled"), "{info}");
    assert!(
        info.contains("mysql://") && info.contains("redis+cluster://"),
        "{info}"
    );

    let root = tempfile::tempdir().expect("install root");
    run(
        d,
        "make",
        &[
            "install",
            &format!("INSTALL_ROOT={}", root.path().display()),
        ],
        &[target.clone(), unoptimised.clone()],
    );
    let ext_dir = text(&run(d, "php-config", &["--extension-dir"], &[]));
    let installed = root
        .path()
        .join(ext_dir.trim().trim_start_matches('/'))
        .join("fleet.so");
    assert!(
        installed.is_file(),
        "make install puts fleet.so in php-config --extension-dir: {}",
        installed.display()
    );

    // `make test`: the .phpt suite through run-tests.php, against a Redis of the harness.
    let redis = RedisServer::start();
    let out = run(
        d,
        "make",
        &["test"],
        &[
            target,
            unoptimised,
            ("NO_INTERACTION", "1".into()),
            ("FLEET_PORT", redis.port.to_string()),
            ("FLEET_SOCKET", redis.socket_path().display().to_string()),
        ],
    );
    let report = text(&out);
    let count =
        |label: &str| fleet_harness::paths::run_tests_count(&report, label).unwrap_or(usize::MAX);
    println!(
        "{}",
        report
            .lines()
            .filter(|l| l.starts_with("Tests "))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(count("Tests failed"), 0, "{report}");
    assert!(count("Tests passed") >= 20, "{report}");
    // phpredis from PHP's own extension dir (Makefile.frag), where it is installed: the
    // interop test runs under `make test` too instead of skipping.
    if Path::new(ext_dir.trim()).join("redis.so").is_file() {
        // (run-tests.php may colour the word PASS.)
        let interop = report
            .lines()
            .find(|l| l.contains("phpredis_interop.phpt]"))
            .unwrap_or("");
        assert!(
            interop.contains("PASS") && !interop.contains("SKIP"),
            "phpredis_interop.phpt did not pass under make test: {report}"
        );
    }
}

#[test]
fn a_session_module_table_that_differs_from_php_session_h_fails_the_build() {
    // A copy whose PsModule has one hook more than this PHP's ps_module (as a later PHP
    // might add): the build itself must stop, naming the mismatch.
    let copy = fresh_copy();
    let ffi = copy.path().join("ext/src/ffi/module.rs");
    let source = std::fs::read_to_string(&ffi).expect("ffi/module.rs");
    let patched = source.replacen(
        "struct PsModule {\n    name: *const c_char,",
        "struct PsModule {\n    name: *const c_char,\n    another_hook: usize,",
        1,
    );
    assert_ne!(
        patched, source,
        "PsModule's declaration moved: update this test"
    );
    std::fs::write(&ffi, patched).expect("write ffi/module.rs");
    let target = repo_root().join("target").join("layout-check");
    let out = Command::new("cargo")
        .args(["check", "--locked", "-p", "fleet"])
        .current_dir(copy.path())
        .env("CARGO_TARGET_DIR", &target)
        .env(
            "PATH",
            format!(
                "{}/.cargo/bin:{}",
                std::env::var("HOME").unwrap_or_default(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .expect("cargo runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the build went on with a wrong table"
    );
    assert!(
        stderr.contains("differs from ps_module in the installed php_session.h"),
        "{stderr}"
    );
}

#[test]
fn every_fleet_ini_entry_is_in_the_sample_ini_and_the_docs_with_its_default() {
    let out = run(
        &repo_root(),
        "php",
        &[
            "-n",
            "-d",
            &format!("extension={}", extension().display()),
            "-r",
            r#"foreach (ini_get_all("fleet") as $k => $v) echo "$k\t", $v["global_value"], "\n";"#,
        ],
        &[],
    );
    let entries = text(&out);
    let sample = std::fs::read_to_string(repo_root().join("ext/fleet.ini")).expect("ext/fleet.ini");
    let docs = std::fs::read_to_string(repo_root().join("docs/configuration.md"))
        .expect("docs/configuration.md");
    let mut n = 0;
    for line in entries.lines() {
        let (name, default) = line.split_once('\t').expect("name and default");
        let shown = if default.is_empty() {
            "\"\"".to_owned()
        } else {
            default.to_owned()
        };
        assert!(
            sample.contains(&format!(";{name} = {shown}\n")),
            "ext/fleet.ini lacks ;{name} = {shown}"
        );
        assert!(
            docs.contains(&format!("| `{name}` | `{shown}` |")),
            "docs/configuration.md lacks {name} with default {shown}"
        );
        n += 1;
    }
    assert!(n >= 10, "{entries}");
}

#[test]
fn composer_json_declares_a_pie_extension_that_config_m4_builds() {
    let composer: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("composer.json")).expect("composer.json"),
    )
    .expect("composer.json is JSON");
    assert_eq!(composer["type"], "php-ext");
    assert_eq!(composer["php-ext"]["extension-name"], "fleet");
    let options = composer["php-ext"]["configure-options"]
        .as_array()
        .expect("configure-options");
    let config_m4 = std::fs::read_to_string(repo_root().join("config.m4")).expect("config.m4");
    for option in options {
        let name = option["name"].as_str().expect("a name");
        let arg = name
            .trim_start_matches("enable-")
            .trim_start_matches("with-");
        assert!(
            config_m4.contains(&format!("[{arg}]")),
            "config.m4 declares --{name}"
        );
    }
    assert!(composer["name"].as_str().is_some_and(|n| n.contains('/')));
}
