//! Evaluates compiled conditions over one record given as slot values (`Row`).
//!
//! Pattern results are cached per row, so a regex shared by a team's `when` and `urgent` (or
//! re-run to extract keywords) is searched once. Whole-word keyword patterns are decided
//! together: the first one evaluated on a field scans it once with that field's automaton
//! (`words.rs`), which decides every keyword pattern on the field and keeps the hits for the
//! digest's keywords. Empty values never match a numeric or date test; a non-empty value that
//! cannot be read as number/date is the record's error.

use super::compile::{Cond, Expected, NumOp, RuleSet, Test};
use super::values::{eq_ignore_case_trimmed, parse_number, parse_timestamp, trim};
use super::words::{leftmost_first, Hit};

/// A record as the matcher sees it: one optional value per slot of `RuleSet::fields`.
pub type Row<'a> = [Option<&'a [u8]>];

#[derive(Debug, Clone, PartialEq)]
pub struct EvalError {
    pub slot: usize,
    pub expected: &'static str,
    pub value: String,
}

/// Per-row state; reuse one across rows (call `reset`). One per thread.
pub struct Scratch {
    /// 0 = not evaluated yet, 1 = no match, 2 = match.
    pat: Vec<u8>,
    /// The rules' regexes, cloned: a clone has its own search-cache pool, so routing threads do
    /// not contend on the shared one (that showed as several percent in the benchmark profile).
    regexes: Vec<regex::bytes::Regex>,
    /// Per word index: `NOT_SCANNED`, `SCANNED` (its patterns are decided, `hits` kept) or
    /// `BY_REGEX` (the text needs the regexes).
    words: Vec<u8>,
    hits: Vec<Vec<Hit>>,
    pub error: Option<EvalError>,
}

const NOT_SCANNED: u8 = 0;
const SCANNED: u8 = 1;
const BY_REGEX: u8 = 2;

impl Scratch {
    pub fn new(rules: &RuleSet) -> Self {
        Scratch {
            pat: vec![0; rules.patterns.len()],
            regexes: rules.patterns.clone(),
            words: vec![NOT_SCANNED; rules.words.len()],
            hits: vec![Vec::new(); rules.words.len()],
            error: None,
        }
    }
    pub fn reset(&mut self) {
        self.pat.fill(0);
        self.words.fill(NOT_SCANNED);
        self.error = None;
    }
}

impl RuleSet {
    /// First required slot missing from `row`, if any.
    pub fn missing_field(&self, row: &Row<'_>) -> Option<usize> {
        self.required.iter().copied().find(|&s| row[s].is_none())
    }

    pub fn eval(&self, c: &Cond, row: &Row<'_>, s: &mut Scratch) -> bool {
        match c {
            Cond::All(v) => v.iter().all(|c| self.eval(c, row, s)),
            Cond::Any(v) => v.iter().any(|c| self.eval(c, row, s)),
            Cond::Not(c) => !self.eval(c, row, s),
            Cond::Leaf { slot, tests } => {
                let val = row[*slot].unwrap_or(b"");
                tests.iter().all(|t| self.test(t, *slot, val, s))
            }
        }
    }

    fn test(&self, t: &Test, slot: usize, val: &[u8], s: &mut Scratch) -> bool {
        match t {
            Test::OneOf(exp) => {
                let a = trim(val);
                let ascii = a.is_ascii();
                exp.iter().any(|e| match e {
                    Expected::Text(x) => eq_ignore_case_trimmed(a, ascii, x),
                    Expected::Number(n) => parse_number(val) == Some(*n),
                    Expected::Bool(b) => eq_ignore_case_trimmed(a, ascii, if *b { "true" } else { "false" }),
                })
            }
            Test::Pattern(p) => self.pattern(*p, val, s),
            Test::Num(op, x) => {
                let Some(v) = self.read(val, slot, s, "a number", parse_number) else { return false };
                match op {
                    NumOp::Lt => v < *x,
                    NumOp::Lte => v <= *x,
                    NumOp::Gt => v > *x,
                    NumOp::Gte => v >= *x,
                }
            }
            Test::Before(t) => self.read(val, slot, s, "a date", parse_timestamp).is_some_and(|v| v < *t),
            Test::AtOrAfter(t) => self.read(val, slot, s, "a date", parse_timestamp).is_some_and(|v| v >= *t),
        }
    }

