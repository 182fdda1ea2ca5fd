#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests: a panic here fails the test
//! The session decoder on data PHP itself produced (`session_encode()` under both
//! `session.serialize_handler`s), with every kind of value a session holds.

use std::process::Command;

use fleet_core::codec::{decode, decode_any, PhpKey, PhpValue, SessionFormat, Visibility};

/// What PHP stores for `$_SESSION` built by the code below, in `format`.
fn encoded_by_php(format: &str) -> Vec<u8> {
    let code = r#"
class Cart { public $items = []; protected $owner = 'alice'; private $secret = "s\x00t"; }
session_start();
$cart = new Cart();
$cart->items = [['sku' => 'A-1', 'qty' => 2], ['sku' => 'B-2', 'qty' => 1]];
$shared = ['x' => 1];
$_SESSION['user'] = ['id' => 42, 'name' => 'Zoë', 'roles' => ['admin', 'billing']];
$_SESSION['cart'] = $cart;
$_SESSION['same_cart'] = $cart;
$_SESSION['alias'] = &$shared;
$_SESSION['alias_again'] = &$shared;
$_SESSION['floats'] = [0.1, -1.5e300, 3.0, INF, -INF];
$_SESSION['flags'] = [true, false, null];
$_SESSION['bytes'] = "\x00\xff\xfe binary";
$_SESSION['sparse'] = [5 => 'five', -3 => 'minus three', '7' => 'seven'];
$_SESSION['empty'] = [];
$_SESSION['big'] = PHP_INT_MAX;
echo session_encode();
"#;
    let out = Command::new("php")
        .args([
            "-n",
            "-d",
            "session.save_handler=files",
            "-d",
            "session.use_cookies=0",
        ])
        .arg("-d")
        .arg(format!("session.serialize_handler={format}"))
        .arg("-d")
        .arg(format!(
            "session.save_path={}",
            std::env::temp_dir().display()
        ))
        .arg("-r")
        .arg(code)
        .output()
        .expect("php (php-cli) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn s(text: &str) -> PhpValue {
    PhpValue::Str(text.as_bytes().to_vec())
}

fn k(text: &str) -> PhpKey {
    PhpKey::Str(text.as_bytes().to_vec())
}

fn list(values: Vec<PhpValue>) -> PhpValue {
    PhpValue::Array(
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| (PhpKey::Int(i as i64), v))
            .collect(),
    )
}

