//! Compiles team specs into a `RuleSet`: field names resolved to slots once, regexes compiled
//! once, dates and relative durations resolved against `as_of`. Every problem is collected with
//! the YAML path of the offending key so the caller can point at file:line:column.

use std::collections::HashMap;

use regex::bytes::{Regex, RegexBuilder};

use super::rules::{Condition, FieldsSpec, OneOrMany, Scalar, TeamSpec};
use super::values::parse_timestamp;
use super::words::{whole_words, words_regex, WordIndex};

/// A semantic error in rules, located by YAML path (e.g. `teams[2].when.any[0].regex`).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleError {
    pub path: String,
    pub message: String,
    pub help: Option<String>,
}

/// Field names used by rules and digests, each given a slot: a record is presented to the
/// matcher as `&[Option<&[u8]>]` indexed by slot, whatever its source.
#[derive(Debug, Default, Clone)]
pub struct Fields {
    pub names: Vec<String>,
    index: HashMap<String, usize>,
}

impl Fields {
    pub fn slot(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), self.names.len() - 1);
        self.names.len() - 1
    }
    pub fn len(&self) -> usize {
        self.names.len()
    }
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Slots of the fields the digest uses.
#[derive(Debug, Clone, Copy)]
pub struct Roles {
    pub id: usize,
    pub text: usize,
    pub channel: usize,
    pub area: usize,
    pub rating: usize,
    pub created_at: usize,
}

#[derive(Debug)]
pub enum Cond {
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
    /// All tests on one field must hold.
    Leaf {
        slot: usize,
        tests: Vec<Test>,
    },
}

