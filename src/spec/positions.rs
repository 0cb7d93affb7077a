//! Where each key and value of a YAML document stands, by path (`steps[2].send_email.to`).
//!
//! The validation pass runs on plain structs, so it looks positions up here to point at the
//! line the user has to change. Built from the one parsed tree (`yaml::Node`).

use std::collections::HashMap;

use super::yaml::{Node, Value};

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
    /// Index `source`; a document that does not parse yields an empty index (the parse reports that error).
    pub fn index(source: &str) -> Positions {
        super::yaml::parse(source).map(|n| Positions::of(&n)).unwrap_or_default()
    }

    /// Index the tree of a parsed document.
    pub fn of(root: &Node) -> Positions {
        let mut out = Positions::default();
        out.walk(String::new(), root);
        out
    }

    fn walk(&mut self, path: String, node: &Node) {
        match &node.value {
            Value::Map(entries) => {
                // A block mapping starts at its first key; an empty one where it is written.
                let first = entries.first().map_or(node.at, |(k, _)| k.at);
                self.values.entry(path.clone()).or_insert(first);
                for (k, v) in entries {
                    // A key that is a sequence or mapping has no name to compare; serde reports it.
                    let name = k.as_key();
                    let p = join(&path, name.as_deref().unwrap_or("?"));
                    if let (Some(_), Some(first)) = (&name, self.keys.get(&p)) {
                        self.duplicates.push((p.clone(), k.at, *first));
                    }
                    self.keys.entry(p.clone()).or_insert(k.at);
                    self.walk(p, v);
                }
            }
            Value::Seq(items) => {
                self.values.entry(path.clone()).or_insert(node.at);
                for (i, item) in items.iter().enumerate() {
                    self.walk(format!("{path}[{i}]"), item);
                }
            }
            _ => {
                self.values.entry(path).or_insert(node.at);
            }
        }
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
