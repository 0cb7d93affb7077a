//! Source-independent routing loop: one call per record, given as slot values. Sources (the
//! fast CSV path, generic JSON records) only differ in how they fill the row.

use serde_json::{json, Map, Value};

use super::bucket::{fnv1a, num, Bucket, Facts, Limits};
use super::compile::RuleSet;
use super::matcher::{Row, Scratch};
use super::rules::Mode;
use super::seen::{IdBatcher, SeenIds};
use super::values::{parse_number, parse_timestamp};

/// Longest feedback text kept in a listed item; digests are summaries, not archives.
const TEXT_LIMIT: usize = 1000;
/// Record errors kept with their message (all are counted).
const ERROR_LIMIT: usize = 100;

#[derive(Debug, Clone, PartialEq)]
pub struct RecordError {
    /// Position of the record in the input (0-based).
    pub seq: u64,
    /// The record's id, or `row N` (1-based, header excluded) when it has none.
    pub record: String,
    pub message: String,
}

#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct RouteCounts {
    pub records: u64,
    /// Records given to at least one team.
    pub routed: u64,
    /// Records no rule matched and no `unmatched:` team took.
    pub dropped: u64,
    /// Records skipped because an earlier run already routed their id.
    pub already_routed: u64,
    pub errors: u64,
    /// Routed records without a usable id: they cannot be remembered and may be routed again.
    pub without_id: u64,
}

pub struct Router<'r> {
    rules: &'r RuleSet,
    mode: Mode,
    limits: Limits,
    pub buckets: Vec<Bucket>,
    scratch: Scratch,
    seen: Option<&'r SeenIds>,
    pub ids: IdBatcher,
    pub counts: RouteCounts,
    pub errors: Vec<RecordError>,
    matched: Vec<usize>,
    /// Keywords of the current record, lowercased and deduplicated: `kw_spans` index `kw`.
    kw: Vec<u8>,
    kw_spans: Vec<(usize, usize)>,
}

impl<'r> Router<'r> {
    pub fn new(rules: &'r RuleSet, mode: Mode, limits: Limits, seen: Option<&'r SeenIds>, ids: IdBatcher) -> Self {
        Router {
            buckets: rules.teams.iter().map(|t| Bucket::new(fnv1a(t.name.as_bytes()))).collect(),
            scratch: Scratch::new(rules),
            rules,
            mode,
            limits,
            seen,
            ids,
            counts: RouteCounts::default(),
            errors: Vec::new(),
            matched: Vec::new(),
            kw: Vec::new(),
            kw_spans: Vec::new(),
        }
    }

    /// Routes one record. `record` builds the full record as JSON; it is called only for the few
    /// records kept as urgent or sample items.
    pub fn route(&mut self, row: &Row<'_>, seq: u64, record: &dyn Fn() -> Map<String, Value>) {
        let rules = self.rules;
        let roles = rules.roles;
        self.counts.records += 1;
        let id = row[roles.id].map(<[u8]>::trim_ascii).filter(|b| !b.is_empty());
        if let (Some(seen), Some(id)) = (self.seen, id) {
            if seen.contains(id) {
                self.counts.already_routed += 1;
                return;
            }
        }
        if let Some(slot) = rules.missing_field(row) {
            let msg = format!("field `{}` is missing (a routing rule names it)", rules.fields.names[slot]);
            self.record_error(id, seq, msg);
            return;
        }
        self.scratch.reset();
        self.matched.clear();
        for &t in &rules.order {
            if let Some(when) = &rules.teams[t].when {
                if rules.eval(when, row, &mut self.scratch) {
                    self.matched.push(t);
                    if self.mode == Mode::FirstMatch {
                        break;
                    }
                }
            }
        }
        if let Some(e) = self.scratch.error.take() {
            let msg = format!("field `{}` is `{}`, not {}", rules.fields.names[e.slot], e.value, e.expected);
            self.record_error(id, seq, msg);
            return;
        }
        // Through `unmatched:`, a team's own `when:` (if it has one) did not hold.
        let fell_through = self.matched.is_empty();
        if fell_through {
            match rules.unmatched {
                Some(u) => self.matched.push(u),
                None => {
                    self.counts.dropped += 1;
                    return;
                }
            }
        }
        // Urgency is decided for every matched team before anything is added, so an unreadable
        // value in an `urgent:` rule leaves the record entirely unrouted (it is an error).
        let mut urgent_mask: u64 = 0;
        for (k, &t) in self.matched.iter().enumerate() {
            if let Some(u) = &rules.teams[t].urgent {
                if rules.eval(u, row, &mut self.scratch) && k < 64 {
                    urgent_mask |= 1 << k;
                }
            }
        }
        if let Some(e) = self.scratch.error.take() {
            let msg = format!("field `{}` is `{}`, not {}", rules.fields.names[e.slot], e.value, e.expected);
            self.record_error(id, seq, msg);
            return;
        }
        let get = |s: usize| row[s].unwrap_or(b"");
        let rating = parse_number(get(roles.rating));
        let created_at = row[roles.created_at].and_then(parse_timestamp);
        let facts = Facts { channel: get(roles.channel), area: get(roles.area), rating, created_at, seq };
        for k in 0..self.matched.len() {
            let t = self.matched[k];
            let bucket = &mut self.buckets[t];
            if let Some(when) = rules.teams[t].when.as_ref().filter(|_| !fell_through) {
                let (kw, spans) = (&mut self.kw, &mut self.kw_spans);
                kw.clear();
                spans.clear();
                // `when` held: that is why the team is in `matched`.
                rules.keywords_of_true(when, row, &mut self.scratch, &mut |m: &[u8]| push_keyword(m, kw, spans));
                for &(a, b) in spans.iter() {
                    bucket.keywords.add(&kw[a..b], 1);
                }
            }
            let urgent = urgent_mask & (1 << k.min(63)) != 0;
            bucket.add(&facts, urgent, &self.limits, || item_json(rules, row, rating, record()));
        }
        self.counts.routed += 1;
        match id {
            Some(id) if self.ids.push(id) => {}
            _ => self.counts.without_id += 1,
        }
    }

