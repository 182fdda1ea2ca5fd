#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests: a panic here fails the test
//! The process-wide file guard (`fleet_core::set_file_guard`, PHP's open_basedir in the
//! extension) is asked before any file a setting names is opened, and a refusal fails the
//! save_path. One test, in a binary of its own, since the guard is process-wide.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use fleet_core::{parse_save_path, set_file_guard, ConfigError};

fn forbidden_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("fleet-other-tenant-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("pw"), "tenant-b-secret\n").expect("password file");
        std::fs::write(dir.join("ca.pem"), "not a real CA\n").expect("CA file");
        std::fs::write(
            dir.join("keys"),
            "q1JvTgYJ0zH7b3o6ZK2aK3m0ZlLwz2cX4n2v0Yv7cXQ=\n",
        )
        .expect("key file");
        dir
    })
}

fn outside_forbidden(path: &Path) -> bool {
    !path.starts_with(forbidden_dir())
}

#[test]
fn files_named_by_settings_must_pass_the_installed_guard() {
    let dir = forbidden_dir().display().to_string();
    let cases = [
        (format!("redis://h?password_file={dir}/pw"), "password_file"),
        (
            format!("mysql://u@db/app?password_file={dir}/pw"),
            "password_file",
        ),
        (
            format!("redis+sentinel://s1/m?sentinel_password_file={dir}/pw"),
            "sentinel_password_file",
        ),
        (
            format!("rediss://h?tls_ca_file={dir}/ca.pem"),
            "tls_ca_file",
        ),
        (
            format!("rediss+cluster://n1?tls_ca_file={dir}/ca.pem"),
            "tls_ca_file",
        ),
        (
            format!("mysql://u@db/app?tls=1&tls_ca_file={dir}/ca.pem"),
            "tls_ca_file",
        ),
        (
            format!("redis://h?encryption_key_file={dir}/keys"),
            "encryption_key_file",
        ),
        (
            format!("mysql://u@db/app?hash_ids=1&hash_key_file={dir}/keys"),
            "hash_key_file",
        ),
    ];

    // No guard installed (fleetctl): every file is allowed.
    for (save_path, _) in &cases {
        assert!(parse_save_path(save_path).is_ok(), "{save_path}");
    }

    set_file_guard(outside_forbidden);
    for (save_path, option) in &cases {
        let e = parse_save_path(save_path).expect_err(save_path);
        assert!(
            matches!(&e, ConfigError::OutsideOpenBasedir { option: o, .. } if o == option),
            "{save_path}: {e:?}"
        );
        let message = e.to_string();
        assert!(
            message.contains(&format!("{option} \"{dir}/"))
                && message.contains("is not within open_basedir"),
            "{message}"
        );
        assert!(!message.contains("tenant-b-secret"), "{message}");
    }
    // Files elsewhere are still read.
    let allowed = std::env::temp_dir().join(format!("fleet-own-pw-{}", std::process::id()));
    std::fs::write(&allowed, "own\n").expect("own password file");
    let config = parse_save_path(&format!("redis://h?password_file={}", allowed.display()));
    assert!(config.is_ok(), "{config:?}");
    std::fs::remove_file(&allowed).ok();
}