#[derive(Debug)]
pub enum Test {
    /// `equals` / `one_of`: any of these.
    OneOf(Vec<Expected>),
    /// `contains` / `regex`: index into `RuleSet::patterns`.
    Pattern(usize),
    Num(NumOp, f64),
    /// Timestamp strictly before this (seconds since epoch).
    Before(i64),
    /// Timestamp at or after this.
    AtOrAfter(i64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NumOp {
    Lt,
    Lte,
    Gt,
    Gte,
}

#[derive(Debug)]
pub enum Expected {
    /// Lowercased.
    Text(String),
    Number(f64),
    Bool(bool),
}

pub struct CompiledTeam {
    pub name: String,
    pub emails: Vec<String>,
    pub webhook: Option<String>,
    pub follow_redirects: bool,
    pub priority: i64,
    pub when: Option<Cond>,
    pub urgent: Option<Cond>,
}

pub struct RuleSet {
    pub fields: Fields,
    pub roles: Roles,
    /// Regexes of `contains` (case-insensitive alternation of escaped terms), `keywords` and
    /// `regex`.
    pub patterns: Vec<Regex>,
    /// Slot each pattern is applied to.
    pub pattern_slot: Vec<usize>,
    /// The whole-word keyword patterns (`keywords:`, and regexes of that form), one automaton
    /// per slot; `pattern_words[p]` is the index deciding pattern `p`, if any.
    pub words: Vec<WordIndex>,
    pub pattern_words: Vec<Option<usize>>,
    pub teams: Vec<CompiledTeam>,
    /// Team indices in evaluation order: priority descending, then file order.
    pub order: Vec<usize>,
    pub unmatched: Option<usize>,
    /// Slots named by some rule: a record lacking one of them is that record's error.
    pub required: Vec<usize>,
}

/// Everything compile needs besides the teams.
pub struct CompileInput<'a> {
    pub teams: &'a [TeamSpec],
    /// YAML path of the `teams` list (`teams` in a rule file, `steps[3].route.teams` inline).
    pub teams_path: &'a str,
    pub fields: &'a FieldsSpec,
    pub unmatched: Option<&'a str>,
    /// YAML path reported for a bad `unmatched:`.
    pub unmatched_path: &'a str,
    /// Reference time for `within` / `older_than`, seconds since epoch.
    pub as_of: i64,
}

pub fn compile(input: &CompileInput<'_>) -> Result<RuleSet, Vec<RuleError>> {
    let mut c = Compiler {
        fields: Fields::default(),
        patterns: Vec::new(),
        pattern_slot: Vec::new(),
        pattern_keywords: Vec::new(),
        required: Vec::new(),
        errors: Vec::new(),
        as_of: input.as_of,
    };
    if input.teams.is_empty() {
        c.err(input.teams_path, "no teams defined", Some("add at least one team with `name:` and `when:`".into()));
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut teams = Vec::new();
    for (i, t) in input.teams.iter().enumerate() {
        let path = format!("{}[{i}]", input.teams_path);
        if t.name.trim().is_empty() {
            c.err(&format!("{path}.name"), "team name is empty", None);
        } else if let Some(prev) = seen.insert(t.name.as_str(), i) {
            c.err(
                &format!("{path}.name"),
                format!("duplicate team name `{}`", t.name),
                Some(format!("team {prev} already uses this name; team names must be unique")),
            );
        }
        let emails = t.email.to_vec();
        for (j, e) in emails.iter().enumerate() {
            if !looks_like_email(e) {
                let p = match t.email {
                    OneOrMany::One(_) => format!("{path}.email"),
                    OneOrMany::Many(_) => format!("{path}.email[{j}]"),
                };
                c.err(&p, format!("`{e}` is not an email address"), Some("write it as `name@example.com`".into()));
            }
        }
        // `{{secrets.NAME}}` is resolved when the step runs.
        if let Some(w) = t.webhook.as_ref().filter(|w| !w.trim_start().starts_with("{{")) {
            if !matches!(url::Url::parse(w), Ok(u) if u.scheme() == "http" || u.scheme() == "https") {
                c.err(&format!("{path}.webhook"), format!("`{w}` is not an http(s) URL"), None);
            }
        }
        if t.webhook_follow_redirects && t.webhook.is_none() {
            c.err(
                &format!("{path}.webhook_follow_redirects"),
                format!("team `{}` has `webhook_follow_redirects` but no `webhook:`", t.name),
                Some("add the team's `webhook:`, or remove this line".into()),
            );
        }
        let is_unmatched = input.unmatched == Some(t.name.as_str());
        if t.when.is_none() && !is_unmatched {
            c.err(
                &path,
                format!("team `{}` has no `when:` and is not the `unmatched:` team, so it would never receive feedback", t.name),
                Some("add a `when:` condition, or name this team in the step's `unmatched:`".into()),
            );
        }
        let when = t.when.as_ref().and_then(|w| c.cond(w, &format!("{path}.when")));
        let urgent = t.urgent.as_ref().and_then(|w| c.cond(w, &format!("{path}.urgent")));
        teams.push(CompiledTeam {
            name: t.name.clone(),
            emails,
            webhook: t.webhook.clone(),
            follow_redirects: t.webhook_follow_redirects,
            priority: t.priority,
            when,
            urgent,
        });
    }
    let unmatched = match input.unmatched {
        None => None,
        Some(name) => {
            let found = teams.iter().position(|t| t.name == name);
            if found.is_none() {
                let names: Vec<&str> = teams.iter().map(|t| t.name.as_str()).collect();
                let close = names.iter().copied().max_by(|a, b| strsim::jaro_winkler(a, name).total_cmp(&strsim::jaro_winkler(b, name)));
                c.err(
                    input.unmatched_path,
                    format!("`unmatched: {name}` names no team"),
                    Some(match close {
                        Some(n) => format!("did you mean `{n}`? teams are: {}", names.join(", ")),
                        None => "define the team in the rules".into(),
                    }),
                );
            }
            found
        }
    };
    let f = input.fields;
    let roles = Roles {
        id: c.fields.slot(&f.id),
        text: c.fields.slot(&f.text),
        channel: c.fields.slot(&f.channel),
        area: c.fields.slot(&f.area),
        rating: c.fields.slot(&f.rating),
        created_at: c.fields.slot(&f.created_at),
    };
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    let mut order: Vec<usize> = (0..teams.len()).collect();
    // Stable sort keeps file order among equal priorities.
    order.sort_by_key(|&i| std::cmp::Reverse(teams[i].priority));
    let mut required = c.required;
    required.sort_unstable();
    required.dedup();
    let (words, pattern_words) = word_indexes(&c.pattern_slot, c.pattern_keywords);
    Ok(RuleSet {
        fields: c.fields,
        roles,
        patterns: c.patterns,
        pattern_slot: c.pattern_slot,
        words,
        pattern_words,
        teams,
        order,
        unmatched,
        required,
    })
}

/// (pattern, keywords) of the whole-word patterns on one slot.
type SlotLists = (usize, Vec<(usize, Vec<String>)>);

/// One automaton per slot for the patterns that are whole-word keyword lists.
fn word_indexes(slots: &[usize], keywords: Vec<Option<Vec<String>>>) -> (Vec<WordIndex>, Vec<Option<usize>>) {
    let mut by_slot: Vec<SlotLists> = Vec::new();
    for (p, k) in keywords.into_iter().enumerate() {
        let Some(k) = k else { continue };
        match by_slot.iter_mut().find(|(s, _)| *s == slots[p]) {
            Some((_, lists)) => lists.push((p, k)),
            None => by_slot.push((slots[p], vec![(p, k)])),
        }
    }
    let mut indexes = Vec::new();
    let mut pattern_words = vec![None; slots.len()];
    for (slot, lists) in by_slot {
        if let (Some(ix), _) = WordIndex::build(slot, &lists) {
            for &p in &ix.patterns {
                pattern_words[p] = Some(indexes.len());
            }
            indexes.push(ix);
        }
    }
    (indexes, pattern_words)
}

fn looks_like_email(e: &str) -> bool {
    match e.split_once('@') {
        Some((local, domain)) => !local.is_empty() && !domain.is_empty() && !e.contains(char::is_whitespace),
        None => false,
    }
}

struct Compiler {
    fields: Fields,
    patterns: Vec<Regex>,
    pattern_slot: Vec<usize>,
    /// Per pattern: its keywords when it is a whole-word keyword list.
    pattern_keywords: Vec<Option<Vec<String>>>,
    required: Vec<usize>,
    errors: Vec<RuleError>,
    as_of: i64,
}

const OPERATORS: &str = "equals, one_of, contains, keywords, regex, lt, lte, gt, gte, before, after, within, older_than";

impl Compiler {
    fn err(&mut self, path: &str, message: impl Into<String>, help: Option<String>) {
        self.errors.push(RuleError { path: path.to_string(), message: message.into(), help });
    }

    fn cond(&mut self, c: &Condition, path: &str) -> Option<Cond> {
        let combinators = [c.all.is_some(), c.any.is_some(), c.not.is_some()].iter().filter(|b| **b).count();
        let has_ops = c.equals.is_some()
            || c.one_of.is_some()
            || c.contains.is_some()
            || c.keywords.is_some()
            || c.regex.is_some()
            || c.lt.is_some()
            || c.lte.is_some()
            || c.gt.is_some()
            || c.gte.is_some()
            || c.before.is_some()
            || c.after.is_some()
            || c.within.is_some()
            || c.older_than.is_some();
        if combinators > 1 {
            self.err(
                path,
                "a condition has more than one of `all`, `any`, `not`",
                Some("nest them: `all: [{any: [...]}, {not: {...}}]`".into()),
            );
            return None;
        }
        if combinators == 1 && (has_ops || c.field.is_some()) {
            self.err(
                path,
                "a condition is either `all`/`any`/`not` or `field:` with operators, not both",
                Some("move the field test into the list, e.g. `all: [{field: rating, lte: 2}, ...]`".into()),
            );
            return None;
        }
        if let Some(list) = c.all.as_ref().or(c.any.as_ref()) {
            let key = if c.all.is_some() { "all" } else { "any" };
            if list.is_empty() {
                self.err(&format!("{path}.{key}"), format!("empty `{key}:` list"), Some("list at least one condition".into()));
                return None;
            }
            let mut out = Vec::new();
            for (i, sub) in list.iter().enumerate() {
                out.push(self.cond(sub, &format!("{path}.{key}[{i}]")));
            }
            let out: Option<Vec<Cond>> = out.into_iter().collect();
            return out.map(|v| if c.all.is_some() { Cond::All(v) } else { Cond::Any(v) });
        }
        if let Some(sub) = &c.not {
            return self.cond(sub, &format!("{path}.not")).map(|s| Cond::Not(Box::new(s)));
        }
        let Some(field) = &c.field else {
            if has_ops {
                self.err(path, "an operator needs `field:`", Some("say which field to test, e.g. `field: text`".into()));
            } else {
                self.err(path, "empty condition", Some(format!("use `all`, `any`, `not`, or `field:` with one of: {OPERATORS}")));
            }
            return None;
        };
        if !has_ops {
            self.err(&format!("{path}.field"), format!("`field: {field}` has no operator"), Some(format!("add one of: {OPERATORS}")));
            return None;
        }
        let slot = self.fields.slot(field);
        self.required.push(slot);
        let before = self.errors.len();
        let mut tests = Vec::new();
        if c.equals.is_some() || c.one_of.is_some() {
            let mut exp: Vec<Expected> = c.equals.iter().map(expected).collect();
            if let Some(list) = &c.one_of {
                if list.is_empty() {
                    self.err(&format!("{path}.one_of"), "empty `one_of:` list", None);
                }
                // `equals` and `one_of` together must both hold: keep them as separate tests.
                if c.equals.is_some() {
                    tests.push(Test::OneOf(exp));
                    exp = Vec::new();
                }
                exp.extend(list.iter().map(expected));
            }
            tests.push(Test::OneOf(exp));
        }
        if let Some(terms) = &c.contains {
            let terms = terms.to_vec();
            if terms.is_empty() || terms.iter().any(|t| t.is_empty()) {
                self.err(&format!("{path}.contains"), "`contains:` needs non-empty text", None);
            } else {
                let alternation: Vec<String> = terms.iter().map(|t| regex::escape(t)).collect();
                let src = format!("(?i:{})", alternation.join("|"));
                self.pattern(&src, slot, &format!("{path}.contains"), &mut tests);
            }
        }
        if let Some(words) = &c.keywords {
            let words = words.to_vec();
            let kpath = format!("{path}.keywords");
            if words.is_empty() {
                self.err(&kpath, "empty `keywords:` list", Some("list at least one word, e.g. `keywords: [invoice, refund]`".into()));
            } else if let Some(w) = words.iter().find(|w| w.trim().is_empty() || w.trim() != w.as_str()) {
                self.err(
                    &kpath,
                    format!("keyword `{w}` is empty or has spaces at its ends"),
                    Some("keywords match whole words; write them without surrounding spaces".into()),
                );
            } else {
                self.pattern(&words_regex(&words), slot, &kpath, &mut tests);
            }
        }
        if let Some(re) = &c.regex {
            self.pattern(re, slot, &format!("{path}.regex"), &mut tests);
        }
        for (v, op) in [(c.lt, NumOp::Lt), (c.lte, NumOp::Lte), (c.gt, NumOp::Gt), (c.gte, NumOp::Gte)] {
            if let Some(v) = v {
                tests.push(Test::Num(op, v));
            }
        }
        if let Some(d) = &c.before {
            if let Some(t) = self.date(d, &format!("{path}.before")) {
                tests.push(Test::Before(t));
            }
        }
        if let Some(d) = &c.after {
            if let Some(t) = self.date(d, &format!("{path}.after")) {
                tests.push(Test::AtOrAfter(t));
            }
        }
        if let Some(d) = &c.within {
            if let Some(s) = self.duration(d, &format!("{path}.within")) {
                tests.push(Test::AtOrAfter(self.as_of - s));
            }
        }
        if let Some(d) = &c.older_than {
            if let Some(s) = self.duration(d, &format!("{path}.older_than")) {
                tests.push(Test::Before(self.as_of - s));
            }
        }
        (self.errors.len() == before).then_some(Cond::Leaf { slot, tests })
    }

    fn pattern(&mut self, src: &str, slot: usize, path: &str, tests: &mut Vec<Test>) {
        // The size limit keeps a pathological pattern from eating memory at compile time.
        match RegexBuilder::new(src).size_limit(4 << 20).build() {
            Ok(re) => {
                self.patterns.push(re);
                self.pattern_slot.push(slot);
                self.pattern_keywords.push(whole_words(src));
                tests.push(Test::Pattern(self.patterns.len() - 1));
            }
            Err(e) => {
                let detail = e.to_string();
                let last = detail.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
                let last = last.trim_start_matches("error: ");
                self.err(
                    path,
                    format!("invalid regex `{src}`: {last}"),
                    Some("see https://docs.rs/regex/#syntax; escape literal characters such as `(`, `[`, `+` with `\\`".into()),
                );
            }
        }
    }

    fn date(&mut self, s: &str, path: &str) -> Option<i64> {
        let t = parse_timestamp(s.as_bytes());
        if t.is_none() {
            self.err(path, format!("`{s}` is not a date"), Some("write `2024-05-01` or `2024-05-01T09:00:00Z`".into()));
        }
        t
    }

    fn duration(&mut self, s: &str, path: &str) -> Option<i64> {
        match humantime::parse_duration(s) {
            Ok(d) => Some(i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2)),
            Err(e) => {
                self.err(path, format!("`{s}` is not a duration: {e}"), Some("write e.g. `1d`, `12h`, `30min`".into()));
                None
            }
        }
    }
}

fn expected(s: &Scalar) -> Expected {
    match s {
        Scalar::Bool(b) => Expected::Bool(*b),
        Scalar::Number(n) => Expected::Number(*n),
        Scalar::Text(t) => Expected::Text(t.trim().to_lowercase()),
    }
}
