//! Whole-word keyword lists, matched for all rules on one field with one Aho-Corasick
//! automaton and a word-boundary check at each match.
//!
//! A list means exactly what the regex `(?i)\b(?:w1|w2|...)\b` means, and a regex written in
//! that form (`(?i)\b(?:invoice|refund)\b`, `(?i)\b(invoice|refund)\b`, `(?i)\binvoice\b`) is
//! recognised and matched the same way, so rules written either way get the fast path. What
//! makes it exact:
//! - `\b` is Unicode's, decided like `regex` does: the characters on either side of the match
//!   are decoded (invalid UTF-8 is no word character) and looked up in regex-syntax's own
//!   table, so `é` is a word character and `app` does not match in `appé`.
//! - `(?i)` is regex-syntax's simple case folding. The automaton folds ASCII only, so each
//!   non-ASCII letter of a keyword is spelled out in every case the regex accepts (`ü`/`Ü`).
//!   A few non-ASCII characters equal an ASCII letter under that folding (`K`, the Kelvin sign,
//!   is `k`; `ſ` is `s`): a text containing one of those is matched by the regex itself.
//! - The automaton reports every occurrence (overlapping), so `charge|charged` finds
//!   `charged` even though `charge` is tried first; the keywords reported for a digest are then
//!   chosen as the regex would choose them (leftmost, then the first keyword in the list).
//!
//! The automaton is aho-corasick's DFA, walked by `scan` itself: through `AhoCorasick`'s
//! overlapping iterator (a call through a trait object per match, a search state kept between
//! calls) the same walk took a third more time on the routing benchmark's short texts.

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind, StartKind};
use regex_syntax::hir::{Class, HirKind};

/// Most spellings one keyword may expand to (one per case combination of its non-ASCII
/// letters); a keyword needing more leaves its rule to the regex.
const MAX_SPELLINGS: usize = 64;

/// The keywords of a regex of the form `(?i)\b(?:w1|w2)\b` (or `(w1|w2)`, or one word without a
/// group), unescaped; `None` for any other regex, which is then matched as a regex.
pub fn whole_words(src: &str) -> Option<Vec<String>> {
    let body = src.strip_prefix(r"(?i)\b")?.strip_suffix(r"\b")?;
    let (inner, grouped) = match body.strip_prefix("(?:").or_else(|| body.strip_prefix('(')) {
        Some(b) => (b.strip_suffix(')')?, true),
        None => (body, false),
    };
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '|' if grouped && !cur.is_empty() => words.push(std::mem::take(&mut cur)),
            '\\' => match chars.next() {
                Some(e) if regex_syntax::is_meta_character(e) => cur.push(e),
                _ => return None,
            },
            // Literal outside a class; the other meta characters mean something.
            '-' | '&' | '~' | '#' => cur.push(c),
            c if regex_syntax::is_meta_character(c) => return None,
            c => cur.push(c),
        }
    }
    if cur.is_empty() {
        return None;
    }
    words.push(cur);
    Some(words)
}

/// The regex a keyword list means.
pub fn words_regex(words: &[String]) -> String {
    let alternation: Vec<String> = words.iter().map(|w| regex::escape(w)).collect();
    format!(r"(?i)\b(?:{})\b", alternation.join("|"))
}

/// All whole-word patterns on one field.
#[derive(Debug)]
pub struct WordIndex {
    pub slot: usize,
    dfa: DFA,
    /// For each automaton pattern: the rule pattern it belongs to and the keyword's position in
    /// that pattern's list.
    owners: Vec<(usize, usize)>,
    /// The rule patterns (indices into `RuleSet::patterns`) this index decides.
    pub patterns: Vec<usize>,
    /// Finders of the non-ASCII characters that `(?i)` equates with an ASCII character of a
    /// keyword: a text containing one is left to the regexes.
    folds: Vec<memchr::memmem::Finder<'static>>,
}