fn check(format: &str, expected_format: SessionFormat) {
    let data = encoded_by_php(format);
    let vars = decode(&data, expected_format)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&data)));
    assert_eq!(decode_any(&data).map(|v| v.format), Ok(expected_format));
    let get = |name: &str| {
        vars.get(name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name}"))
    };

    assert_eq!(
        get("user"),
        PhpValue::Array(vec![
            (k("id"), PhpValue::Int(42)),
            (k("name"), s("Zoë")),
            (k("roles"), list(vec![s("admin"), s("billing")])),
        ])
    );
    let PhpValue::Object { class, properties } = get("cart") else {
        panic!("cart is an object: {:?}", get("cart"));
    };
    assert_eq!(class, "Cart");
    let names: Vec<(&str, Visibility)> = properties
        .iter()
        .map(|p| (p.name.as_str(), p.visibility))
        .collect();
    assert_eq!(
        names,
        [
            ("items", Visibility::Public),
            ("owner", Visibility::Protected),
            ("secret", Visibility::Private)
        ]
    );
    assert_eq!(properties[2].value, s("s\0t"));
    assert_eq!(
        properties[0].value,
        list(vec![
            PhpValue::Array(vec![(k("sku"), s("A-1")), (k("qty"), PhpValue::Int(2))]),
            PhpValue::Array(vec![(k("sku"), s("B-2")), (k("qty"), PhpValue::Int(1))]),
        ])
    );
    // The same object twice (r:) and a PHP reference (R:) read as copies of their target.
    assert_eq!(get("same_cart"), get("cart"));
    let shared = PhpValue::Array(vec![(k("x"), PhpValue::Int(1))]);
    assert_eq!(get("alias"), shared);
    assert_eq!(get("alias_again"), shared);
    let PhpValue::Array(floats) = get("floats") else {
        panic!("floats")
    };
    let floats: Vec<f64> = floats
        .iter()
        .map(|(_, v)| match v {
            PhpValue::Float(f) => *f,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        floats,
        [0.1, -1.5e300, 3.0, f64::INFINITY, f64::NEG_INFINITY]
    );
    assert_eq!(
        get("flags"),
        list(vec![
            PhpValue::Bool(true),
            PhpValue::Bool(false),
            PhpValue::Null
        ])
    );
    assert_eq!(get("bytes"), PhpValue::Str(b"\x00\xff\xfe binary".to_vec()));
    assert_eq!(
        get("sparse"),
        PhpValue::Array(vec![
            (PhpKey::Int(5), s("five")),
            (PhpKey::Int(-3), s("minus three")),
            (PhpKey::Int(7), s("seven")),
        ])
    );
    assert_eq!(get("empty"), PhpValue::Array(vec![]));
    assert_eq!(get("big"), PhpValue::Int(i64::MAX));
    // JSON for people: binary as hex, INF spelled as PHP does.
    let json = vars.to_json();
    assert_eq!(json["bytes"]["@binary"], "00fffe2062696e617279");
    assert_eq!(json["floats"][3], "INF");
    assert_eq!(json["cart"]["@class"], "Cart");
    assert_eq!(json["cart"]["*owner"], "alice");
}

#[test]
fn decodes_what_php_wrote_with_the_php_handler() {
    check("php", SessionFormat::Php);
}

#[test]
fn decodes_what_php_wrote_with_the_php_serialize_handler() {
    check("php_serialize", SessionFormat::PhpSerialize);
}

