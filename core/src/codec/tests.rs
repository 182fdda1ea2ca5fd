use super::*;

fn php(data: &str) -> SessionVars {
    match decode(data.as_bytes(), SessionFormat::Php) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn php_format_reads_name_value_pairs() {
    let s = php("user|s:5:\"alice\";n|i:3;ok|b:1;f|d:0.5;none|N;");
    assert_eq!(s.get("user"), Some(&PhpValue::Str(b"alice".to_vec())));
    assert_eq!(s.get("n"), Some(&PhpValue::Int(3)));
    assert_eq!(s.get("ok"), Some(&PhpValue::Bool(true)));
    assert_eq!(s.get("f"), Some(&PhpValue::Float(0.5)));
    assert_eq!(s.get("none"), Some(&PhpValue::Null));
}

#[test]
fn references_are_numbered_across_variables_as_unserialize_does() {
    // $_SESSION['a'] = [1, 2]; $_SESSION['b'] = &$_SESSION['a'][1];
    let s = php("a|a:2:{i:0;i:1;i:1;i:2;}b|R:3;");
    assert_eq!(s.get("b"), Some(&PhpValue::Int(2)));
}

#[test]
fn a_recursive_array_is_marked_not_followed() {
    let value = unserialize(b"a:1:{i:0;R:1;}");
    assert_eq!(
        value,
        Ok(PhpValue::Array(vec![(
            PhpKey::Int(0),
            PhpValue::Recursion(1)
        )]))
    );
}

#[test]
fn malformed_data_is_an_error_with_its_position() {
    for bad in [
        "user|s:50:\"short\";",
        "noseparator",
        "x|a:2:{i:0;i:1;}",
        "x|R:9;",
    ] {
        assert!(decode(bad.as_bytes(), SessionFormat::Php).is_err(), "{bad}");
    }
    let e = decode(b"a|i:1;b|x", SessionFormat::Php);
    assert!(matches!(e, Err(DecodeError { position: 8, .. })), "{e:?}");
}

#[test]
fn nesting_is_bounded() {
    let nested = |n: usize| format!("{}N;{}", "a:1:{i:0;".repeat(n), "}".repeat(n));
    assert!(unserialize(nested(MAX_DEPTH).as_bytes()).is_ok());
    let e = unserialize(nested(MAX_DEPTH + 10).as_bytes());
    assert!(matches!(&e, Err(d) if d.reason.contains("nested")), "{e:?}");
}

#[test]
fn decode_any_tells_the_formats_apart() {
    let serialized = decode_any(b"a:1:{s:4:\"user\";s:1:\"x\";}");
    assert_eq!(
        serialized.map(|v| v.format),
        Ok(SessionFormat::PhpSerialize)
    );
    let plain = decode_any(b"a:|i:1;");
    assert_eq!(plain.map(|v| v.format), Ok(SessionFormat::Php));
}

#[test]
fn json_keeps_lists_maps_classes_and_bytes_apart() {
    let value = unserialize(
        b"a:3:{i:0;a:2:{i:0;i:1;i:1;i:2;}s:1:\"m\";a:1:{s:1:\"k\";s:2:\"\xff\x00\";}s:1:\"o\";O:4:\"User\":2:{s:4:\"name\";s:1:\"x\";s:6:\"\0*\0age\";d:INF;}}",
    );
    let json = value.map(|v| v.to_json().to_string());
    assert_eq!(
        json.as_deref(),
        Ok(
            r#"{"0":[1,2],"m":{"k":{"@binary":"ff00"}},"o":{"@class":"User","name":"x","*age":"INF"}}"#
        )
    );
}
