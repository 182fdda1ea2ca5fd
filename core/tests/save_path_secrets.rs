//! No message of Fleet's about a save_path shows a password, whatever the URL's shape.
//!
//! A password may be written unencoded, with `/ ? # @ & = %` in it, in the userinfo or in a
//! password option (`auth=`, `password=`). The parser may then misread where the password
//! ends, and reject the value; the property here is that its error, in `Display` and in
//! `Debug`, never contains the password's marker nor any 4-character window of the password
//! that covers a character of the marker (windows of punctuation alone, like `:///`, occur
//! in the messages' own text).

use fleet_core::parse_save_path;
use proptest::prelude::*;

/// Appears nowhere in Fleet's messages or in the rest of the generated URLs (no `Q`).
const MARKER: &str = "QS3cr3tMarkQ";

/// The characters that end or split a URL part when they are not percent-encoded.
const PUNCT: &[char] = &[
    '/', '?', '#', '@', '&', '=', '%', ':', ';', '+', ',', '!', '$', '[', ']', '*',
];

fn punct(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PUNCT), 0..=max)
        .prop_map(|chars| chars.into_iter().collect())
}

/// Punctuation, the marker, and more punctuation and marker letters mixed in.
fn password() -> impl Strategy<Value = String> {
    let mixed = prop::collection::vec(
        prop_oneof![
            prop::sample::select(PUNCT),
            prop::sample::select(vec!['Q', 'k', '3'])
        ],
        0..6,
    )
    .prop_map(|chars| chars.into_iter().collect::<String>());
    (punct(4), mixed, punct(4)).prop_map(|(a, b, c)| format!("{a}{MARKER}{b}{c}"))
}

#[derive(Clone, Debug)]
enum Place {
    /// `user:password@` (with or without the user).
    Userinfo { user: bool },
    /// `?…&name=password&…` at position `at` among the other options.
    Option { name: &'static str, at: usize },
}

fn place() -> impl Strategy<Value = Place> {
    prop_oneof![
        any::<bool>().prop_map(|user| Place::Userinfo { user }),
        (
            prop::sample::select(vec![
                "auth",
                "password",
                "sentinel_password",
                "%61uth",
                "pass%77ord"
            ]),
            0usize..4
        )
            .prop_map(|(name, at)| Place::Option { name, at }),
    ]
}

/// The part after the userinfo and before the query, valid and not, per scheme.
fn body(scheme: &str) -> Vec<&'static str> {
    match scheme {
        "redis" | "rediss" => vec!["h1", "h1:6379/2", "h1:bad", "h1/x", "bad host"],
        "redis+sentinel" => vec!["s1:26379,s2/mymaster/1", "s1,s2", "s1/m/x"],
        "redis+cluster" => vec!["n1:7000,n2:7001", "n1/3", "n1:0"],
        "mysql" => vec!["db1:3306/app", "db1,db2/app", "/app", "db1", "db1:x/app"],
        _ => vec!["/run/redis.sock", "relative.sock"],
    }
}

const OTHER_OPTIONS: &[&str] = &[
    "prefix=app:",
    "timeout=2",
    "timeout=-1",
    "bogus=1",
    "database=1",
    "table=t1",
    "table=a;b",
    "tls_verify=0",
    "lock=maybe",
    "password_env=FLEET_TEST_UNSET_PW_VAR",
    "password_file=/nonexistent/fleet-pw",
    "wait_replicas=-1",
];

