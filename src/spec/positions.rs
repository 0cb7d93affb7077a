//! Where each key and value of a YAML document stands, by path (`steps[2].send_email.to`).
//!
//! serde_yaml gives positions only for its own errors; the validation pass runs on plain
//! structs, so it looks positions up here to point at the line the user has to change.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A repeated key: its path, where it repeats and where it was first, as (line, column).
pub type Duplicate = (String, (usize, usize), (usize, usize));

#[derive(Debug, Default, Clone)]
pub struct Positions {
    keys: HashMap<String, (usize, usize)>,
    values: HashMap<String, (usize, usize)>,
    /// Keys given twice in one mapping: (path, where it repeats, where it was first).
    /// serde rejects a repeated field of a struct but keeps the last entry of a map (`vars:`).
    pub duplicates: Vec<Duplicate>,
}

impl Positions {
    /// Index `source`; a document that does not parse yields an empty index (serde reports that error).
    pub fn index(source: &str) -> Positions {
        let mut b = Builder::default();
        let mut parser = Parser::new_from_str(source);
        let _ = parser.load(&mut b, false);
        b.out
    }

    /// Position of the key at `path`, falling back to its value, then to the nearest parent.
    pub fn key(&self, path: &str) -> (usize, usize) {
        self.lookup(path, true)
    }

    /// Position of the value at `path`, falling back to its key, then to the nearest parent.
    pub fn value(&self, path: &str) -> (usize, usize) {
        self.lookup(path, false)
    }

    fn lookup(&self, path: &str, key_first: bool) -> (usize, usize) {
        let mut p = path.to_string();
        loop {
            let (a, b) = if key_first { (&self.keys, &self.values) } else { (&self.values, &self.keys) };
            if let Some(pos) = a.get(&p).or_else(|| b.get(&p)) {
                return *pos;
            }
            match parent(&p) {
                Some(up) => p = up,
                None => return (1, 1),
            }
        }
    }
}

fn parent(path: &str) -> Option<String> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(path[..cut].to_string())
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

enum Frame {
    Map { path: String, pending_key: Option<String> },
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    out: Positions,
}

impl Builder {
    /// The path of the node that starts now, or None when this scalar is a mapping key.
    fn node_path(&mut self, scalar: Option<&str>, mark: Marker, is_map: bool) -> Option<String> {
        let pos = (mark.line(), mark.col() + 1);
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                // A block mapping's start mark lies after its first key; its first key marks it better.
                if !is_map {
                    self.out.values.insert(p.clone(), pos);
                }
                Some(p)
            }
            Some(Frame::Map { path, pending_key }) => match pending_key.take() {
                Some(k) => {
                    let p = join(path, &k);
                    if !is_map {
                        self.out.values.insert(p.clone(), pos);
                    }
                    Some(p)
                }
                None => {
                    let k = scalar.unwrap_or("?").to_string();
                    let p = join(path, &k);
                    // A non-scalar key has no name to compare; serde reports it.
                    if let (Some(_), Some(first)) = (scalar, self.out.keys.get(&p)) {
                        self.out.duplicates.push((p.clone(), pos, *first));
                    }
                    self.out.keys.entry(p).or_insert(pos);
                    self.out.values.entry(path.clone()).or_insert(pos);
                    *pending_key = Some(k);
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(s, ..) => {
                self.node_path(Some(&s), mark, false);
            }
            Event::Alias(_) => {
                self.node_path(Some("*"), mark, false);
            }
            Event::MappingStart(..) => {
                let path = self.node_path(None, mark, true).unwrap_or_default();
                self.stack.push(Frame::Map { path, pending_key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.node_path(None, mark, false).unwrap_or_default();
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys_and_values() {
        let src = "name: x\nsteps:\n  - id: a\n    read_csv: data/a.csv\n  - id: b\n    for_each: a\n";
        let p = Positions::index(src);
        assert_eq!(p.key("name"), (1, 1));
        assert_eq!(p.value("name"), (1, 7));
        assert_eq!(p.value("steps[1].for_each"), (6, 15));
        assert_eq!(p.key("steps[1].for_each"), (6, 5));
        assert_eq!(p.value("steps[0]"), (3, 5));
        // Unknown paths fall back to the nearest parent.
        assert_eq!(p.key("steps[1].nope"), (5, 5));
    }

    #[test]
    fn repeated_keys_are_found_where_they_repeat() {
        let p = Positions::index("name: x\nvars:\n  a: 1\n  a: 2\nsteps:\n  - id: a\n    id: b\n");
        assert_eq!(p.duplicates, [("vars.a".to_string(), (4, 3), (3, 3)), ("steps[0].id".to_string(), (7, 5), (6, 5))]);
    }

    #[test]
    fn flow_mappings_are_indexed_too() {
        let p = Positions::index("retry: { attempts: 3, backoff: 30s }\n");
        assert_eq!(p.value("retry.backoff"), (1, 32));
    }
}
