//! PHP's session data formats, decoded for reading outside PHP (`fleetctl sessions show`, a
//! Rust service sharing the PHP application's login).
//!
//! PHP stores `$_SESSION` in the format `session.serialize_handler` names:
//! - `php` (the default): each variable as `name|<serialized value>`, one after another;
//! - `php_serialize`: the whole array as one `serialize()` value.
//!
//! Values are read with `phpserz`'s tokenizer; this module builds the tree, resolves
//! references the way `unserialize()` numbers them, and never instantiates anything. Input
//! is untrusted: every count is checked against the data, nesting is bounded, and any
//! malformed byte gives a [`DecodeError`] with its position, never a panic.

use std::fmt::Write as _;

use read::{Builder, Node, NodeId, Reader};

mod read;
mod split;

pub use split::{join, split, Split};

/// The `session.serialize_handler` a session was written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionFormat {
    /// `php`: `name|value` pairs.
    Php,
    /// `php_serialize`: one serialized array.
    PhpSerialize,
}

impl SessionFormat {
    /// The `session.serialize_handler` value.
    pub fn name(self) -> &'static str {
        match self {
            SessionFormat::Php => "php",
            SessionFormat::PhpSerialize => "php_serialize",
        }
    }
}

/// An array key: PHP arrays have integer and string keys.
#[derive(Clone, Debug, PartialEq)]
pub enum PhpKey {
    /// An integer key, as in `$a[0]`.
    Int(i64),
    /// A string key, as bytes (PHP does not require UTF-8).
    Str(Vec<u8>),
}

/// One decoded PHP value.
#[derive(Clone, Debug, PartialEq)]
pub enum PhpValue {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A PHP integer (64-bit).
    Int(i64),
    /// A PHP float; may be NaN or infinite.
    Float(f64),
    /// PHP strings are bytes; most are UTF-8 text.
    Str(Vec<u8>),
    /// An array, in its order.
    Array(Vec<(PhpKey, PhpValue)>),
    /// An object: its class and properties (never instantiated).
    Object {
        /// The class name as written, e.g. `App\\User`.
        class: String,
        /// The properties, in the order they were serialized.
        properties: Vec<Property>,
    },
    /// An object serialized by its class's own `serialize()` (`C:`), kept as its payload.
    Custom {
        /// The class name as written.
        class: String,
        /// The bytes the class's `serialize()` produced, not decoded further.
        payload: Vec<u8>,
    },
    /// A reference to a value that encloses it (a recursive structure), by PHP's number.
    Recursion(i64),
}

/// An object property.
#[derive(Clone, Debug, PartialEq)]
pub struct Property {
    /// The name, without the marker PHP puts in front of protected and private names.
    pub name: String,
    /// Whether the property was public, protected or private.
    pub visibility: Visibility,
    /// The property's value.
    pub value: PhpValue,
}

/// A property's visibility, which PHP records in the serialized name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// `public`: the name as is.
    Public,
    /// `protected`: written as `\0*\0name`.
    Protected,
    /// `private`: written as `\0Class\0name`; the declaring class is not kept.
    Private,
}

/// A decoded session: its variables, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionVars {
    /// The format the data was decoded from.
    pub format: SessionFormat,
    /// Each `$_SESSION` variable's name and value; names that are not UTF-8 are converted lossily.
    pub vars: Vec<(String, PhpValue)>,
}

