//! What one team receives in a run: counts, rating statistics, the most urgent items, a
//! reproducible sample of the rest and the keywords that matched. Memory is bounded by the
//! limits, not by the number of records, so routing millions of rows stays streaming.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use serde_json::{json, Map, Value};

use super::counter::Counter;

/// The per-record facts the statistics need, borrowed from the record.
pub struct Facts<'a> {
    pub channel: &'a [u8],
    pub area: &'a [u8],
    pub rating: Option<f64>,
    pub created_at: Option<i64>,
    /// Position in the input, for stable ordering.
    pub seq: u64,
}

/// A listed piece of feedback (urgent or sampled); `json` is built only when the item is kept.
pub struct Item {
    pub rating: Option<f64>,
    pub created_at: Option<i64>,
    pub seq: u64,
    pub json: Value,
}

impl Item {
    /// Urgency order: worst rating first (unrated after rated), then newest, then input order.
    fn key_cmp(&self, o: &Item) -> Ordering {
        let r = |x: Option<f64>| x.unwrap_or(f64::INFINITY);
        r(self.rating)
            .total_cmp(&r(o.rating))
            .then_with(|| o.created_at.unwrap_or(i64::MIN).cmp(&self.created_at.unwrap_or(i64::MIN)))
            .then_with(|| self.seq.cmp(&o.seq))
    }
}

// The heap keeps the `limit` most urgent items; its top is the least urgent kept.
struct Urgent(Item);
impl PartialEq for Urgent {
    fn eq(&self, o: &Self) -> bool {
        self.0.key_cmp(&o.0) == Ordering::Equal
    }
}
impl Eq for Urgent {}
impl PartialOrd for Urgent {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Urgent {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.key_cmp(&o.0)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub urgent: usize,
    pub sample: usize,
    pub keywords: usize,
    /// Rows of `by_channel` / `by_area` before the rest is one `other` row.
    pub breakdown: usize,
}

pub struct Bucket {
    pub count: u64,
    pub urgent_count: u64,
    pub by_channel: Counter,
    pub by_area: Counter,
    /// Index 0 = rated outside 1..=5 (after rounding); 1..=5 = that rating.
    pub by_rating: [u64; 6],
    pub rated: u64,
    pub rating_sum: f64,
    /// Ratings of 4 or 5 (the CSAT numerator).
    pub satisfied: u64,
    pub keywords: Counter,
    urgent: BinaryHeap<Urgent>,
    sample: BinaryHeap<Sampled>,
    /// Non-urgent items seen.
    pub rest_seen: u64,
    seed: u64,
}

// Sampled items ordered by their hash key; the heap top is the largest key kept.
struct Sampled(u64, Item);
impl PartialEq for Sampled {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Sampled {}
impl PartialOrd for Sampled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Sampled {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.cmp(&o.0).then(self.1.seq.cmp(&o.1.seq))
    }
}

/// Keeps the `limit` smallest entries of a max-heap. `fill` builds the entry's JSON and runs only
/// when the entry is kept: most candidates are rejected, and building JSON is the costly part.
fn keep_smallest<T: Ord>(heap: &mut BinaryHeap<T>, limit: usize, mut e: T, fill: impl FnOnce(&mut T)) {
    if limit == 0 {
        return;
    }
    if heap.len() < limit {
        fill(&mut e);
        heap.push(e);
    } else if heap.peek().is_some_and(|top| e < *top) {
        fill(&mut e);
        heap.pop();
        heap.push(e);
    }
}

/// splitmix64 finalizer: stable across platforms and versions, good enough for sampling.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Bucket {
    /// `seed` makes the sample reproducible per team (derived from the team name).
    pub fn new(seed: u64) -> Self {
        Bucket {
            count: 0,
            urgent_count: 0,
            by_channel: Counter::default(),
            by_area: Counter::default(),
            by_rating: [0; 6],
            rated: 0,
            rating_sum: 0.0,
            satisfied: 0,
            keywords: Counter::default(),
            urgent: BinaryHeap::new(),
            sample: BinaryHeap::new(),
            rest_seen: 0,
            seed,
        }
    }