/// A keyword occurrence with a word boundary at both ends.
#[derive(Debug, Clone, Copy)]
pub struct Hit {
    pub start: usize,
    pub end: usize,
    pub pattern: usize,
    pub alt: usize,
}

impl WordIndex {
    /// `lists` are (rule pattern, keywords). Lists whose keywords cannot be spelled out are
    /// left out (returned second): they stay regexes.
    pub fn build(slot: usize, lists: &[(usize, Vec<String>)]) -> (Option<WordIndex>, Vec<usize>) {
        let mut spelled = Vec::new();
        let mut owners = Vec::new();
        let mut patterns = Vec::new();
        let mut left = Vec::new();
        let mut folds: Vec<Vec<u8>> = Vec::new();
        for (p, words) in lists {
            let Some(sp) = words.iter().map(|w| spellings(w)).collect::<Option<Vec<_>>>() else {
                left.push(*p);
                continue;
            };
            for (alt, list) in sp.into_iter().enumerate() {
                for s in list {
                    spelled.push(s);
                    owners.push((*p, alt));
                }
            }
            patterns.push(*p);
            for c in words.iter().flat_map(|w| w.chars()).filter(char::is_ascii) {
                for f in case_class(c).unwrap_or_default().into_iter().filter(|f| !f.is_ascii()) {
                    let f = f.to_string().into_bytes();
                    if !folds.contains(&f) {
                        folds.push(f);
                    }
                }
            }
        }
        if patterns.is_empty() {
            return (None, left);
        }
        // Without a prefilter the start state is not special, so `scan` stops only at matches.
        // A list too large for a DFA stays a regex: exact, only slower.
        let built = DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Unanchored)
            .prefilter(false)
            .build(&spelled);
        match built {
            Ok(dfa) => {
                let folds = folds.iter().map(|f| memchr::memmem::Finder::new(f).into_owned()).collect();
                (Some(WordIndex { slot, dfa, owners, patterns, folds }), left)
            }
            Err(_) => {
                left.extend(patterns);
                (None, left)
            }
        }
    }

    /// Whether `text` must be left to the regexes (it contains a character that case-folds to
    /// an ASCII letter of a keyword).
    pub fn needs_regex(&self, text: &[u8]) -> bool {
        !text.is_ascii() && self.folds.iter().any(|f| f.find(text).is_some())
    }

    /// Every keyword occurrence in `text` with a word boundary at both ends, in the order an
    /// overlapping search reports them (by end, then as the automaton lists them).
    pub fn scan(&self, text: &[u8], mut hit: impl FnMut(Hit)) {
        let d = &self.dfa;
        let Ok(mut sid) = d.start_state(Anchored::No) else { return };
        let mut at = 0;
        while at < text.len() {
            (at, sid) = advance(d, text, at, sid);
            if d.is_dead(sid) {
                return;
            }
            if d.is_match(sid) {
                self.report(text, at, sid, &mut hit);
            }
        }
    }

    /// The keywords that end at `end` (in match state `sid`) with a boundary at both ends.
    #[inline(never)]
    fn report(&self, text: &[u8], end: usize, sid: StateID, hit: &mut impl FnMut(Hit)) {
        let d = &self.dfa;
        for k in 0..d.match_len(sid) {
            let id = d.match_pattern(sid, k);
            let start = end - d.pattern_len(id);
            if is_boundary(text, start) && is_boundary(text, end) {
                let (pattern, alt) = self.owners[id.as_usize()];
                hit(Hit { start, end, pattern, alt });
            }
        }
    }
}

/// Walks `text` from `at` in state `sid` up to the next special state (dead or match) or the
/// end: where it stopped (after the byte that led there) and the state. Kept apart from the
/// matches' handling, the state stays in a register (with it inlined, the state went through
/// the stack on every byte).
#[inline(never)]
fn advance(d: &DFA, text: &[u8], mut at: usize, mut sid: StateID) -> (usize, StateID) {
    while let Some(&b) = text.get(at) {
        sid = d.next_state(Anchored::No, sid, b);
        at += 1;
        if d.is_special(sid) {
            break;
        }
    }
    (at, sid)
}