    /// Adds what another router (same rules, other records) collected.
    pub fn merge(&mut self, other: Router<'_>) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            a.merge(b, &self.limits);
        }
        let (c, o) = (&mut self.counts, other.counts);
        c.records += o.records;
        c.routed += o.routed;
        c.dropped += o.dropped;
        c.already_routed += o.already_routed;
        c.errors += o.errors;
        c.without_id += o.without_id;
        // Each router kept its first errors; the first overall are among them.
        self.errors.extend(other.errors);
        self.errors.sort_by_key(|e| e.seq);
        self.errors.truncate(ERROR_LIMIT);
    }

    /// A record the source could not read (too large, badly quoted, not UTF-8, a short row): it
    /// counts as a record and as an error, like a record a rule cannot read.
    pub fn bad_record(&mut self, seq: u64, record: String, message: String) {
        self.counts.records += 1;
        self.counts.errors += 1;
        if self.errors.len() < ERROR_LIMIT {
            self.errors.push(RecordError { seq, record, message });
        }
    }

    fn record_error(&mut self, id: Option<&[u8]>, seq: u64, message: String) {
        self.counts.errors += 1;
        if self.errors.len() < ERROR_LIMIT {
            let record = match id {
                Some(id) => String::from_utf8_lossy(id).into_owned(),
                None => format!("row {}", seq + 1),
            };
            self.errors.push(RecordError { seq, record, message });
        }
    }
}

/// Appends a matched keyword, lowercased (`Refund` and `refund` are one keyword), unless the
/// record already produced it: a keyword counts once per record.
fn push_keyword(m: &[u8], kw: &mut Vec<u8>, spans: &mut Vec<(usize, usize)>) {
    let start = kw.len();
    if m.is_ascii() {
        kw.extend(m.iter().map(u8::to_ascii_lowercase));
    } else {
        kw.extend_from_slice(String::from_utf8_lossy(m).to_lowercase().as_bytes());
    }
    let (seen, new) = kw.split_at(start);
    if new.is_empty() || spans.iter().any(|&(a, b)| &seen[a..b] == new) {
        kw.truncate(start);
    } else {
        spans.push((start, kw.len()));
    }
}

/// A listed item: the digest roles under fixed names (templates do not depend on column names),
/// plus the whole record.
fn item_json(rules: &RuleSet, row: &Row<'_>, rating: Option<f64>, record: Map<String, Value>) -> Value {
    let r = rules.roles;
    let text = |s: usize| String::from_utf8_lossy(row[s].unwrap_or(b"")).trim().to_string();
    let mut body = text(r.text);
    if body.chars().count() > TEXT_LIMIT {
        body = body.chars().take(TEXT_LIMIT).collect::<String>() + "…";
    }
    json!({
        "id": text(r.id),
        "text": body,
        "channel": text(r.channel),
        "area": text(r.area),
        "rating": rating.map_or(Value::Null, num),
        "created_at": text(r.created_at),
        "record": record,
    })
}