    pub fn add(&mut self, f: &Facts<'_>, urgent: bool, lim: &Limits, make: impl FnOnce() -> Value) {
        self.count += 1;
        self.by_channel.add(label(f.channel), 1);
        self.by_area.add(label(f.area), 1);
        if let Some(r) = f.rating {
            self.rated += 1;
            self.rating_sum += r;
            if r >= 4.0 {
                self.satisfied += 1;
            }
            let i = r.round();
            self.by_rating[if (1.0..=5.0).contains(&i) { i as usize } else { 0 }] += 1;
        }
        let item = Item { rating: f.rating, created_at: f.created_at, seq: f.seq, json: Value::Null };
        if urgent {
            self.urgent_count += 1;
            keep_smallest(&mut self.urgent, lim.urgent, Urgent(item), |u| u.0.json = make());
        } else {
            self.rest_seen += 1;
            // Bottom-k sampling: the items with the smallest hash of (seed, position) form a
            // uniform sample that does not depend on the order records arrive in, so buckets
            // filled by parallel workers merge into exactly the sequential result.
            let key = mix(self.seed ^ f.seq.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            keep_smallest(&mut self.sample, lim.sample, Sampled(key, item), |s| s.1.json = make());
        }
    }

    /// Adds `other` (same team, disjoint records) into `self`.
    pub fn merge(&mut self, other: Bucket, lim: &Limits) {
        self.count += other.count;
        self.urgent_count += other.urgent_count;
        self.by_channel.merge(&other.by_channel);
        self.by_area.merge(&other.by_area);
        for (a, b) in self.by_rating.iter_mut().zip(other.by_rating) {
            *a += b;
        }
        self.rated += other.rated;
        self.rating_sum += other.rating_sum;
        self.satisfied += other.satisfied;
        self.keywords.merge(&other.keywords);
        self.rest_seen += other.rest_seen;
        for u in other.urgent {
            keep_smallest(&mut self.urgent, lim.urgent, u, |_| {});
        }
        for s in other.sample {
            keep_smallest(&mut self.sample, lim.sample, s, |_| {});
        }
    }

    pub fn avg_rating(&self) -> Option<f64> {
        (self.rated > 0).then(|| self.rating_sum / self.rated as f64)
    }

    /// Share of ratings 4–5, in percent.
    pub fn csat(&self) -> Option<f64> {
        (self.rated > 0).then(|| 100.0 * self.satisfied as f64 / self.rated as f64)
    }

    /// Urgent items, most urgent first.
    pub fn urgent_items(&self) -> Vec<&Item> {
        let mut v: Vec<&Item> = self.urgent.iter().map(|u| &u.0).collect();
        v.sort_by(|a, b| a.key_cmp(b));
        v
    }

    /// Sampled non-urgent items, in input order.
    pub fn sample_items(&self) -> Vec<&Item> {
        let mut v: Vec<&Item> = self.sample.iter().map(|s| &s.1).collect();
        v.sort_by_key(|i| i.seq);
        v
    }

    /// Statistics and lists as JSON (team, previous digest and chart are added by the caller).
    pub fn stats_json(&self, lim: &Limits) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("count".into(), json!(self.count));
        m.insert("urgent_count".into(), json!(self.urgent_count));
        m.insert("by_channel".into(), Value::Array(self.by_channel.shares(lim.breakdown, self.count)));
        m.insert("by_area".into(), Value::Array(self.by_area.shares(lim.breakdown, self.count)));
        m.insert("by_rating".into(), Value::Array((1..=5).map(|r| json!({"rating": r, "count": self.by_rating[r]})).collect()));
        m.insert("rated".into(), json!(self.rated));
        m.insert("avg_rating".into(), self.avg_rating().map_or(Value::Null, |x| num(round2(x))));
        m.insert("csat".into(), self.csat().map_or(Value::Null, |x| num(round1(x))));
        m.insert("urgent".into(), Value::Array(self.urgent_items().iter().map(|i| i.json.clone()).collect()));
        m.insert("sample".into(), Value::Array(self.sample_items().iter().map(|i| i.json.clone()).collect()));
        let kw: Vec<Value> =
            self.keywords.sorted().into_iter().take(lim.keywords).map(|(k, n)| json!({"keyword": k, "count": n})).collect();
        m.insert("keywords".into(), Value::Array(kw));
        m
    }
}