/// Calls `out` with the matches of rule pattern `p` that the regex's `find_iter` would give:
/// non-overlapping, leftmost first, and at one position the first keyword of the list.
/// `hits` is reordered.
pub fn leftmost_first(hits: &mut [Hit], p: usize, text: &[u8], out: &mut dyn FnMut(&[u8])) {
    hits.sort_unstable_by_key(|h| (h.pattern != p, h.start, h.alt));
    let mut pos = 0;
    for h in hits.iter().take_while(|h| h.pattern == p) {
        if h.start >= pos {
            out(&text[h.start..h.end]);
            pos = h.end;
        }
    }
}

/// Every byte string the regex `(?i)<word>` matches, up to the automaton's ASCII case
/// folding; `None` when there are too many.
fn spellings(word: &str) -> Option<Vec<Vec<u8>>> {
    let mut out: Vec<Vec<u8>> = vec![Vec::new()];
    for c in word.chars() {
        let alts = if c.is_ascii() { vec![c] } else { case_class(c)? };
        if out.len() * alts.len() > MAX_SPELLINGS {
            return None;
        }
        out = out
            .iter()
            .flat_map(|prefix| {
                alts.iter().map(move |a| {
                    let mut s = prefix.clone();
                    s.extend_from_slice(a.encode_utf8(&mut [0; 4]).as_bytes());
                    s
                })
            })
            .collect();
    }
    Some(out)
}

/// The characters `(?i)c` matches, as regex-syntax computes them.
fn case_class(c: char) -> Option<Vec<char>> {
    let hir = regex_syntax::parse(&format!("(?i){}", regex_syntax::escape(c.encode_utf8(&mut [0; 4])))).ok()?;
    match hir.kind() {
        HirKind::Literal(lit) => std::str::from_utf8(&lit.0).ok().map(|s| s.chars().collect()),
        HirKind::Class(Class::Unicode(cls)) => {
            let mut v = Vec::new();
            for r in cls.ranges() {
                for ch in r.start()..=r.end() {
                    v.push(ch);
                    if v.len() > MAX_SPELLINGS {
                        return None;
                    }
                }
            }
            Some(v)
        }
        _ => None,
    }
}

/// Unicode `\b` at `at`, as regex-automata decides it on a byte haystack.
fn is_boundary(text: &[u8], at: usize) -> bool {
    word_before(text, at) != word_after(text, at)
}

fn word_before(text: &[u8], at: usize) -> bool {
    match at.checked_sub(1).map(|i| text[i]) {
        None => false,
        Some(b) if b.is_ascii() => is_word_byte(b),
        Some(_) => decode_last(&text[..at]).is_some_and(regex_syntax::is_word_character),
    }
}

fn word_after(text: &[u8], at: usize) -> bool {
    match text.get(at) {
        None => false,
        Some(&b) if b.is_ascii() => is_word_byte(b),
        Some(_) => decode(&text[at..]).is_some_and(regex_syntax::is_word_character),
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The first character of `bytes`; `None` when empty or not valid UTF-8 there (regex-automata's
/// `utf8::decode`).
fn decode(bytes: &[u8]) -> Option<char> {
    let len = match *bytes.first()? {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => return None,
    };
    std::str::from_utf8(bytes.get(..len)?).ok()?.chars().next()
}

/// The last character of `bytes`, found like regex-automata's `utf8::decode_last`: back to the
/// nearest leading byte within four, then decoded forward from there.
fn decode_last(bytes: &[u8]) -> Option<char> {
    let mut start = bytes.len().checked_sub(1)?;
    let limit = bytes.len().saturating_sub(4);
    while start > limit && bytes[start] & 0b1100_0000 == 0b1000_0000 {
        start -= 1;
    }
    decode(&bytes[start..])
}

#[cfg(test)]
mod tests;
