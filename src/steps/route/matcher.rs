//! Evaluates compiled conditions over one record given as slot values (`Row`).
//!
//! Pattern results are cached per row, so a regex shared by a team's `when` and `urgent` (or
//! re-run to extract keywords) is searched once. Empty values never match a numeric or date
//! test; a non-empty value that cannot be read as number/date is the record's error.

use super::compile::{Cond, Expected, NumOp, RuleSet, Test};
use super::values::{eq_ignore_case, parse_number, parse_timestamp, trim};

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
    pub error: Option<EvalError>,
}

impl Scratch {
    pub fn new(rules: &RuleSet) -> Self {
        Scratch { pat: vec![0; rules.patterns.len()], regexes: rules.patterns.clone(), error: None }
    }
    pub fn reset(&mut self) {
        self.pat.fill(0);
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
            Test::OneOf(exp) => exp.iter().any(|e| match e {
                Expected::Text(x) => eq_ignore_case(val, x),
                Expected::Number(n) => parse_number(val) == Some(*n),
                Expected::Bool(b) => eq_ignore_case(val, if *b { "true" } else { "false" }),
            }),
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
        match s.pat[p] {
            0 => {
                let m = s.regexes[p].is_match(val);
                s.pat[p] = 1 + u8::from(m);
                m
            }
            st => st == 2,
        }
    }

    /// Calls `out` with the text matched by each `contains`/`regex` test that made `c` true.
    /// `not` branches contribute nothing: what they matched is why the rule did *not* apply.
    pub fn keywords(&self, c: &Cond, row: &Row<'_>, s: &mut Scratch, out: &mut dyn FnMut(&[u8])) {
        if !self.eval(c, row, s) {
            return;
        }
        match c {
            Cond::All(v) | Cond::Any(v) => v.iter().for_each(|c| self.keywords(c, row, s, out)),
            Cond::Not(_) => {}
            Cond::Leaf { slot, tests } => {
                let val = row[*slot].unwrap_or(b"");
                for t in tests {
                    if let Test::Pattern(p) = t {
                        for m in s.regexes[*p].find_iter(val) {
                            out(m.as_bytes());
                        }
                    }
                }
            }
        }
    }
}