/// Channel/area label: trimmed, `unknown` when empty.
fn label(b: &[u8]) -> &[u8] {
    let t = b.trim_ascii();
    if t.is_empty() {
        b"unknown"
    } else {
        t
    }
}

/// A JSON number that prints as `4`, not `4.0`, when it is whole (ratings, percentages).
pub fn num(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Stable 64-bit FNV-1a, used for per-team seeds.
pub fn fnv1a(s: &[u8]) -> u64 {
    s.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(rating: Option<f64>, ts: i64, seq: u64) -> Facts<'static> {
        Facts { channel: b"email", area: b"billing", rating, created_at: Some(ts), seq }
    }
    const LIM: Limits = Limits { urgent: 3, sample: 2, keywords: 5, breakdown: 10 };

    #[test]
    fn urgent_items_worst_rating_then_newest_capped() {
        let mut b = Bucket::new(7);
        let input = [(Some(2.0), 10), (Some(1.0), 5), (None, 50), (Some(1.0), 9), (Some(3.0), 1), (Some(2.0), 20)];
        for (i, (r, ts)) in input.iter().enumerate() {
            b.add(&facts(*r, *ts, i as u64), true, &LIM, || json!(i));
        }
        let order: Vec<u64> = b.urgent_items().iter().map(|i| i.seq).collect();
        // ratings 1 (ts 9), 1 (ts 5), 2 (ts 20); capped at 3
        assert_eq!(order, vec![3, 1, 5]);
        assert_eq!(b.urgent_count, 6);
    }

    #[test]
    fn stats_and_csat() {
        let mut b = Bucket::new(1);
        for (i, r) in [5.0, 4.0, 1.0, 2.0].iter().enumerate() {
            b.add(&facts(Some(*r), 0, i as u64), false, &LIM, || json!(i));
        }
        b.add(&Facts { channel: b" ", area: b"app", rating: None, created_at: None, seq: 9 }, false, &LIM, || json!(9));
        assert_eq!(b.count, 5);
        assert_eq!(b.avg_rating(), Some(3.0));
        assert_eq!(b.csat(), Some(50.0));
        let j = b.stats_json(&LIM);
        assert_eq!(j["by_channel"][0], json!({"name": "email", "count": 4, "pct": 80}));
        assert_eq!(j["by_channel"][1]["name"], "unknown");
        assert_eq!(j["by_rating"][0], json!({"rating": 1, "count": 1}));
        assert_eq!(j["sample"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn merged_halves_equal_one_pass() {
        let lim = Limits { urgent: 4, sample: 3, keywords: 5, breakdown: 10 };
        let feed = |b: &mut Bucket, range: std::ops::Range<u64>| {
            for i in range {
                let f = facts(Some((i % 5 + 1) as f64), i as i64, i);
                b.add(&f, i % 3 == 0, &lim, || json!(i));
            }
        };
        let mut whole = Bucket::new(3);
        feed(&mut whole, 0..500);
        let (mut a, mut b) = (Bucket::new(3), Bucket::new(3));
        feed(&mut b, 250..500);
        feed(&mut a, 0..250);
        a.merge(b, &lim);
        assert_eq!(a.stats_json(&lim), whole.stats_json(&lim));
    }

    #[test]
    fn sample_is_reproducible_and_bounded() {
        let run = || {
            let mut b = Bucket::new(fnv1a(b"Billing"));
            for i in 0..10_000u64 {
                b.add(&facts(Some(3.0), 0, i), false, &LIM, || json!(i));
            }
            b.sample_items().iter().map(|i| i.seq).collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a.len(), 2);
        assert_eq!(a, run());
        assert!(a.iter().any(|&s| s > 100), "sample should reach past the first rows: {a:?}");
    }
}