impl SessionVars {
    /// The variable `name` (`$_SESSION[name]`).
    pub fn get(&self, name: &str) -> Option<&PhpValue> {
        self.vars.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// Why data could not be decoded, with the byte offset where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not PHP session data in the {format} format (at byte {position}): {reason}")]
pub struct DecodeError {
    /// The format being decoded: `php`, `php_serialize`, or `serialize` for [`unserialize`].
    pub format: &'static str,
    /// The byte offset in the input where decoding failed.
    pub position: usize,
    /// What was wrong there.
    pub reason: String,
}

/// Deeper nesting than this is refused rather than risking the stack (`unserialize()`'s
/// own default limit, `unserialize_max_depth`, is 4096; sessions are far shallower). It
/// bounds the decoded tree, references included, not only the data as written.
pub const MAX_DEPTH: usize = 512;

/// A decoded tree may hold this many values (and string bytes) per byte of input, or
/// [`MIN_EXPANSION_LIMIT`] if that is more; only references can reach it, since data
/// without them decodes to fewer values than it has bytes.
pub const EXPANSION_FACTOR: usize = 64;

/// The least expansion limit, so that small sessions sharing a value a few times are
/// never refused.
pub const MIN_EXPANSION_LIMIT: usize = 65_536;

/// How many values (and string bytes) data of `len` bytes may decode to.
pub fn expansion_limit(len: usize) -> usize {
    len.saturating_mul(EXPANSION_FACTOR)
        .max(MIN_EXPANSION_LIMIT)
}

/// Decodes session data in `format`.
pub fn decode(data: &[u8], format: SessionFormat) -> Result<SessionVars, DecodeError> {
    match format {
        SessionFormat::Php => decode_php(data),
        SessionFormat::PhpSerialize => read_php_serialize(data)?.build(),
    }
}

/// Decodes session data whose format is not known: `php_serialize` if the whole of it is
/// one serialized array, else `php`.
pub fn decode_any(data: &[u8]) -> Result<SessionVars, DecodeError> {
    if data.starts_with(b"a:") {
        // Once the data reads as one array it is `php_serialize`: an error building the
        // tree (a reference bomb) is that format's answer, not a reason to try `php`.
        if let Ok(read) = read_php_serialize(data) {
            return read.build();
        }
    }
    decode_php(data)
}

/// Decodes one `serialize()` value (all of `data`).
pub fn unserialize(data: &[u8]) -> Result<PhpValue, DecodeError> {
    let mut reader = Reader::new(data, "serialize");
    let root = reader.value(0)?;
    reader.expect_end()?;
    reader.into_builder().build(root, 0)
}

/// `php_serialize` data read but not yet built into a tree.
struct ReadSession {
    builder: Builder,
    entries: Vec<(PhpKey, NodeId)>,
}

impl ReadSession {
    fn build(mut self) -> Result<SessionVars, DecodeError> {
        let mut vars = Vec::with_capacity(self.entries.len());
        for (key, id) in std::mem::take(&mut self.entries) {
            self.builder.count_bytes(key_len(&key), id)?;
            vars.push((key_text(&key), self.builder.build(id, 1)?));
        }
        Ok(SessionVars {
            format: SessionFormat::PhpSerialize,
            vars,
        })
    }
}

fn read_php_serialize(data: &[u8]) -> Result<ReadSession, DecodeError> {
    let format = SessionFormat::PhpSerialize;
    let mut reader = Reader::new(data, format.name());
    let root = reader.value(0)?;
    reader.expect_end()?;
    let entries = match reader.nodes.get_mut(root) {
        Some((_, Node::Array(entries))) => std::mem::take(entries),
        _ => return Err(reader.error(0, "the top level is not an array".into())),
    };
    Ok(ReadSession {
        builder: reader.into_builder(),
        entries,
    })
}

fn decode_php(data: &[u8]) -> Result<SessionVars, DecodeError> {
    let format = SessionFormat::Php;
    let mut reader = Reader::new(data, format.name());
    let mut roots = Vec::new();
    while reader.offset < data.len() {
        let rest = &data[reader.offset..];
        let Some(bar) = rest.iter().position(|&b| b == b'|') else {
            return Err(reader.error(reader.offset, "a variable name without '|' after it".into()));
        };
        let raw_name = &rest[..bar];
        let name = String::from_utf8_lossy(raw_name).into_owned();
        reader.offset += bar + 1;
        let id = reader.value(0)?;
        roots.push((name, id));
    }
    let mut builder = reader.into_builder();
    let mut vars = Vec::with_capacity(roots.len());
    for (name, id) in roots {
        vars.push((name, builder.build(id, 0)?));
    }
    Ok(SessionVars { format, vars })
}

/// A string key as text (lossy for binary keys; keys are names for a reader).
fn key_text(key: &PhpKey) -> String {
    match key {
        PhpKey::Int(i) => i.to_string(),
        PhpKey::Str(s) => String::from_utf8_lossy(s).into_owned(),
    }
}

fn key_len(key: &PhpKey) -> usize {
    match key {
        PhpKey::Int(_) => 0,
        PhpKey::Str(s) => s.len(),
    }
}

impl PhpValue {
    /// The value as JSON: arrays with keys 0..n in order become JSON arrays, other arrays
    /// objects; objects get their class in `"@class"` (protected and private properties are
    /// prefixed `*` and `-`); bytes that are not UTF-8 become `{"@binary": "<hex>"}`;
    /// non-finite floats their PHP spelling.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{json, Map, Value};
        match self {
            PhpValue::Null => Value::Null,
            PhpValue::Bool(b) => Value::Bool(*b),
            PhpValue::Int(i) => json!(i),
            PhpValue::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(php_float(*f))),
            PhpValue::Str(s) => bytes_json(s),
            PhpValue::Array(entries) => {
                let is_list = entries
                    .iter()
                    .enumerate()
                    .all(|(i, (k, _))| *k == PhpKey::Int(i as i64));
                if is_list {
                    Value::Array(entries.iter().map(|(_, v)| v.to_json()).collect())
                } else {
                    let map: Map<String, Value> = entries
                        .iter()
                        .map(|(k, v)| (key_text(k), v.to_json()))
                        .collect();
                    Value::Object(map)
                }
            }
            PhpValue::Object { class, properties } => {
                let mut map = Map::new();
                map.insert("@class".into(), Value::String(class.clone()));
                for p in properties {
                    map.insert(p.display_name(), p.value.to_json());
                }
                Value::Object(map)
            }
            PhpValue::Custom { class, payload } => {
                json!({"@class": class, "@serialized": bytes_json(payload)})
            }
            PhpValue::Recursion(n) => json!({ "@recursion": n }),
        }
    }

