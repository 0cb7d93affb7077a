//! Counts of byte-string keys (channels, product areas, keywords). Feedback has a handful of
//! distinct channels and areas, so a linear scan of a short vector beats hashing every row;
//! past `LINEAR` keys it switches to a hash map so hostile data cannot make it quadratic.
//!
//! Hostile data cannot make it big either: a counter keeps at most `MAX_KEYS` keys of at most
//! `MAX_KEY_BYTES` bytes, and counts the records of keys first seen after that as `other` (300,000
//! distinct channels took 1.25 GB and a 47.7 MB digest). Below `MAX_KEYS` distinct keys, counts
//! are exact and merge exactly.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::bucket::{num, round1};

const LINEAR: usize = 24;
/// Distinct keys counted one by one, per counter.
pub const MAX_KEYS: usize = 1000;
/// Longer keys are cut (at a character boundary): a label, not a record.
pub const MAX_KEY_BYTES: usize = 100;

#[derive(Debug, Default, Clone)]
pub struct Counter {
    /// Each key with its `fingerprint`: bytes are compared only when the fingerprints agree
    /// (a byte comparison per key showed as `memcmp` in the routing profile).
    small: Vec<(u64, Box<[u8]>, u64)>,
    big: HashMap<Box<[u8]>, u64>,
    /// Counts of keys that found the counter full.
    other: u64,
}

/// `key` cut to `MAX_KEY_BYTES`, not inside a UTF-8 character.
fn short(key: &[u8]) -> &[u8] {
    if key.len() <= MAX_KEY_BYTES {
        return key;
    }
    let mut cut = MAX_KEY_BYTES;
    while cut > 0 && key[cut] & 0xC0 == 0x80 {
        cut -= 1;
    }
    &key[..cut]
}

/// The length and the first 7 bytes of `key` in one word: keys that differ in either are told
/// apart without comparing bytes.
fn fingerprint(key: &[u8]) -> u64 {
    let mut head = [0u8; 8];
    let n = key.len().min(7);
    head[..n].copy_from_slice(&key[..n]);
    head[7] = key.len() as u8;
    u64::from_le_bytes(head)
}

impl Counter {
    pub fn add(&mut self, key: &[u8], n: u64) {
        let key = short(key);
        if self.small.len() + self.big.len() >= MAX_KEYS && !self.contains(key) {
            self.other += n;
            return;
        }
        if self.big.is_empty() {
            let fp = fingerprint(key);
            if let Some(e) = self.small.iter_mut().find(|(f, k, _)| *f == fp && **k == *key) {
                e.2 += n;
                return;
            }
            if self.small.len() < LINEAR {
                self.small.push((fp, key.into(), n));
                return;
            }
            self.big.extend(self.small.drain(..).map(|(_, k, n)| (k, n)));
        }
        match self.big.get_mut(key) {
            Some(c) => *c += n,
            None => {
                self.big.insert(key.into(), n);
            }
        }
    }

    fn contains(&self, key: &[u8]) -> bool {
        if self.big.is_empty() {
            let fp = fingerprint(key);
            self.small.iter().any(|(f, k, _)| *f == fp && **k == *key)
        } else {
            self.big.contains_key(key)
        }
    }

    pub fn merge(&mut self, other: &Counter) {
        for (k, n) in other.iter() {
            self.add(k, n);
        }
        self.other += other.other;
    }

    /// The `top` largest keys, and the sum of all the others (those cut off and those that
    /// found the counter full).
    pub fn top(&self, top: usize) -> (Vec<(String, u64)>, u64) {
        let mut v = self.sorted();
        let rest = v.iter().skip(top).map(|e| e.1).sum::<u64>() + self.other;
        v.truncate(top);
        (v, rest)
    }

    /// `[{name, count, pct}]` of the `top` largest keys, largest first, then
    /// `{name: "other", count, pct, other: true}` for the rest when there is any.
    pub fn shares(&self, top: usize, total: u64) -> Vec<Value> {
        let pct = |n: u64| num(round1(100.0 * n as f64 / total.max(1) as f64));
        let (v, rest) = self.top(top);
        let mut out: Vec<Value> = v.into_iter().map(|(name, n)| json!({"name": name, "count": n, "pct": pct(n)})).collect();
        if rest > 0 {
            out.push(json!({"name": "other", "count": rest, "pct": pct(rest), "other": true}));
        }
        out
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], u64)> {
        self.small.iter().map(|(_, k, n)| (&**k, *n)).chain(self.big.iter().map(|(k, n)| (&**k, *n)))
    }

    /// Keys by count descending, then key ascending (stable output for tests and diffs).
    pub fn sorted(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self.iter().map(|(k, n)| (String::from_utf8_lossy(k).into_owned(), n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_across_the_switch_to_a_map() {
        let mut c = Counter::default();
        for i in 0..100u32 {
            c.add(format!("k{}", i % 40).as_bytes(), 1);
        }
        let s = c.sorted();
        assert_eq!(s.len(), 40);
        assert_eq!(s.iter().map(|e| e.1).sum::<u64>(), 100);
        assert_eq!(s[0], ("k0".to_string(), 3));
    }

    #[test]
    fn distinct_keys_and_key_length_are_bounded_and_the_rest_is_other() {
        let mut c = Counter::default();
        for i in 0..300_000u32 {
            c.add(format!("channel-{i}").as_bytes(), 1);
        }
        c.add(b"channel-0", 5);
        assert_eq!(c.iter().count(), MAX_KEYS);
        let (top, rest) = c.top(3);
        assert_eq!(top[0], ("channel-0".to_string(), 6));
        assert_eq!(top.iter().map(|e| e.1).sum::<u64>() + rest, 300_005);
        let shares = c.shares(3, 300_005);
        assert_eq!(shares.len(), 4);
        assert_eq!(shares[3]["name"], "other");
        assert_eq!(shares[3]["count"], 300_005 - 8);
        let mut long = "é".repeat(80).into_bytes();
        long.push(b'!');
        let mut c = Counter::default();
        c.add(&long, 1);
        assert_eq!(c.sorted()[0].0, "é".repeat(50));
        // Merging keeps the bound and the total.
        let (mut a, mut b) = (Counter::default(), Counter::default());
        for i in 0..2 * MAX_KEYS {
            a.add(format!("a{i}").as_bytes(), 1);
            b.add(format!("b{i}").as_bytes(), 1);
        }
        a.merge(&b);
        assert_eq!(a.iter().count(), MAX_KEYS);
        assert_eq!(a.top(0).1, 4 * MAX_KEYS as u64);
    }
}
