//! Ids of feedback already routed by earlier runs (loaded once per run) and the batches of newly
//! routed ids handed to the run log writer.
//!
//! The loaded set is one byte buffer plus sorted (start, len) pairs: a million ids cost ~20 MB
//! instead of a million small allocations, and lookups are a binary search.

/// Sorted set of ids, built from the newline-separated text the store returns.
#[derive(Debug, Default)]
pub struct SeenIds {
    buf: Vec<u8>,
    spans: Vec<(u32, u32)>,
}

impl SeenIds {
    /// `joined`: ids separated by `\n` (ids never contain a newline, see `IdBatcher::push`).
    pub fn from_joined(joined: String) -> Self {
        let buf = joined.into_bytes();
        let mut spans = Vec::new();
        let mut start = 0usize;
        for (i, &b) in buf.iter().enumerate() {
            if b == b'\n' {
                if i > start {
                    spans.push((start as u32, (i - start) as u32));
                }
                start = i + 1;
            }
        }
        if buf.len() > start {
            spans.push((start as u32, (buf.len() - start) as u32));
        }
        let mut s = SeenIds { buf, spans };
        let mut spans = std::mem::take(&mut s.spans);
        spans.sort_unstable_by(|a, b| s.get(*a).cmp(s.get(*b)));
        s.spans = spans;
        s
    }

    fn get(&self, (start, len): (u32, u32)) -> &[u8] {
        &self.buf[start as usize..(start + len) as usize]
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn contains(&self, id: &[u8]) -> bool {
        self.spans.binary_search_by(|&sp| self.get(sp).cmp(id)).is_ok()
    }
}

/// A batch of routed ids as a JSON array (the store inserts it with `json_each`, one statement
/// per batch instead of one per id).
#[derive(Debug, Clone)]
pub struct IdBatch {
    pub json: String,
    pub count: usize,
}

pub type IdSink = Box<dyn FnMut(IdBatch) + Send>;

pub struct IdBatcher {
    json: String,
    count: usize,
    batch: usize,
    sink: Option<IdSink>,
}

impl IdBatcher {
    pub fn new(batch: usize, sink: Option<IdSink>) -> Self {
        IdBatcher { json: String::from("["), count: 0, batch: batch.max(1), sink }
    }

    /// Queues `id`; false if it cannot be remembered (not UTF-8, or contains a newline or
    /// control character), in which case the record may be routed again by a later run.
    pub fn push(&mut self, id: &[u8]) -> bool {
        let Ok(s) = std::str::from_utf8(id) else { return false };
        if s.chars().any(char::is_control) {
            return false;
        }
        if self.sink.is_none() {
            return true;
        }
        if self.count > 0 {
            self.json.push(',');
        }
        // Control characters are refused above, so only quotes and backslashes need escaping:
        // the common id is copied as is, without a string allocated per id.
        if s.contains(['"', '\\']) {
            self.json.push_str(&serde_json::to_string(s).unwrap_or_default());
        } else {
            self.json.push('"');
            self.json.push_str(s);
            self.json.push('"');
        }
        self.count += 1;
        if self.count >= self.batch {
            self.flush();
        }
        true
    }

    pub fn flush(&mut self) {
        if self.count == 0 {
            return;
        }
        self.json.push(']');
        let json = std::mem::replace(&mut self.json, String::from("["));
        let batch = IdBatch { json, count: std::mem::take(&mut self.count) };
        if let Some(sink) = self.sink.as_mut() {
            sink(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn lookup_in_joined_ids() {
        let s = SeenIds::from_joined("b\na\n\nFB-3\nc".into());
        assert_eq!(s.len(), 4);
        for id in ["a", "b", "c", "FB-3"] {
            assert!(s.contains(id.as_bytes()), "{id}");
        }
        assert!(!s.contains(b"FB-"));
        assert!(SeenIds::from_joined(String::new()).is_empty());
    }

    #[test]
    fn batches_are_json_arrays() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let mut b = IdBatcher::new(2, Some(Box::new(move |batch| g.lock().unwrap().push(batch))));
        assert!(b.push(b"a"));
        assert!(b.push(b"q\"uote"));
        assert!(b.push("back\\slash é".as_bytes()));
        assert!(!b.push(b"new\nline"));
        assert!(b.push(b"c"));
        b.flush();
        let got = got.lock().unwrap();
        let arrays: Vec<Vec<String>> = got.iter().map(|b| serde_json::from_str(&b.json).unwrap()).collect();
        assert_eq!(arrays, vec![vec!["a".to_string(), "q\"uote".into()], vec!["back\\slash é".into(), "c".into()]]);
    }
}
