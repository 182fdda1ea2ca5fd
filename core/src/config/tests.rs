use super::*;
use std::path::PathBuf;
use std::sync::OnceLock;

/// A directory the test guards refuse, with a readable password file in it.
fn forbidden_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("fleet-basedir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("pw"), "tenant-b-secret\n").expect("password file");
        dir
    })
}

fn refuse_forbidden(path: &Path) -> bool {
    !path.starts_with(forbidden_dir())
}

#[test]
fn a_refused_password_file_is_not_read_and_the_error_names_the_option() {
    let path = forbidden_dir().join("pw");
    let path = path.to_str().expect("utf-8 temp path");
    // Readable: only the guard stands between it and the server.
    assert!(read_password_file_with(|_| true, "password_file", path).is_ok());
    for option in ["password_file", "sentinel_password_file"] {
        let e = read_password_file_with(refuse_forbidden, option, path).expect_err(option);
        assert_eq!(
            e,
            ConfigError::OutsideOpenBasedir {
                option,
                path: path.to_owned()
            }
        );
        let message = e.to_string();
        assert!(
            message.contains(&format!("{option} \"{path}\" is not within open_basedir")),
            "{message}"
        );
        assert!(!message.contains("tenant-b-secret"), "{message}");
    }
}

#[test]
fn the_guard_sees_every_file_before_it_is_opened() {
    // A file that does not exist is refused as outside, not reported as missing: the
    // guard runs first, so Fleet does not even tell whether another tenant's file exists.
    let missing = forbidden_dir().join("nope");
    let missing = missing.to_str().expect("utf-8 temp path");
    assert!(matches!(
        read_password_file_with(refuse_forbidden, "password_file", missing),
        Err(ConfigError::OutsideOpenBasedir { .. })
    ));
    assert!(check_file_with(refuse_forbidden, "tls_ca_file", "/etc/ssl/ca.pem").is_ok());
    assert!(matches!(
        check_file_with(refuse_forbidden, "tls_ca_file", missing),
        Err(ConfigError::OutsideOpenBasedir {
            option: "tls_ca_file",
            ..
        })
    ));
}

#[test]
fn a_quote_is_dropped_only_where_it_overlaps_a_secret_region() {
    let regions = secret_regions("redis://u:hunter2@h?timeout=-1");
    assert_eq!(regions, vec!["u:hunter2".to_owned()]);
    let kept = scrub(
        ConfigError::Invalid {
            part: "timeout=-1".into(),
            reason: "r",
        },
        &regions,
    );
    assert!(matches!(kept, ConfigError::Invalid { .. }), "{kept:?}");
    let dropped = scrub(
        ConfigError::Invalid {
            part: "hunter".into(),
            reason: "r",
        },
        &regions,
    );
    assert_eq!(
        dropped,
        ConfigError::Redacted {
            problem: "r".into()
        }
    );
    assert_eq!(
        secret_regions("redis://h?prefix=x&%61uth=a%26b&c"),
        vec!["a%26b&c".to_owned(), "a&b&c".to_owned()]
    );
}

#[test]
fn redact_userinfo_hides_the_userinfo_and_password_options() {
    for (value, shown) in [
        ("redis://u:hunter2@h:1/0", "redis://***@h:1/0"),
        ("redis://:pa/ss@h", "redis://***@h"),
        ("u:pa/ss@h:6379", "***@h:6379"),
        ("h?prefix=a@b&auth=x&y=z", "h?prefix=a@b&auth=***"),
        ("unix:///run/a@b.sock", "unix:///run/a@b.sock"),
    ] {
        assert_eq!(redact_userinfo(value), shown, "{value}");
    }
}

#[test]
fn key_files_are_read_when_the_save_path_is_and_errors_name_the_option_not_the_key() {
    let dir = std::env::temp_dir().join(format!("fleet-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("key file");
        path.display().to_string()
    };
    let good = file("good", "q1JvTgYJ0zH7b3o6ZK2aK3m0ZlLwz2cX4n2v0Yv7cXQ=\n");
    let leaky = file("leaky", "hunter2-is-no-key\n");
    let missing = dir.join("missing").display().to_string();
    let config = parse_save_path(&format!("redis://h?encryption_key_file={good}")).expect("ok");
    assert!(config.common.sealing.keys.is_some());
    assert!(config.common.sealing.hasher.is_none());
    let e = parse_save_path(&format!(
        "mysql://u@db/app?encryption_key_file={good}&hash_ids=1"
    ))
    .expect_err("hash_ids=1 needs its own secret");
    assert!(e.to_string().contains("hash_key_file"), "{e}");
    let both = parse_save_path(&format!(
        "mysql://u@db/app?encryption_key_file={good}&hash_ids=1&hash_key_file={good}&require_encryption=1"
    ))
    .expect("ok");
    assert!(both.common.sealing.hasher.is_some() && both.common.sealing.required);
    for (save_path, option, cause) in [
        (
            format!("redis://h?encryption_key_file={missing}"),
            "encryption_key_file",
            "No such file",
        ),
        (
            format!("redis://h?encryption_key_file={leaky}"),
            "encryption_key_file",
            "line 1: not base64",
        ),
        (
            format!("redis://h?hash_ids=1&hash_key_file={leaky}"),
            "hash_key_file",
            "line 1",
        ),
        (
            "redis://h?encryption_key_file=keys.txt".to_owned(),
            "encryption_key_file",
            "absolute path",
        ),
    ] {
        let e = parse_save_path(&save_path)
            .expect_err(&save_path)
            .to_string();
        assert!(e.contains(option) && e.contains(cause), "{save_path}: {e}");
        assert!(!e.contains("hunter2"), "{e}");
    }
    let e = parse_save_path("redis://h?hash_ids=1")
        .expect_err("no secret")
        .to_string();
    assert!(e.contains("hash_key_file"), "{e}");
    let e = parse_save_path(&format!("redis://h?hash_key_file={good}")).expect_err("unused");
    assert!(e.to_string().contains("hash_ids=1"), "{e}");
    assert!(parse_save_path("redis://h?hash_ids=maybe").is_err());
    std::fs::remove_dir_all(&dir).ok();
}
