//! YAML as a tree of nodes that remember where they came from.
//!
//! serde-saphyr parses (with its alias-bomb budget on) into this generic
//! tree; the loader then walks it by hand so that it can report *every*
//! problem with its line and column rather than stopping at the first.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// Where a node is: 1-based line and column, and which source it came from
/// (the policy file, or a scenario preset merged into it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
    pub source: Source,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Source {
    #[default]
    File,
    Preset,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

impl Node {
    /// What kind of value this is, for messages ("expected a number, got a list").
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "nothing",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    pub fn mark(&mut self, source: Source) {
        self.pos.source = source;
        match &mut self.value {
            Value::Seq(items) => items.iter_mut().for_each(|n| n.mark(source)),
            Value::Map(entries) => entries.iter_mut().for_each(|(k, n)| {
                k.pos.source = source;
                n.mark(source);
            }),
            _ => {}
        }
    }
}

/// A parse error of the YAML itself.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntaxError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

pub fn parse(source: &str) -> Result<Node, SyntaxError> {
    let parsed: Result<Spanned<Raw>, _> = serde_saphyr::from_str(source);
    match parsed {
        Ok(spanned) => Ok(lower(spanned)),
        Err(e) => {
            let (line, column) = e
                .location()
                .map_or((1, 1), |l| (l.line() as usize, l.column() as usize));
            let message = e.to_string();
            // The crate appends its own location; the diagnostic shows ours.
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_string();
            Err(SyntaxError {
                message,
                line: line.max(1),
                column: column.max(1),
            })
        }
    }
}

fn pos(s: &serde_saphyr::Location) -> Pos {
    Pos {
        line: s.line() as usize,
        column: s.column() as usize,
        source: Source::File,
    }
}

fn lower(s: Spanned<Raw>) -> Node {
    let p = pos(&s.referenced);
    let value = match s.value {
        Raw::Null => Value::Null,
        Raw::Bool(b) => Value::Bool(b),
        Raw::Int(i) => Value::Int(i),
        Raw::Float(f) => Value::Float(f),
        Raw::Str(t) => Value::Str(t),
        Raw::Seq(items) => Value::Seq(items.into_iter().map(lower).collect()),
        Raw::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let kp = pos(&k.referenced);
                    let name = match k.value {
                        Raw::Str(s) => s,
                        Raw::Int(i) => i.to_string(),
                        Raw::Float(f) => f.to_string(),
                        Raw::Bool(b) => b.to_string(),
                        Raw::Null => "null".to_string(),
                        Raw::Seq(_) | Raw::Map(_) => "<complex key>".to_string(),
                    };
                    (Key { name, pos: kp }, lower(v))
                })
                .collect(),
        ),
    };
    Node { value, pos: p }
}

/// What serde-saphyr gives us: any YAML value, children with their spans.
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(i64::try_from(v).map_or(Raw::Float(v as f64), Raw::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Raw>>()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<Spanned<Raw>, Spanned<Raw>>()? {
            entries.push((k, v));
        }
        Ok(Raw::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_know_their_line_and_column() {
        let n = parse("service: x\ncriteria:\n  a: {signal: b, max_ratio: 1.2}\n").unwrap();
        let Value::Map(top) = &n.value else { panic!() };
        assert_eq!(top[1].0.name, "criteria");
        assert_eq!((top[1].0.pos.line, top[1].0.pos.column), (2, 1));
        let Value::Map(criteria) = &top[1].1.value else {
            panic!()
        };
        let Value::Map(a) = &criteria[0].1.value else {
            panic!()
        };
        assert_eq!(a[1].0.name, "max_ratio");
        assert_eq!((a[1].1.pos.line, a[1].1.pos.column), (3, 29));
        assert_eq!(a[1].1.value, Value::Float(1.2));
    }

    #[test]
    fn broken_yaml_is_a_syntax_error_with_a_position() {
        let e = parse("service: [x\n").unwrap_err();
        assert!(e.line >= 1, "{e:?}");
    }
}
