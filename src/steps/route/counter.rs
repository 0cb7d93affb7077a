//! Counts of byte-string keys (channels, product areas, keywords). Feedback has a handful of
//! distinct channels and areas, so a linear scan of a short vector beats hashing every row;
//! past `LINEAR` keys it switches to a hash map so hostile data cannot make it quadratic.

use std::collections::HashMap;

const LINEAR: usize = 24;

#[derive(Debug, Default, Clone)]
pub struct Counter {
    small: Vec<(Box<[u8]>, u64)>,
    big: HashMap<Box<[u8]>, u64>,
}

impl Counter {
    pub fn add(&mut self, key: &[u8], n: u64) {
        if self.big.is_empty() {
            if let Some(e) = self.small.iter_mut().find(|(k, _)| **k == *key) {
                e.1 += n;
                return;
            }
            if self.small.len() < LINEAR {
                self.small.push((key.into(), n));
                return;
            }
            self.big.extend(self.small.drain(..));
        }
        match self.big.get_mut(key) {
            Some(c) => *c += n,
            None => {
                self.big.insert(key.into(), n);
            }
        }
    }

    pub fn merge(&mut self, other: &Counter) {
        for (k, n) in other.iter() {
            self.add(k, n);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], u64)> {
        self.small.iter().map(|(k, n)| (&**k, *n)).chain(self.big.iter().map(|(k, n)| (&**k, *n)))
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
}
