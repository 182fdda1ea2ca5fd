use super::*;
use crate::config::{parse_save_path, redact_userinfo, StoreConfig};

/// A parsed save_path of this backend: its own config, with the common options beside it.
#[derive(Debug)]
struct Parsed {
    common: crate::config::CommonConfig,
    config: RedisConfig,
}

impl std::ops::Deref for Parsed {
    type Target = RedisConfig;
    fn deref(&self) -> &RedisConfig {
        &self.config
    }
}

fn redis(s: &str) -> Parsed {
    match parse_save_path(s) {
        Ok(StoreConfig {
            common,
            backend: crate::config::BackendConfig::Redis(config),
        }) => Parsed { common, config },
        other => panic!("{s}: {other:?}"),
    }
}

#[test]
fn plain_host_gets_defaults() {
    let c = redis("redis://10.0.0.5");
    assert_eq!(
        c.endpoint,
        RedisEndpoint::Tcp {
            host: "10.0.0.5".into(),
            port: 6379
        }
    );
    assert_eq!(c.prefix, DEFAULT_PREFIX);
    assert_eq!(c.db, 0);
    assert_eq!(c.password, None);
}

#[test]
fn full_url() {
    let c =
        redis("redis://app:s%40cret@cache.local:6380/3?prefix=app:&connect_timeout=0.5&timeout=2");
    assert_eq!(
        c.endpoint,
        RedisEndpoint::Tcp {
            host: "cache.local".into(),
            port: 6380
        }
    );
    assert_eq!(c.username.as_deref(), Some("app"));
    assert_eq!(c.password.as_ref().map(Secret::expose), Some("s@cret"));
    assert_eq!(c.db, 3);
    assert_eq!(c.prefix, "app:");
    assert_eq!(c.common.connect_timeout, Some(Duration::from_millis(500)));
    assert_eq!(c.common.command_timeout, Some(Duration::from_secs(2)));
}

#[test]
fn phpredis_spelling_is_accepted() {
    let c = redis("tcp://127.0.0.1:6379?auth=pw&database=2&persistent=1&weight=1&read_timeout=3");
    assert_eq!(c.password.as_ref().map(Secret::expose), Some("pw"));
    assert_eq!(c.db, 2);
    assert_eq!(c.common.command_timeout, Some(Duration::from_secs(3)));
}

#[test]
fn tls_and_unix_and_ipv6() {
    let c = redis("rediss://h:6390?tls_verify=0&tls_ca_file=/etc/ca.pem");
    assert_eq!(
        c.endpoint,
        RedisEndpoint::Tls {
            host: "h".into(),
            port: 6390,
            verify: false,
            ca_file: Some("/etc/ca.pem".into())
        }
    );
    let c = redis("unix:///run/redis/redis.sock?prefix=x:&database=1");
    assert_eq!(
        c.endpoint,
        RedisEndpoint::Unix {
            path: "/run/redis/redis.sock".into()
        }
    );
    assert_eq!((c.prefix.as_str(), c.db), ("x:", 1));
    // A socket may have a password in the userinfo too, like the network forms.
    let c = redis("unix://app:p/w@/run/redis/redis.sock");
    assert_eq!(c.endpoint.to_string(), "unix:///run/redis/redis.sock");
    assert_eq!(c.username.as_deref(), Some("app"));
    assert_eq!(c.password.as_ref().map(Secret::expose), Some("p/w"));
    let c = redis("unix:///run/a@b.sock");
    assert_eq!(c.endpoint.to_string(), "unix:///run/a@b.sock");
    let c = redis("redis://[::1]:7000");
    assert_eq!(
        c.endpoint,
        RedisEndpoint::Tcp {
            host: "::1".into(),
            port: 7000
        }
    );
    assert_eq!(c.endpoint.to_string(), "redis://[::1]:7000");
}

#[test]
fn password_from_env_and_file() {
    std::env::set_var("FLEET_TEST_PW_ENV", "from-env");
    let c = redis("redis://h?password_env=FLEET_TEST_PW_ENV");
    assert_eq!(c.password.as_ref().map(Secret::expose), Some("from-env"));

    let file = std::env::temp_dir().join(format!("fleet-pw-{}", std::process::id()));
    std::fs::write(&file, "from-file\n").unwrap();
    let c = redis(&format!("redis://h?password_file={}", file.display()));
    assert_eq!(c.password.as_ref().map(Secret::expose), Some("from-file"));
    std::fs::remove_file(&file).unwrap();

    let e = parse_save_path("redis://h?password_env=FLEET_TEST_UNSET_VAR").unwrap_err();
    assert!(e.to_string().contains("FLEET_TEST_UNSET_VAR"), "{e}");
    let e = parse_save_path("redis://h?password_file=/nonexistent/pw").unwrap_err();
    assert!(e.to_string().contains("/nonexistent/pw"), "{e}");
}

