//! A session cut into its top-level variables, each kept as the bytes it was written as, and
//! put back together: what a per-variable merge works on ([`crate::merge`]). Nothing is
//! decoded into values and nothing is re-encoded, so a variable nobody changed is written
//! back byte for byte.
//!
//! Data that cannot be cut safely is [`Split::Whole`]: anything that does not read as the
//! format (another serialize handler such as igbinary, a compressed or damaged blob); data
//! with a reference (`R:`, `r:`), whose number counts every value before it, so moving or
//! changing another variable would make it point elsewhere, or with a `C:` object
//! (`Serializable`), whose opaque payload may hold such references; and data that names a
//! variable twice (PHP keeps the last, a merge would see the first), or, in `php_serialize`,
//! gives a key as a numeric string, which PHP reads as the integer key another may also be.
//!
//! The reader only skims: it keeps no values, so cutting costs memory for the list of
//! spans only, whatever the data holds.

use super::read::Reader;
use super::{DecodeError, SessionFormat};

/// A session's data as top-level variables, or as one piece.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Split<'a> {
    /// The variables in order: each one's key as written (`name` for `php`, the serialized
    /// key such as `s:4:"cart";` for `php_serialize`) and its value as written.
    Vars(Vec<(&'a [u8], &'a [u8])>),
    /// Not cut: merged, if at all, as one variable.
    Whole,
}

/// Cuts `data`, written by `format`'s serialize handler, into its top-level variables.
pub fn split(data: &[u8], format: SessionFormat) -> Split<'_> {
    if data.is_empty() {
        return Split::Vars(Vec::new());
    }
    let cut = match format {
        SessionFormat::Php => split_php(data),
        SessionFormat::PhpSerialize => split_php_serialize(data),
    };
    match cut {
        Ok(Some(vars)) => Split::Vars(vars),
        _ => Split::Whole,
    }
}

/// Writes variables cut by [`split`] (or merged from such) back as `format`'s data.
pub fn join(vars: &[(&[u8], &[u8])], format: SessionFormat) -> Vec<u8> {
    let size: usize = vars.iter().map(|(k, v)| k.len() + v.len() + 1).sum();
    let mut out = Vec::with_capacity(size + 16);
    match format {
        SessionFormat::Php => {
            for (name, value) in vars {
                out.extend_from_slice(name);
                out.push(b'|');
                out.extend_from_slice(value);
            }
        }
        SessionFormat::PhpSerialize => {
            if vars.is_empty() {
                return out;
            }
            out.extend_from_slice(format!("a:{}:{{", vars.len()).as_bytes());
            for (key, value) in vars {
                out.extend_from_slice(key);
                out.extend_from_slice(value);
            }
            out.push(b'}');
        }
    }
    out
}

type Vars<'a> = Vec<(&'a [u8], &'a [u8])>;

/// `name|value name|value …`; `None` when a value holds a reference.
fn split_php(data: &[u8]) -> Result<Option<Vars<'_>>, DecodeError> {
    let mut reader = Reader::skimming(data, SessionFormat::Php.name());
    let mut vars = Vec::new();
    while reader.offset < data.len() {
        let rest = &data[reader.offset..];
        let Some(bar) = rest.iter().position(|&b| b == b'|') else {
            return Err(reader.error(reader.offset, "a variable name without '|' after it".into()));
        };
        let name = &rest[..bar];
        reader.offset += bar + 1;
        let start = reader.offset;
        reader.value(0)?;
        vars.push((name, &data[start..reader.offset]));
    }
    Ok(standalone(&reader, &vars).then_some(vars))
}

/// Whether the variables cut stand alone: no reference, no `C:` object, no name twice.
fn standalone(reader: &Reader<'_>, vars: &Vars<'_>) -> bool {
    let mut names = std::collections::HashSet::with_capacity(vars.len());
    reader.references == 0
        && reader.custom_objects == 0
        && vars.iter().all(|(name, _)| names.insert(*name))
}

/// A `php_serialize` integer key not written as PHP writes one (`i:07;`, `i:-0;`): the
/// reader takes it, but as the same key as `i:7;` (`i:0;`), which a merge would see as two.
fn non_canonical_int_key(key: &[u8]) -> bool {
    let Some(number) = key.strip_prefix(b"i:").and_then(|k| k.strip_suffix(b";")) else {
        return false;
    };
    let digits = number.strip_prefix(b"-").unwrap_or(number);
    let canonical = match digits {
        b"0" => number == b"0",
        [first, ..] => (b'1'..=b'9').contains(first) && digits.iter().all(u8::is_ascii_digit),
        [] => false,
    };
    !canonical
}