    /// The value as indented text, like PHP's `print_r()`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out, 0);
        out
    }

    fn write_text(&self, out: &mut String, indent: usize) {
        let pad = "    ".repeat(indent);
        match self {
            PhpValue::Null => out.push_str("NULL"),
            PhpValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            PhpValue::Int(i) => {
                let _ = write!(out, "{i}");
            }
            PhpValue::Float(f) => out.push_str(&php_float(*f)),
            PhpValue::Str(s) => out.push_str(&bytes_text(s)),
            PhpValue::Array(entries) => {
                out.push_str("Array\n");
                let _ = writeln!(out, "{pad}(");
                for (k, v) in entries {
                    let _ = write!(out, "{pad}    [{}] => ", key_text(k));
                    v.write_text(out, indent + 2);
                    out.push('\n');
                }
                let _ = write!(out, "{pad})");
            }
            PhpValue::Object { class, properties } => {
                let _ = writeln!(out, "{class} Object");
                let _ = writeln!(out, "{pad}(");
                for p in properties {
                    let _ = write!(out, "{pad}    [{}] => ", p.display_name());
                    p.value.write_text(out, indent + 2);
                    out.push('\n');
                }
                let _ = write!(out, "{pad})");
            }
            PhpValue::Custom { class, payload } => {
                let _ = write!(out, "{class} (custom serialized: {})", bytes_text(payload));
            }
            PhpValue::Recursion(_) => out.push_str("*RECURSION*"),
        }
    }
}

impl Property {
    fn display_name(&self) -> String {
        match self.visibility {
            Visibility::Public => self.name.clone(),
            Visibility::Protected => format!("*{}", self.name),
            Visibility::Private => format!("-{}", self.name),
        }
    }
}

impl SessionVars {
    /// The session as a JSON object of its variables.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.vars
                .iter()
                .map(|(name, value)| (name.clone(), value.to_json()))
                .collect(),
        )
    }

    /// The session as text, one `$_SESSION` entry after another.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (name, value) in &self.vars {
            let _ = writeln!(out, "[{name}] => {}", value.to_text());
        }
        out
    }
}

/// PHP's spelling of a float (`serialize()` writes INF, -INF and NAN).
fn php_float(f: f64) -> String {
    if f.is_nan() {
        "NAN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "INF" } else { "-INF" }.into()
    } else {
        format!("{f:?}")
    }
}

fn bytes_json(bytes: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(bytes) {
        Ok(s) => serde_json::Value::String(s.to_owned()),
        Err(_) => serde_json::json!({ "@binary": hex(bytes) }),
    }
}

fn bytes_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => format!("(binary, {} bytes: {})", bytes.len(), hex(bytes)),
    }
}

/// Bytes as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests;