fn url() -> impl Strategy<Value = (String, String)> {
    prop::sample::select(vec![
        "redis",
        "rediss",
        "redis+sentinel",
        "redis+cluster",
        "mysql",
        "unix",
    ])
    .prop_flat_map(|scheme| {
        (
            Just(scheme),
            prop::sample::select(body(scheme)),
            password(),
            place(),
            prop::collection::vec(prop::sample::select(OTHER_OPTIONS), 0..3),
        )
    })
    .prop_map(|(scheme, body, password, place, mut options)| {
        let mut userinfo = String::new();
        match place {
            Place::Userinfo { user } => {
                userinfo = format!("{}:{password}@", if user { "app" } else { "" });
            }
            Place::Option { name, at } => {
                let at = at.min(options.len());
                options.insert(at, Box::leak(format!("{name}={password}").into_boxed_str()));
            }
        }
        let query = match options.is_empty() {
            true => String::new(),
            false => format!("?{}", options.join("&")),
        };
        (format!("{scheme}://{userinfo}{body}{query}"), password)
    })
}

/// The parts of `message` that would give the password away.
fn leaks(message: &str, password: &str) -> Vec<String> {
    let chars: Vec<char> = password.chars().collect();
    let marker_at = password
        .find(MARKER)
        .map_or(0, |b| password[..b].chars().count());
    let marker_end = marker_at + MARKER.chars().count();
    let mut found = Vec::new();
    if message.contains(MARKER) {
        found.push(MARKER.to_owned());
    }
    for start in 0..chars.len().saturating_sub(3) {
        // Only windows that cover a character of the marker: those are the password's own.
        if start + 4 <= marker_at || start >= marker_end {
            continue;
        }
        let window: String = chars[start..start + 4].iter().collect();
        if message.contains(&window) {
            found.push(window);
        }
    }
    found
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn no_error_shows_any_piece_of_a_password((url, password) in url()) {
        match parse_save_path(&url) {
            Err(e) => {
                for message in [e.to_string(), format!("{e:?}")] {
                    let found = leaks(&message, &password);
                    prop_assert!(found.is_empty(), "{url}\n  → {message}\n  shows {found:?}");
                }
            }
            // A value the parser accepted must not have taken a piece of the password for
            // the host (the endpoint appears in every connection error) or any other setting.
            Ok(config) => {
                for message in [config.endpoint(), format!("{config:?}")] {
                    prop_assert!(!message.contains(MARKER), "{url}\n  → {message}");
                }
            }
        }
    }
}

/// The shapes the security review reported (issue 22), as plain cases.
#[test]
fn the_reported_shapes_do_not_leak() {
    for (url, secret) in [
        ("redis://:pa/ss@h:bad", "pa/ss"),
        ("mysql://u:pa/ss@db/x?lock=maybe", "pa/ss"),
        ("mysql://u:pa/ss@db", "pa/ss"),
        ("redis://h?auth=a&bcdef", "bcdef"),
        ("redis://h?auth=abcd&efgh=1", "efgh"),
        ("redis://u:pass?w0rdz@h:bad", "w0rdz"),
        ("redis://u:pa?ss=w0rdz@h", "w0rdz"),
        ("redis://u:secr#et@h/x", "secr"),
        ("mysql://u:p@ss@w0rd@db/x?lock=maybe", "w0rd"),
        ("unix://:hunter2@relative.sock", "hunter2"),
        ("u:pa/ss@h:6379", "pa/ss"),
        ("h?auth=hunter2", "hunter2"),
    ] {
        let e = parse_save_path(url).expect_err(url);
        for message in [e.to_string(), format!("{e:?}")] {
            assert!(!message.contains(secret), "{url} → {message}");
        }
    }
}

/// Unencoded `/` and `@` in a userinfo password (base64 has `/`) now parse as the password,
/// not as the path.
#[test]
fn a_password_with_slash_or_at_is_the_password() {
    for (url, host) in [
        ("redis://:pa/ss@h:6380/2", "redis://h:6380"),
        ("mysql://u:pa/ss@db/x", "mysql://db:3306/x"),
        ("redis://u:p@ss@h", "redis://h:6379"),
    ] {
        let config = parse_save_path(url).expect(url);
        assert_eq!(config.endpoint(), host, "{url}");
    }
    // An `@` in a query value stays in the query.
    let config = parse_save_path("redis://h/0?prefix=a@b:").expect("prefix with @");
    assert_eq!(config.endpoint(), "redis://h:6379");
}
