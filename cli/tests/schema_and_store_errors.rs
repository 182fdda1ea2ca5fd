//! fleetctl's own checks of what it is given: `schema --table` prints DDL only for a plain
//! identifier, and a `--store` it cannot parse is reported without its password.

use std::process::{Command, Output};

fn fleetctl(args: &[&str]) -> (Output, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fleetctl"))
        .args(args)
        .output()
        .expect("fleetctl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

#[test]
fn schema_refuses_a_table_name_that_is_not_a_plain_identifier() {
    for table in [
        "x&bot_pattern=y` (a INT);DROP TABLE t;#",
        "x%60y",
        "a b",
        "t;DROP TABLE u",
        "",
        "a`b",
    ] {
        let (out, text) = fleetctl(&["schema", "--table", table]);
        assert!(!out.status.success(), "{table:?}: {text}");
        assert!(out.stdout.is_empty(), "{table:?}: {text}");
        assert!(!text.contains("CREATE"), "{table:?}: {text}");
        assert!(text.contains("table name"), "{table:?}: {text}");
    }
}

#[test]
fn schema_prints_ddl_for_a_plain_identifier() {
    let (out, text) = fleetctl(&["schema", "--table", "php_sessions_2"]);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("CREATE TABLE IF NOT EXISTS `php_sessions_2`"),
        "{text}"
    );
}

#[test]
fn store_errors_never_show_the_password() {
    for (store, secret) in [
        ("redis://:pa/ss@h:bad", "pa/ss"),
        ("mysql://u:pa/ss@db", "pa/ss"),
        ("redis://h?auth=a&bcdef", "bcdef"),
        ("redis://u:pa?ss=w0rdz@h", "w0rdz"),
    ] {
        let (out, text) = fleetctl(&["gc", "--store", store]);
        assert!(!out.status.success(), "{store}: {text}");
        assert!(text.contains("session.save_path"), "{store}: {text}");
        assert!(!text.contains(secret), "{store}: {text}");
    }
}