/// A `php_serialize` key written as a string of digits (`s:1:"7";`): PHP turns such a key
/// into the integer key 7 (which `i:7;` also names), and never writes one itself.
fn numeric_string_key(key: &[u8]) -> bool {
    let Some(rest) = key.strip_prefix(b"s:") else {
        return false;
    };
    let Some(quote) = rest.iter().position(|&b| b == b'"') else {
        return false;
    };
    let text = rest
        .get(quote + 1..rest.len().saturating_sub(2))
        .unwrap_or_default();
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// `a:N:{key value key value …}`; `None` when a value holds a reference.
fn split_php_serialize(data: &[u8]) -> Result<Option<Vars<'_>>, DecodeError> {
    let mut reader = Reader::skimming(data, SessionFormat::PhpSerialize.name());
    let elements = reader.array_start()?;
    let mut vars = Vec::new();
    for _ in 0..elements {
        let key = reader.key_span()?;
        let start = reader.offset;
        reader.value(1)?;
        vars.push((&data[key], &data[start..reader.offset]));
    }
    reader.array_end(0)?;
    reader.expect_end()?;
    let numeric = vars
        .iter()
        .any(|(key, _)| numeric_string_key(key) || non_canonical_int_key(key));
    Ok((!numeric && standalone(&reader, &vars)).then_some(vars))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn php_data_is_cut_into_variables_and_joined_back_byte_for_byte() {
        let data: &[u8] = b"user|a:2:{s:2:\"id\";i:7;s:4:\"name\";s:3:\"Ann\";}cart|a:0:{}n|i:3;";
        let Split::Vars(vars) = split(data, SessionFormat::Php) else {
            panic!("not cut");
        };
        let names: Vec<&[u8]> = vars.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, [&b"user"[..], b"cart", b"n"]);
        assert_eq!(vars[2].1, b"i:3;");
        assert_eq!(join(&vars, SessionFormat::Php), data);
    }

    #[test]
    fn php_serialize_data_is_cut_into_elements_and_joined_back_byte_for_byte() {
        let data: &[u8] =
            b"a:3:{s:4:\"user\";O:8:\"stdClass\":1:{s:2:\"id\";i:7;}i:5;d:0.5;s:1:\"n\";i:3;}";
        let Split::Vars(vars) = split(data, SessionFormat::PhpSerialize) else {
            panic!("not cut");
        };
        assert_eq!(vars.len(), 3);
        assert_eq!(vars[1], (&b"i:5;"[..], &b"d:0.5;"[..]));
        assert_eq!(join(&vars, SessionFormat::PhpSerialize), data);
    }

    #[test]
    fn data_with_a_reference_or_another_format_stays_whole() {
        // `b` is a PHP reference to `a`'s value: its number counts the values before it.
        assert_eq!(split(b"a|i:1;b|R:1;", SessionFormat::Php), Split::Whole);
        assert_eq!(
            split(
                b"a:2:{i:0;O:8:\"stdClass\":0:{}i:1;r:2;}",
                SessionFormat::PhpSerialize
            ),
            Split::Whole
        );
        // igbinary, a compressed frame, damaged data.
        assert_eq!(
            split(b"\x00\x00\x00\x02\x14\x01", SessionFormat::Php),
            Split::Whole
        );
        assert_eq!(split(b"n|i:3", SessionFormat::Php), Split::Whole);
        assert_eq!(
            split(b"a:1:{i:0;i:1;}x", SessionFormat::PhpSerialize),
            Split::Whole
        );
        assert_eq!(split(b"n|i:3;", SessionFormat::PhpSerialize), Split::Whole);
    }

    #[test]
    fn a_name_twice_a_serializable_object_or_a_numeric_string_key_stays_whole() {
        // PHP keeps the second a; a merge would see the first.
        assert_eq!(split(b"a|i:1;a|i:2;", SessionFormat::Php), Split::Whole);
        // A C: payload is opaque and may hold references numbered among its neighbours.
        assert_eq!(
            split(b"o|C:6:\"Legacy\":3:{old}n|i:1;", SessionFormat::Php),
            Split::Whole
        );
        // "7" is the integer key 7 to PHP, as i:7; is.
        assert_eq!(
            split(b"a:2:{i:7;i:1;s:1:\"7\";i:2;}", SessionFormat::PhpSerialize),
            Split::Whole
        );
        assert!(matches!(
            split(b"a:1:{s:2:\"7a\";i:1;}", SessionFormat::PhpSerialize),
            Split::Vars(_)
        ));
        // i:07; is the key 7 to PHP, as i:7; is; i:-0; is 0.
        for key in ["i:07;", "i:-0;", "i:00;"] {
            let data = format!("a:2:{{i:7;i:1;{key}i:2;}}");
            assert_eq!(
                split(data.as_bytes(), SessionFormat::PhpSerialize),
                Split::Whole,
                "{key}"
            );
        }
        assert!(matches!(
            split(
                b"a:3:{i:0;i:1;i:-5;i:2;i:70;i:3;}",
                SessionFormat::PhpSerialize
            ),
            Split::Vars(_)
        ));
    }

    #[test]
    fn skimming_keeps_nothing_of_the_values() {
        // A million small values: cutting them must not build a node per value.
        let mut data = b"big|a:1000000:{".to_vec();
        for i in 0..1_000_000 {
            data.extend_from_slice(format!("i:{i};i:1;").as_bytes());
        }
        data.extend_from_slice(b"}n|i:1;");
        let Split::Vars(vars) = split(&data, SessionFormat::Php) else {
            panic!("not cut");
        };
        assert_eq!(vars.len(), 2);
        assert_eq!(vars[1], (&b"n"[..], &b"i:1;"[..]));
    }

    #[test]
    fn empty_data_has_no_variables() {
        assert_eq!(split(b"", SessionFormat::Php), Split::Vars(Vec::new()));
        assert_eq!(join(&[], SessionFormat::PhpSerialize), b"");
    }
}