#[test]
fn nan_and_custom_serialized_objects_and_truncated_data() {
    let out = Command::new("php")
        // The Serializable interface is deprecated (a notice on stdout) but still written
        // by old code, so sessions hold it.
        .args(["-n", "-d", "display_errors=0", "-r"])
        .arg(r#"class L implements Serializable { function serialize() { return "v1"; } function unserialize($d) {} } echo @serialize([NAN, new L()]);"#)
        .output()
        .expect("php runs");
    let value = fleet_core::codec::unserialize(&out.stdout);
    let Ok(PhpValue::Array(items)) = value else {
        panic!("{value:?}: {}", String::from_utf8_lossy(&out.stdout));
    };
    assert!(matches!(items[0].1, PhpValue::Float(f) if f.is_nan()));
    assert_eq!(
        items[1].1,
        PhpValue::Custom {
            class: "L".into(),
            payload: b"v1".to_vec()
        }
    );
    // Every prefix of real data is refused cleanly, never a panic.
    let data = encoded_by_php("php");
    for end in 0..data.len() {
        let _ = decode(&data[..end], SessionFormat::Php);
        let _ = decode_any(&data[..end]);
    }
}

/// The number of values in `value`, itself included: what decoding it allocated.
fn values_in(value: &PhpValue) -> usize {
    1 + match value {
        PhpValue::Array(entries) => entries.iter().map(|(_, v)| values_in(v)).sum(),
        PhpValue::Object { properties, .. } => properties.iter().map(|p| values_in(&p.value)).sum(),
        _ => 0,
    }
}

/// A crafted `serialize()` blob of `levels` arrays, each holding two `R:` references to the
/// previous one: a few bytes per level, twice the values of the level before once copied.
fn doubling_references(levels: usize) -> String {
    // The outer array is value 1, the first inner array 2, its string 3; each later level's
    // array takes the next number (`R:` itself takes none, as in `unserialize()`).
    let mut blob = format!("a:{}:{{i:0;a:1:{{i:0;s:1:\"x\";}}", levels + 1);
    let mut previous = 2;
    for level in 1..=levels {
        blob += &format!("i:{level};a:2:{{i:0;R:{previous};i:1;R:{previous};}}");
        previous = level + 3;
    }
    blob + "}"
}

/// The most values a blob of `len` bytes may decode to: as the codec promises (64 per byte
/// of input, at least 65 536), so that a reference-free session is never refused.
fn allowed_values(len: usize) -> usize {
    (len * 64).max(65_536)
}

#[test]
fn references_cannot_expand_a_small_blob_past_a_bound_proportional_to_it() {
    let blob = doubling_references(36);
    assert!(blob.len() <= 1100, "a ~1 KB blob: {} bytes", blob.len());
    // Level by level the decoded size doubles, until it would pass the bound; from there
    // decoding must refuse, never allocate 2^36 values (the 1 KB blob) or return a tree
    // past the bound. Stops at the first refusal, so the test's own memory stays bounded
    // (before the fix it fails at 2^17 values, a few MB).
    let mut grew = Vec::new();
    let mut refused_at = None;
    for levels in 1..=36 {
        let blob = doubling_references(levels);
        match fleet_core::codec::unserialize(blob.as_bytes()) {
            Ok(value) => {
                let n = values_in(&value);
                assert!(
                    n <= allowed_values(blob.len()),
                    "{levels} levels, {} bytes, decoded to {n} values (growth so far: {grew:?})",
                    blob.len()
                );
                grew.push(n);
            }
            Err(e) => {
                assert!(
                    e.reason.contains("through references"),
                    "{levels} levels: {e}"
                );
                refused_at = Some(levels);
                break;
            }
        }
    }
    // The growth is real (each level doubles), so the bound, not the data, stopped it.
    assert!(grew.windows(2).all(|w| w[1] > w[0] * 19 / 10), "{grew:?}");
    assert!(refused_at.is_some(), "never refused: {grew:?}");
    eprintln!(
        "{} bytes for 36 levels; decoded sizes {grew:?}, refused at {refused_at:?} levels",
        blob.len()
    );
    // The same blob as a session, through both entry points the CLI uses.
    let session = format!("evil|{blob}");
    let e = decode(session.as_bytes(), SessionFormat::Php);
    assert!(
        matches!(&e, Err(d) if d.reason.contains("through references")),
        "{e:?}"
    );
    let e = decode_any(format!("a:1:{{s:4:\"evil\";{}}}", &blob).as_bytes());
    assert!(
        matches!(&e, Err(d) if d.reason.contains("through references")),
        "{e:?}"
    );
}

#[test]
fn references_cannot_nest_a_value_deeper_than_the_depth_bound() {
    // Each array holds a reference to the previous one: two levels deep as written, 5 000
    // deep once copied (which would overflow the stack of whoever walks or drops it).
    let levels = 5_000;
    let mut blob = format!("a:{}:{{i:0;a:1:{{i:0;N;}}", levels + 1);
    let mut previous = 2;
    for level in 1..=levels {
        blob += &format!("i:{level};a:1:{{i:0;R:{previous};}}");
        previous = level + 3;
    }
    blob += "}";
    let e = fleet_core::codec::unserialize(blob.as_bytes());
    assert!(
        matches!(&e, Err(d) if d.reason.contains("nested deeper")),
        "{e:?}"
    );
}

#[test]
fn a_hundred_thousand_nested_arrays_are_refused_not_a_stack_overflow() {
    let levels = 100_000;
    let blob = format!("{}N;{}", "a:1:{i:0;".repeat(levels), "}".repeat(levels));
    let e = fleet_core::codec::unserialize(blob.as_bytes());
    assert!(
        matches!(&e, Err(d) if d.reason.contains("nested deeper")),
        "{e:?}"
    );
    let e = decode(format!("deep|{blob}").as_bytes(), SessionFormat::Php);
    assert!(
        matches!(&e, Err(d) if d.reason.contains("nested deeper")),
        "{e:?}"
    );
}
