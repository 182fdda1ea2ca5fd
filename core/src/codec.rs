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

use phpserz::{PhpParser, PhpReferenceKind, PhpToken, PhpVisibility};

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

/// An index into [`Reader::nodes`].
type NodeId = usize;

/// A value as written, before references are expanded: containers hold their children by
/// id, and a reference is the id of the value it names, so the data is read into as many
/// nodes as it has values however often they are referenced.
enum Node {
    /// A value without children (scalars, strings, `C:` objects, recursion markers).
    Leaf(PhpValue),
    Array(Vec<(PhpKey, NodeId)>),
    Object {
        class: String,
        properties: Vec<(String, Visibility, NodeId)>,
    },
}

/// What [`Reader::open`] read: a whole value, or a container whose children follow.
enum Opened {
    Done(NodeId),
    Array {
        elements: u32,
        number: usize,
    },
    Object {
        class: String,
        properties: u32,
        number: usize,
    },
}

/// Reads values one at a time from an offset, numbering them as `unserialize()` does so
/// that references (`R:n;`, `r:n;`) can be resolved.
///
/// `unserialize()` keeps a reference as a reference: `R:` makes both places one PHP
/// reference to a single zval and `r:` hands out the same object handle, so nothing is
/// copied and its memory stays proportional to the input. [`PhpValue`] is an owned tree,
/// so references are shared while reading (a node id, never a copy) and copied only when
/// the tree is built, under a budget ([`Builder`]): a crafted kilobyte whose arrays each
/// reference the previous one twice would otherwise double at every level.
struct Reader<'a> {
    data: &'a [u8],
    offset: usize,
    format: &'static str,
    /// Every value read, with the byte offset where it starts.
    nodes: Vec<(usize, Node)>,
    /// Node ids by `unserialize()`'s number minus one; `None` while a value is being read
    /// (a reference to it is a recursion).
    numbered: Vec<Option<NodeId>>,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8], format: &'static str) -> Reader<'a> {
        Reader {
            data,
            offset: 0,
            format,
            nodes: Vec::new(),
            numbered: Vec::new(),
        }
    }

    fn error(&self, position: usize, reason: String) -> DecodeError {
        DecodeError {
            format: self.format,
            position,
            reason,
        }
    }

    fn into_builder(self) -> Builder {
        let limit = expansion_limit(self.data.len());
        Builder {
            nodes: self.nodes,
            format: self.format,
            limit,
            values: 0,
            bytes: 0,
        }
    }

    fn expect_end(&self) -> Result<(), DecodeError> {
        if self.offset == self.data.len() {
            Ok(())
        } else {
            Err(self.error(self.offset, "data after the end of the value".into()))
        }
    }

    /// Reads the next token from the current offset.
    fn token(&mut self) -> Result<PhpToken<'a>, DecodeError> {
        let rest = self.data.get(self.offset..).unwrap_or_default();
        let mut parser = PhpParser::new(rest);
        let start = self.offset;
        let token = parser.read_token().map_err(|e| {
            let at = start + e.position().unwrap_or(rest.len());
            self.error(at, describe(e.kind()))
        })?;
        self.offset = start + parser.position();
        Ok(token)
    }

    fn push(&mut self, start: usize, node: Node) -> NodeId {
        self.nodes.push((start, node));
        self.nodes.len() - 1
    }

    /// Reads one value (numbered, unless it is an `R:` alias, as `unserialize()` does).
    ///
    /// This is the one recursive step, kept small: everything but the loops over children
    /// is in helpers that are never inlined, so that a level costs a small frame even in a
    /// debug build (it was 4 KB, and [`MAX_DEPTH`] levels of that overflowed a 2 MB thread
    /// stack before the depth bound was reached).
    fn value(&mut self, depth: usize) -> Result<NodeId, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.too_deep());
        }
        let start = self.offset;
        match self.open()? {
            Opened::Done(id) => Ok(id),
            Opened::Array { elements, number } => {
                let mut entries = Vec::new();
                for _ in 0..elements {
                    let key = self.key()?;
                    let value = self.value(depth + 1)?;
                    entries.push((key, value));
                }
                self.close(start, number, Node::Array(entries))
            }
            Opened::Object {
                class,
                properties,
                number,
            } => {
                let mut props = Vec::new();
                for _ in 0..properties {
                    let (name, visibility) = self.property_name()?;
                    let value = self.value(depth + 1)?;
                    props.push((name, visibility, value));
                }
                let node = Node::Object {
                    class,
                    properties: props,
                };
                self.close(start, number, node)
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn too_deep(&self) -> DecodeError {
        self.error(
            self.offset,
            format!("nested deeper than {MAX_DEPTH} levels"),
        )
    }

    /// Reads a value's first token: the whole value unless it has children, else what
    /// [`Reader::value`] needs to read them.
    #[inline(never)]
    fn open(&mut self) -> Result<Opened, DecodeError> {
        let start = self.offset;
        let token = self.token()?;
        if let PhpToken::Reference {
            id,
            kind: PhpReferenceKind::Alias,
        } = token
        {
            return self.resolve(id, start).map(Opened::Done);
        }
        let number = self.numbered.len();
        self.numbered.push(None);
        let value = match token {
            PhpToken::Null => PhpValue::Null,
            PhpToken::Boolean(b) => PhpValue::Bool(b),
            PhpToken::Integer(i) => PhpValue::Int(i),
            PhpToken::Float(f) => PhpValue::Float(f),
            PhpToken::String(s) => PhpValue::Str(s.as_bytes().to_vec()),
            PhpToken::CustomObject { class, payload } => PhpValue::Custom {
                class: String::from_utf8_lossy(class.as_bytes()).into_owned(),
                payload: payload.as_bytes().to_vec(),
            },
            PhpToken::Array { elements } => return Ok(Opened::Array { elements, number }),
            PhpToken::Object { class, properties } => {
                return Ok(Opened::Object {
                    class: String::from_utf8_lossy(class.as_bytes()).into_owned(),
                    properties,
                    number,
                })
            }
            PhpToken::Reference { id, .. } => {
                let id = self.resolve(id, start)?;
                self.number(number, id);
                return Ok(Opened::Done(id));
            }
            PhpToken::End => return Err(self.error(start, "'}' where a value was expected".into())),
        };
        let id = self.push(start, Node::Leaf(value));
        self.number(number, id);
        Ok(Opened::Done(id))
    }

    /// Reads the `}` after a container's children and stores it under its number.
    #[inline(never)]
    fn close(&mut self, start: usize, number: usize, node: Node) -> Result<NodeId, DecodeError> {
        self.end(start)?;
        let id = self.push(start, node);
        self.number(number, id);
        Ok(id)
    }

    fn number(&mut self, number: usize, id: NodeId) {
        if let Some(slot) = self.numbered.get_mut(number) {
            *slot = Some(id);
        }
    }

    /// A property's name and visibility (PHP marks protected and private in the name).
    #[inline(never)]
    fn property_name(&mut self) -> Result<(String, Visibility), DecodeError> {
        Ok(match self.key()? {
            PhpKey::Int(i) => (i.to_string(), Visibility::Public),
            PhpKey::Str(raw) => {
                let property = phpserz::PhpBstr::new(&raw).to_property();
                let visibility = match property.visibility() {
                    PhpVisibility::Public => Visibility::Public,
                    PhpVisibility::Protected => Visibility::Protected,
                    PhpVisibility::Private => Visibility::Private,
                };
                (
                    String::from_utf8_lossy(property.as_bytes()).into_owned(),
                    visibility,
                )
            }
        })
    }

    /// An array key or property name: an integer or a string, never numbered.
    #[inline(never)]
    fn key(&mut self) -> Result<PhpKey, DecodeError> {
        let start = self.offset;
        match self.token()? {
            PhpToken::Integer(i) => Ok(PhpKey::Int(i)),
            PhpToken::String(s) => Ok(PhpKey::Str(s.as_bytes().to_vec())),
            _ => Err(self.error(
                start,
                "an array key that is neither an integer nor a string".into(),
            )),
        }
    }

    fn end(&mut self, start: usize) -> Result<(), DecodeError> {
        let at = self.offset;
        match self.token()? {
            PhpToken::End => Ok(()),
            _ => Err(self.error(
                at,
                format!("more elements than the count given at byte {start}"),
            )),
        }
    }

    /// The value a reference points to: the node it names (shared, not copied), or a
    /// recursion marker if it encloses the reference.
    fn resolve(&mut self, id: i64, at: usize) -> Result<NodeId, DecodeError> {
        let slot = usize::try_from(id)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| self.numbered.get(i).copied());
        match slot {
            Some(Some(node)) => Ok(node),
            Some(None) => Ok(self.push(at, Node::Leaf(PhpValue::Recursion(id)))),
            None => Err(self.error(
                at,
                format!("a reference to value {id}, which does not exist"),
            )),
        }
    }
}

