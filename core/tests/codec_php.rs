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
        .args(["-n", "-d", "session.save_handler=files", "-d", "session.use_cookies=0"])
        .arg("-d")
        .arg(format!("session.serialize_handler={format}"))
        .arg("-d")
        .arg(format!("session.save_path={}", std::env::temp_dir().display()))
        .arg("-r")
        .arg(code)
        .output()
        .expect("php (php8.2-cli) runs");
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
    let vars = decode(&data, expected_format).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&data))
    });
    assert_eq!(decode_any(&data).map(|v| v.format), Ok(expected_format));
    let get = |name: &str| vars.get(name).cloned().unwrap_or_else(|| panic!("no {name}"));

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
    assert_eq!(floats, [0.1, -1.5e300, 3.0, f64::INFINITY, f64::NEG_INFINITY]);
    assert_eq!(
        get("flags"),
        list(vec![PhpValue::Bool(true), PhpValue::Bool(false), PhpValue::Null])
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