#[test]
fn errors_quote_the_bad_part_but_never_the_password() {
    let cases = [
        ("redis://h:notaport", "notaport"),
        ("redis://h:0", "0"),
        ("redis://h/abc", "abc"),
        ("redis://h?timeout=-1", "timeout=-1"),
        ("redis://h?bogus=1", "bogus"),
        ("memcached://h", "memcached"),
        ("redis://h?table=x", "table"),
        ("redis://bad host", "bad host"),
        ("unix://relative.sock", "relative.sock"),
        ("redis://h?tls_verify=0", "tls_verify=0"),
    ];
    for (input, quoted) in cases {
        let e = parse_save_path(input).expect_err(input).to_string();
        assert!(e.contains(quoted), "{input}: {e}");
    }
    for input in [
        "h:6379",
        "redis://u:hunter2@h:bad",
        "redis://h?auth=hunter2&password_env=X",
    ] {
        let e = parse_save_path(input).expect_err(input).to_string();
        assert!(!e.contains("hunter2"), "{input}: {e}");
    }
    let e = parse_save_path("u:hunter2@h:6379").unwrap_err().to_string();
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn secret_never_formats() {
    let c = redis("redis://u:hunter2@h");
    assert!(!format!("{c:?}").contains("hunter2"));
    assert_eq!(
        redact_userinfo("redis://u:hunter2@h:1/0"),
        "redis://***@h:1/0"
    );
}

#[test]
fn sentinel_form() {
    std::env::set_var("FLEET_TEST_SENTINEL_PW", "s-secret");
    let c = redis(
        "redis+sentinel://app:n%40pw@s1:26380,s2,[::1]:26381/mymaster/2?sentinel_user=watch&sentinel_password_env=FLEET_TEST_SENTINEL_PW&wait_replicas=1&wait_timeout=0.5&max_connection_age=300",
    );
    assert_eq!(
        c.endpoint,
        RedisEndpoint::Sentinel {
            sentinels: vec![
                ("s1".into(), 26380),
                ("s2".into(), DEFAULT_SENTINEL_PORT),
                ("::1".into(), 26381)
            ],
            master: "mymaster".into(),
            tls: None,
        }
    );
    assert_eq!(c.db, 2);
    assert_eq!(c.username.as_deref(), Some("app"));
    assert_eq!(c.password.as_ref().map(Secret::expose), Some("n@pw"));
    assert_eq!(c.sentinel_username.as_deref(), Some("watch"));
    assert_eq!(
        c.sentinel_password.as_ref().map(Secret::expose),
        Some("s-secret")
    );
    assert_eq!(
        (c.wait_replicas, c.wait_timeout),
        (1, Duration::from_millis(500))
    );
    assert_eq!(c.common.max_connection_age, Some(Duration::from_secs(300)));
    assert_eq!(
        c.endpoint.to_string(),
        "redis+sentinel://s1:26380,s2:26379,[::1]:26381/mymaster"
    );
    assert!(!format!("{c:?}").contains("s-secret"));

    let c = redis("rediss+sentinel://s1/m?tls_ca_file=/ca.pem");
    assert_eq!(
        c.endpoint,
        RedisEndpoint::Sentinel {
            sentinels: vec![("s1".into(), DEFAULT_SENTINEL_PORT)],
            master: "m".into(),
            tls: Some(RedisTls {
                verify: true,
                ca_file: Some("/ca.pem".into())
            }),
        }
    );
}

#[test]
fn cluster_form() {
    let c = redis("redis+cluster://n1:7000,n2:7001?prefix=app:");
    assert_eq!(
        c.endpoint,
        RedisEndpoint::Cluster {
            seeds: vec![("n1".into(), 7000), ("n2".into(), 7001)],
            tls: None
        }
    );
    assert_eq!(c.prefix, "app:");
    assert_eq!(c.endpoint.to_string(), "redis+cluster://n1:7000,n2:7001");
    let c = redis("rediss+cluster://n1?tls_verify=0");
    assert!(matches!(
        c.endpoint,
        RedisEndpoint::Cluster {
            tls: Some(RedisTls { verify: false, .. }),
            ..
        }
    ));
}

#[test]
fn topology_errors_name_the_fix() {
    let cases = [
        ("redis+sentinel://s1,s2", "master name"),
        ("redis+sentinel://s1,s2/", "master name"),
        ("redis://h?sentinel_user=x", "redis+sentinel://"),
        ("redis+sentinel://s1,bad host/m", "bad host"),
        ("redis+cluster://n1:7000/3", "database 0"),
        ("redis+cluster://n1:7000?database=2", "database 0"),
        ("redis+cluster://n1:7000?prefix=a{b}:", "prefix=a{b}:"),
        ("redis://h?wait_replicas=-1", "wait_replicas=-1"),
        ("redis://h?max_connection_age=0", "max_connection_age=0"),
        ("redis+sentinel://s/m?tls_verify=0", "rediss+sentinel://"),
    ];
    for (input, quoted) in cases {
        let e = parse_save_path(input).expect_err(input).to_string();
        assert!(e.contains(quoted), "{input}: {e}");
    }
    let e = parse_save_path("redis+sentinel://u:hunter2@s1/m?sentinel_password_env=NOPE_UNSET")
        .expect_err("unset env")
        .to_string();
    assert!(!e.contains("hunter2") && e.contains("NOPE_UNSET"), "{e}");
}
