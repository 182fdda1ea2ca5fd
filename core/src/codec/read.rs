//! Reading untrusted `serialize()` data into a tree: the tokens `phpserz` yields become
//! [`Node`]s (containers hold their children by id, a reference is the id it names), every
//! count checked against the data and nesting bounded; [`Builder`] then expands the
//! references into [`PhpValue`]s within the expansion limit.

use phpserz::{PhpParser, PhpReferenceKind, PhpToken, PhpVisibility};

use super::*;

/// An index into [`Reader::nodes`].
pub(super) type NodeId = usize;

/// A value as written, before references are expanded: containers hold their children by
/// id, and a reference is the id of the value it names, so the data is read into as many
/// nodes as it has values however often they are referenced.
pub(super) enum Node {
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
pub(super) struct Reader<'a> {
    data: &'a [u8],
    pub(super) offset: usize,
    format: &'static str,
    /// Every value read, with the byte offset where it starts.
    pub(super) nodes: Vec<(usize, Node)>,
    /// Node ids by `unserialize()`'s number minus one; `None` while a value is being read
    /// (a reference to it is a recursion).
    numbered: Vec<Option<NodeId>>,
    /// How many references (`R:`, `r:`) were read: their numbers count every value before
    /// them, so data that has one cannot be cut into parts that stand alone.
    pub(super) references: usize,
    /// How many `C:` objects (`Serializable`) were read: their payloads are opaque here but
    /// may hold references numbered among the values around them.
    pub(super) custom_objects: usize,
    /// Only check the data and find where values end: nothing is kept (no nodes, no copies
    /// of strings), so memory does not grow with the data. For [`super::split`], which needs
    /// only the spans and gives up on any reference.
    skim: bool,
}

impl<'a> Reader<'a> {
    pub(super) fn new(data: &'a [u8], format: &'static str) -> Reader<'a> {
        Reader {
            data,
            offset: 0,
            format,
            nodes: Vec::new(),
            numbered: Vec::new(),
            references: 0,
            custom_objects: 0,
            skim: false,
        }
    }

    /// A reader that only skims (see `skim`): values read return no node.
    pub(super) fn skimming(data: &'a [u8], format: &'static str) -> Reader<'a> {
        Reader {
            skim: true,
            ..Reader::new(data, format)
        }
    }

    /// Reads the `a:N:{` that opens a `php_serialize` session (value number 1), and says N.
    pub(super) fn array_start(&mut self) -> Result<u32, DecodeError> {
        let start = self.offset;
        match self.token()? {
            PhpToken::Array { elements } => {
                self.numbered.push(None);
                Ok(elements)
            }
            _ => Err(self.error(start, "the top level is not an array".into())),
        }
    }

    /// Reads one array key, and where it was written.
    pub(super) fn key_span(&mut self) -> Result<std::ops::Range<usize>, DecodeError> {
        let start = self.offset;
        self.key()?;
        Ok(start..self.offset)
    }

    /// Reads the `}` that closes an array opened at `start`.
    pub(super) fn array_end(&mut self, start: usize) -> Result<(), DecodeError> {
        self.end(start)
    }

    pub(super) fn error(&self, position: usize, reason: String) -> DecodeError {
        DecodeError {
            format: self.format,
            position,
            reason,
        }
    }

    pub(super) fn into_builder(self) -> Builder {
        let limit = expansion_limit(self.data.len());
        Builder {
            nodes: self.nodes,
            format: self.format,
            limit,
            values: 0,
            bytes: 0,
        }
    }

    pub(super) fn expect_end(&self) -> Result<(), DecodeError> {
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
    pub(super) fn value(&mut self, depth: usize) -> Result<NodeId, DecodeError> {
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
                    if !self.skim {
                        entries.push((key, value));
                    }
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
                    if !self.skim {
                        props.push((name, visibility, value));
                    }
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
        if self.skim {
            return self.skim_token(token, start);
        }
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

    /// A value's first token when skimming: counted if it is a reference or a `C:` object,
    /// opened if it has children, and otherwise done (node id 0: nothing is kept).
    fn skim_token(&mut self, token: PhpToken, start: usize) -> Result<Opened, DecodeError> {
        match token {
            PhpToken::Reference { .. } => self.references += 1,
            PhpToken::CustomObject { .. } => self.custom_objects += 1,
            PhpToken::Array { elements } => {
                return Ok(Opened::Array {
                    elements,
                    number: 0,
                })
            }
            PhpToken::Object { properties, .. } => {
                return Ok(Opened::Object {
                    class: String::new(),
                    properties,
                    number: 0,
                })
            }
            PhpToken::End => return Err(self.error(start, "'}' where a value was expected".into())),
            _ => {}
        }
        Ok(Opened::Done(0))
    }

    /// Reads the `}` after a container's children and stores it under its number.
    #[inline(never)]
    fn close(&mut self, start: usize, number: usize, node: Node) -> Result<NodeId, DecodeError> {
        self.end(start)?;
        if self.skim {
            return Ok(0);
        }
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
        self.references += 1;
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
pub(super) struct Builder {
    pub(super) nodes: Vec<(usize, Node)>,
    format: &'static str,
    limit: usize,
    values: usize,
    bytes: usize,
}

impl Builder {
    pub(super) fn error(&self, id: NodeId, reason: String) -> DecodeError {
        DecodeError {
            format: self.format,
            position: self.nodes.get(id).map_or(0, |(at, _)| *at),
            reason,
        }
    }

    #[inline(never)]
    pub(super) fn count_bytes(&mut self, n: usize, id: NodeId) -> Result<(), DecodeError> {
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

    pub(super) fn build(&mut self, id: NodeId, depth: usize) -> Result<PhpValue, DecodeError> {
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