/// Builds the owned tree from the nodes read, copying a node once per place that
/// references it, and refusing once the tree would pass [`expansion_limit`] values or
/// string bytes, or [`MAX_DEPTH`] levels. A node is only ever built from nodes read before
/// it was complete, so the nodes form no cycle and building ends.
struct Builder {
    nodes: Vec<(usize, Node)>,
    format: &'static str,
    limit: usize,
    values: usize,
    bytes: usize,
}

impl Builder {
    fn error(&self, id: NodeId, reason: String) -> DecodeError {
        DecodeError {
            format: self.format,
            position: self.nodes.get(id).map_or(0, |(at, _)| *at),
            reason,
        }
    }

    #[inline(never)]
    fn count_bytes(&mut self, n: usize, id: NodeId) -> Result<(), DecodeError> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > self.limit {
            return Err(self.error(
                id,
                format!(
                    "session data expands past {} bytes of strings through references (a crafted blob?)",
                    self.limit
                ),
            ));
        }
        Ok(())
    }

    /// A node's contents, children by id, so that `self` is free to count while building
    /// them (and the recursive [`Builder::build`] keeps a small frame).
    #[inline(never)]
    fn shape(&self, id: NodeId) -> Result<Shape, DecodeError> {
        match self.nodes.get(id) {
            Some((_, Node::Leaf(value))) => Ok(Shape::Leaf(value.clone(), leaf_len(value))),
            Some((_, Node::Array(entries))) => Ok(Shape::Array(entries.clone())),
            Some((_, Node::Object { class, properties })) => {
                Ok(Shape::Object(class.clone(), properties.clone()))
            }
            None => Err(self.error(id, "a value that was never read".into())),
        }
    }

    #[cold]
    #[inline(never)]
    fn limit_error(&self, id: NodeId) -> DecodeError {
        self.error(
            id,
            format!(
                "session data expands past {} values through references (a crafted blob?)",
                self.limit
            ),
        )
    }

    #[cold]
    #[inline(never)]
    fn depth_error(&self, id: NodeId) -> DecodeError {
        self.error(
            id,
            format!("nested deeper than {MAX_DEPTH} levels (through references)"),
        )
    }

    fn build(&mut self, id: NodeId, depth: usize) -> Result<PhpValue, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.depth_error(id));
        }
        self.values += 1;
        if self.values > self.limit {
            return Err(self.limit_error(id));
        }
        let shape = self.shape(id)?;
        match shape {
            Shape::Leaf(value, len) => {
                self.count_bytes(len, id)?;
                Ok(value)
            }
            Shape::Array(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                for (key, child) in entries {
                    self.count_bytes(key_len(&key), id)?;
                    out.push((key, self.build(child, depth + 1)?));
                }
                Ok(PhpValue::Array(out))
            }
            Shape::Object(class, properties) => {
                self.count_bytes(class.len(), id)?;
                let mut props = Vec::with_capacity(properties.len());
                for (name, visibility, child) in properties {
                    self.count_bytes(name.len(), id)?;
                    props.push(Property {
                        name,
                        visibility,
                        value: self.build(child, depth + 1)?,
                    });
                }
                Ok(PhpValue::Object {
                    class,
                    properties: props,
                })
            }
        }
    }
}

/// A node's contents as [`Builder::build`] takes them.
enum Shape {
    Leaf(PhpValue, usize),
    Array(Vec<(PhpKey, NodeId)>),
    Object(String, Vec<(String, Visibility, NodeId)>),
}

/// The bytes a leaf holds on the heap.
fn leaf_len(value: &PhpValue) -> usize {
    match value {
        PhpValue::Str(s) => s.len(),
        PhpValue::Custom { class, payload } => class.len() + payload.len(),
        _ => 0,
    }
}

fn describe(kind: &phpserz::ErrorKind) -> String {
    match kind {
        phpserz::ErrorKind::Eof => "the data ends in the middle of a value".into(),
        phpserz::ErrorKind::UnexpectedByte { found, .. } => {
            format!("unexpected byte {:?}", char::from(*found))
        }
        phpserz::ErrorKind::MismatchByte {
            expected, found, ..
        } => format!(
            "expected {:?}, found {:?}",
            char::from(*expected),
            char::from(*found)
        ),
        other => format!("{other:?}"),
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
mod tests {
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
}
