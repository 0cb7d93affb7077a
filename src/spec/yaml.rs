//! The one YAML parse of a file: serde-saphyr reads it into a `Node` tree that keeps where
//! every value stands. Positions, the duplicate-key check, the typed spec (through
//! `node_de`) and the raw step kinds all come from this tree, so a file is parsed once.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::options::AliasLimits;
use serde_saphyr::{DuplicateKeyPolicy, Spanned};

/// The most YAML events aliases may replay in one file.
pub(crate) const MAX_ALIAS_EVENTS: usize = 10_000;

/// One YAML value and where it starts, as (line, column), both from 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub at: (usize, usize),
    pub value: Value,
    /// A plain scalar read as a number, boolean or null keeps its text, so a string field
    /// given `2024` or `1.10` gets `2024` and `1.10` (as YAML users expect), not a re-spelling.
    pub(crate) text: Option<String>,
    /// Byte range in the source, to recover `text`.
    span: Option<(usize, usize)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// In file order, repeated keys kept (they are reported, not silently dropped).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// An empty value, where a key has no node of its own (e.g. a step kind filled in later).
    pub fn null() -> Node {
        Node { at: (1, 1), value: Value::Null, text: None, span: None }
    }

    /// The value of `key` when this is a mapping (the first one, when it is repeated).
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(m) => m.iter().find(|(k, _)| k.as_key().as_deref() == Some(key)).map(|(_, v)| v),
            _ => None,
        }
    }

    /// This node as a mapping key: scalars by their text; a sequence or mapping is no name.
    pub fn as_key(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Seq(_) | Value::Map(_) => None,
            _ => Some(self.scalar_text()),
        }
    }

    /// A scalar's text as written (a number's own spelling when it is known).
    pub(crate) fn scalar_text(&self) -> String {
        if let Some(t) = &self.text {
            return t.clone();
        }
        match &self.value {
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::UInt(u) => u.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Str(s) => s.clone(),
            Value::Seq(_) | Value::Map(_) => String::new(),
        }
    }

    fn fill_text(&mut self, source: &str) {
        match &mut self.value {
            Value::Seq(items) => items.iter_mut().for_each(|n| n.fill_text(source)),
            Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
                k.fill_text(source);
                v.fill_text(source);
            }),
            Value::Str(_) => {}
            _ => {
                self.text = self.span.and_then(|(start, len)| source.get(start..start + len)).map(str::to_string);
            }
        }
    }
}

/// A YAML syntax error, or input refused before it became a tree.
#[derive(Debug)]
pub struct SyntaxError(pub serde_saphyr::Error);

/// Parse `source` (a byte-order mark already removed) into one tree. Repeated keys are kept
/// in the tree so the caller can report each with both lines; alias expansion is bounded by
/// serde-saphyr's default budget, so a "billion laughs" file is refused, not expanded.
pub fn parse(source: &str) -> Result<Node, SyntaxError> {
    // A workflow is a page or two of YAML: a few thousand values copied by aliases is already
    // far more than one needs, and stops a small file from expanding to millions.
    let mut aliases = AliasLimits::default();
    aliases.max_total_replayed_events = MAX_ALIAS_EVENTS;
    let options = serde_saphyr::options! { duplicate_keys: DuplicateKeyPolicy::PassThrough, alias_limits: aliases };
    let mut root: Node = serde_saphyr::from_str_with_options(source, options).map_err(SyntaxError)?;
    root.fill_text(source);
    Ok(root)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<Value>::deserialize(d)?;
        let loc = s.referenced;
        let span = loc.span();
        let span = match (span.byte_offset(), span.byte_len()) {
            (Some(o), Some(l)) => Some((o as usize, l as usize)),
            _ => None,
        };
        Ok(Node { at: (loc.line() as usize, loc.column() as usize), value: s.value, text: None, span })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(Value::UInt(u))
    }
    fn visit_i128<E: de::Error>(self, i: i128) -> Result<Value, E> {
        i64::try_from(i).map(Value::Int).map_err(|_| E::custom(format!("the number {i} is too large")))
    }
    fn visit_u128<E: de::Error>(self, u: u128) -> Result<Value, E> {
        u64::try_from(u).map(Value::UInt).map_err(|_| E::custom(format!("the number {u} is too large")))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::Str(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::Str(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            items.push(n);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<Node, Node>()? {
            entries.push((k, v));
        }
        Ok(Value::Map(entries))
    }
}