    fn read<T>(&self, val: &[u8], slot: usize, s: &mut Scratch, what: &'static str, parse: fn(&[u8]) -> Option<T>) -> Option<T> {
        if trim(val).is_empty() {
            return None;
        }
        let v = parse(val);
        if v.is_none() && s.error.is_none() {
            s.error = Some(EvalError { slot, expected: what, value: String::from_utf8_lossy(val).chars().take(80).collect() });
        }
        v
    }

    fn pattern(&self, p: usize, val: &[u8], s: &mut Scratch) -> bool {
        if s.pat[p] == 0 {
            if let Some(w) = self.pattern_words[p] {
                self.scan(w, val, s);
            }
        }
        match s.pat[p] {
            0 => {
                let m = s.regexes[p].is_match(val);
                s.pat[p] = 1 + u8::from(m);
                m
            }
            st => st == 2,
        }
    }

    /// Decides every pattern of word index `w` on `val` (once per row), unless `val` needs the
    /// regexes.
    fn scan(&self, w: usize, val: &[u8], s: &mut Scratch) {
        if s.words[w] != NOT_SCANNED {
            return;
        }
        let ix = &self.words[w];
        if ix.needs_regex(val) {
            s.words[w] = BY_REGEX;
            return;
        }
        s.words[w] = SCANNED;
        for &p in &ix.patterns {
            s.pat[p] = 1;
        }
        let (pat, hits) = (&mut s.pat, &mut s.hits[w]);
        hits.clear();
        ix.scan(val, |h| {
            pat[h.pattern] = 2;
            hits.push(h);
        });
    }

    /// Calls `out` with the text matched by each `contains`/`keywords`/`regex` test that made
    /// `c` true. `not` branches contribute nothing: what they matched is why the rule did *not*
    /// apply.
    pub fn keywords(&self, c: &Cond, row: &Row<'_>, s: &mut Scratch, out: &mut dyn FnMut(&[u8])) {
        if self.eval(c, row, s) {
            self.keywords_of_true(c, row, s, out);
        }
    }

    /// `keywords` for a `c` known to hold (a team's matched `when:`): the children of an `all`
    /// hold too, and only the children of an `any` that have a pattern are evaluated again.
    pub fn keywords_of_true(&self, c: &Cond, row: &Row<'_>, s: &mut Scratch, out: &mut dyn FnMut(&[u8])) {
        match c {
            Cond::All(v) => v.iter().for_each(|c| self.keywords_of_true(c, row, s, out)),
            Cond::Any(v) => {
                for c in v.iter().filter(|c| has_pattern(c)) {
                    if self.eval(c, row, s) {
                        self.keywords_of_true(c, row, s, out);
                    }
                }
            }
            Cond::Not(_) => {}
            Cond::Leaf { slot, tests } => {
                let val = row[*slot].unwrap_or(b"");
                for t in tests {
                    if let Test::Pattern(p) = t {
                        if let Some(w) = self.pattern_words[*p] {
                            self.scan(w, val, s);
                            if s.words[w] == SCANNED {
                                leftmost_first(&mut s.hits[w], *p, val, out);
                                continue;
                            }
                        }
                        for m in s.regexes[*p].find_iter(val) {
                            out(m.as_bytes());
                        }
                    }
                }
            }
        }
    }
}

/// Whether `c` has a pattern test outside `not` (one that can report keywords).
fn has_pattern(c: &Cond) -> bool {
    match c {
        Cond::All(v) | Cond::Any(v) => v.iter().any(has_pattern),
        Cond::Not(_) => false,
        Cond::Leaf { tests, .. } => tests.iter().any(|t| matches!(t, Test::Pattern(_))),
    }
}
