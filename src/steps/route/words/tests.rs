//! The automaton against the `regex` crate on generated and adversarial texts: same yes/no, same
//! matched keywords, for every list, including non-ASCII text and invalid UTF-8.

use super::*;
use regex::bytes::Regex;

/// Keyword lists, each checked as `keywords:` would write it.
const LISTS: &[&[&str]] = &[
    &["app"],
    &["invoice", "refund", "charge"],
    &["charge", "charged", "charged twice"],
    &["log in", "e-mail", "c++", "a.b", "#tag", "_id_"],
    &["rückerstattung", "déçu", "envío", "abîmé"],
    &["straße", "über"],
    &["kk", "ss", "sk"],
    &["éa", "ÉB"],
    &["ǅ", "ω"],
    &["x"],
    &["-", "'s"],
];

/// Pieces texts are made of: keywords and their neighbours in every case, word and non-word
/// characters from several scripts, combining marks, joiners and broken UTF-8.
const PIECES: &[&[u8]] = &[
    b"app",
    b"App",
    b"APP",
    b"happy",
    b"apps",
    b"invoice",
    b"INVOICE",
    b"Refund",
    b"charge",
    b"charged",
    b"CHARGED twice",
    b"log in",
    b"LOG IN",
    b"e-mail",
    b"c++",
    b"a.b",
    b"aXb",
    b"#tag",
    b"_id_",
    b"x",
    b"X",
    b"-",
    b"'s",
    b"'S",
    b"kk",
    b"ss",
    b"sk",
    b"SK",
    b" ",
    b"  ",
    b",",
    b".",
    b"_",
    b"1",
    b"0",
    b"-",
    b"\t",
    b"\n",
    b"a",
    b"b",
    b"z",
    b"Z",
    "é".as_bytes(),
    "É".as_bytes(),
    "ü".as_bytes(),
    "Ü".as_bytes(),
    "ß".as_bytes(),
    "ẞ".as_bytes(),
    "ı".as_bytes(),
    "İ".as_bytes(),
    "\u{212A}".as_bytes(), // Kelvin sign: `(?i)k`
    "ſ".as_bytes(),        // long s: `(?i)s`
    "\u{301}".as_bytes(),  // combining acute: a word character (mark)
    "\u{200D}".as_bytes(), // zero-width joiner: a word character (join control)
    "\u{A0}".as_bytes(),   // no-break space: not a word character
    "٣".as_bytes(),        // Arabic-Indic digit three: a word character
    "日本".as_bytes(),
    "🙂".as_bytes(),
    "’".as_bytes(),
    "ǅ".as_bytes(),
    "Ǆ".as_bytes(),
    "ǆ".as_bytes(),
    "Ω".as_bytes(),
    "ω".as_bytes(),
    "\u{2126}".as_bytes(), // Ohm sign: `(?i)ω`
    "rückerstattung".as_bytes(),
    "RÜCKERSTATTUNG".as_bytes(),
    "Rückerstattungen".as_bytes(),
    "déçu".as_bytes(),
    "DÉÇU".as_bytes(),
    "envío".as_bytes(),
    "ENVÍO".as_bytes(),
    "abîmé".as_bytes(),
    "straße".as_bytes(),
    "STRASSE".as_bytes(),
    "über".as_bytes(),
    "Über".as_bytes(),
    "éa".as_bytes(),
    "éA".as_bytes(),
    "ÉB".as_bytes(),
    "éb".as_bytes(),
    b"\xFF",
    b"\x80",
    b"\xC3",
    b"\xE2\x84",
    b"\xC3\xA9\xA9",
    b"\xF0\x9F\x99",
    b"\xED\xA0\x80",
    b"\xC0\xAF",
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn texts() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = PIECES.iter().map(|p| p.to_vec()).collect();
    out.push(Vec::new());
    // Every piece between every two of a few neighbours.
    for n in [&b""[..], b" ", b"a", b"_", "é".as_bytes(), "\u{301}".as_bytes(), b"\xFF", b"\xC3"] {
        for p in PIECES {
            out.push([n, p, n].concat());
            out.push([n, p].concat());
            out.push([p, n].concat());
        }
    }
    let mut r = Rng(42);
    for _ in 0..20_000 {
        let mut t = Vec::new();
        for _ in 0..(1 + r.next() % 8) {
            t.extend_from_slice(PIECES[(r.next() % PIECES.len() as u64) as usize]);
        }
        out.push(t);
    }
    out
}

/// What the index says for pattern 0: matched, and the keywords `find_iter` would report.
fn fast(ix: &WordIndex, text: &[u8]) -> (bool, Vec<Vec<u8>>) {
    let mut hits = Vec::new();
    ix.scan(text, &mut |h| hits.push(h));
    let mut found = Vec::new();
    leftmost_first(&mut hits, 0, text, &mut |m| found.push(m.to_vec()));
    (!found.is_empty(), found)
}

fn slow(re: &Regex, text: &[u8]) -> (bool, Vec<Vec<u8>>) {
    (re.is_match(text), re.find_iter(text).map(|m| m.as_bytes().to_vec()).collect())
}

fn check(src: &str, words: &[String], texts: &[Vec<u8>]) -> usize {
    let re = Regex::new(src).unwrap();
    let (ix, left) = WordIndex::build(0, &[(0, words.to_vec())]);
    assert!(left.is_empty(), "{src} should be spelled out");
    let ix = ix.unwrap();
    let mut compared = 0;
    for t in texts {
        let want = slow(&re, t);
        if ix.needs_regex(t) {
            // Left to the regex; that must only happen for the fold characters.
            let s = String::from_utf8_lossy(t);
            assert!(s.contains(['\u{212A}', 'ſ', '\u{2126}', 'ẞ', 'ß']), "{src}: {s:?} needlessly left to the regex");
            continue;
        }
        compared += 1;
        assert_eq!(fast(&ix, t), want, "{src} on {:?}", String::from_utf8_lossy(t));
    }
    compared
}

#[test]
fn keyword_lists_match_exactly_like_the_regex() {
    let texts = texts();
    for list in LISTS {
        let words: Vec<String> = list.iter().map(|w| w.to_string()).collect();
        let src = words_regex(&words);
        assert_eq!(whole_words(&src), Some(words.clone()), "{src} is recognised");
        let compared = check(&src, &words, &texts);
        assert!(compared > texts.len() / 2, "{src}: only {compared} texts compared");
    }
}

#[test]
fn fast_and_regex_agree_on_the_cases_that_motivate_them() {
    let (ix, _) = WordIndex::build(0, &[(0, vec!["app".into()])]);
    let ix = ix.unwrap();
    assert!(fast(&ix, b"App crashes").0);
    assert!(!fast(&ix, b"happy").0);
    assert!(!fast(&ix, "appé".as_bytes()).0, "é is a word character");
    assert!(!fast(&ix, "app\u{301}".as_bytes()).0, "a combining mark is a word character");
    assert!(fast(&ix, "l’app!".as_bytes()).0);
    assert!(fast(&ix, b"\xFFapp\xC3").0, "invalid UTF-8 is no word character");
    let (ix, _) = WordIndex::build(0, &[(0, vec!["charge".into(), "charged".into()])]);
    assert_eq!(fast(&ix.unwrap(), b"charged, charge").1, vec![b"charged".to_vec(), b"charge".to_vec()]);
}

#[test]
fn regexes_in_keyword_form_are_recognised_and_others_not() {
    let w = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(whole_words(r"(?i)\b(?:invoice|refund|charge)\b"), w(&["invoice", "refund", "charge"]));
    assert_eq!(whole_words(r"(?i)\b(invoice|VAT)\b"), w(&["invoice", "VAT"]));
    assert_eq!(whole_words(r"(?i)\binvoice\b"), w(&["invoice"]));
    assert_eq!(whole_words(r"(?i)\b(?:log in|e\-mail|c\+\+|abîmé)\b"), w(&["log in", "e-mail", "c++", "abîmé"]));
    for other in [
        r"\b(?:invoice|refund)\b",      // case-sensitive
        r"(?i)(?:invoice|refund)",      // no boundaries
        r"(?i)\binvoice|refund\b",      // `\binvoice` or `refund\b`
        r"(?i)\b(?:invoice|)\b",        // an empty alternative
        r"(?i)\b(?:refunds?|charge)\b", // a quantifier
        r"(?i)\b(hack(ed)?|fraud)\b",   // a nested group
        r"(?i)\b(?:a|b)\b.*\bc\b",      // more after the group
        r"(?i)\b(?:a)|(?:b)\b",         // two groups
        r"(?i)\b(?:a\d)\b",             // an escape class
        r"(?i)\b(?:a\)\b",              // an escaped parenthesis and no group end
        r"(?i)\b(?:[ab]|c)\b",          // a class
        r"(?i)\b(?:a.b)\b",             // any character
        r"(?i)\b(?:a\ b)\b",            // an escape that is not a meta character
        r"(?i)\b(?:a|b)\B",             // not a boundary
        r"(?i-u)\b(?:a|b)\b",           // ASCII boundaries
    ] {
        assert_eq!(whole_words(other), None, "{other}");
    }
}

#[test]
fn recognised_regexes_behave_like_themselves() {
    let texts = texts();
    for src in [r"(?i)\b(invoice|VAT)\b", r"(?i)\bapp\b", r"(?i)\b(?:log in|e\-mail|c\+\+|abîmé|KK)\b"] {
        let words = whole_words(src).unwrap();
        check(src, &words, &texts);
    }
}

#[test]
fn several_lists_share_one_automaton() {
    let lists = vec![(3, vec!["app".to_string(), "crash".into()]), (7, vec!["crash".to_string(), "refund".into()])];
    let (ix, left) = WordIndex::build(2, &lists);
    let ix = ix.unwrap();
    assert!(left.is_empty());
    let text = b"App crash, refund";
    let mut hits = Vec::new();
    ix.scan(text, &mut |h| hits.push(h));
    let mut got = Vec::new();
    leftmost_first(&mut hits, 7, text, &mut |m| got.push(String::from_utf8_lossy(m).into_owned()));
    assert_eq!(got, ["crash", "refund"]);
    got.clear();
    leftmost_first(&mut hits, 3, text, &mut |m| got.push(String::from_utf8_lossy(m).into_owned()));
    assert_eq!(got, ["App", "crash"]);
}

/// `scan` walks the DFA itself; it must report exactly what aho-corasick's own overlapping
/// search reports with the boundary check, in the same order, with every list in one automaton.
#[test]
fn the_walk_reports_what_an_overlapping_search_reports() {
    let lists: Vec<(usize, Vec<String>)> = LISTS.iter().enumerate().map(|(p, l)| (p, l.iter().map(|w| w.to_string()).collect())).collect();
    let (ix, left) = WordIndex::build(0, &lists);
    let ix = ix.unwrap();
    assert!(left.is_empty());
    let mut spelled = Vec::new();
    let mut owners = Vec::new();
    for (p, words) in &lists {
        for (alt, w) in words.iter().enumerate() {
            for s in spellings(w).unwrap() {
                spelled.push(s);
                owners.push((*p, alt));
            }
        }
    }
    let ac = aho_corasick::AhoCorasick::builder().ascii_case_insensitive(true).match_kind(MatchKind::Standard).build(&spelled).unwrap();
    let mut all = texts();
    // One long text too: all of them in a row.
    all.push(all.concat());
    let mut with_hits = 0;
    for t in &all {
        let want: Vec<(usize, usize, usize, usize)> = ac
            .find_overlapping_iter(t)
            .filter(|m| is_boundary(t, m.start()) && is_boundary(t, m.end()))
            .map(|m| {
                let (p, alt) = owners[m.pattern().as_usize()];
                (m.start(), m.end(), p, alt)
            })
            .collect();
        let mut got = Vec::new();
        ix.scan(t, |h| got.push((h.start, h.end, h.pattern, h.alt)));
        assert_eq!(got, want, "on {:?}", String::from_utf8_lossy(t));
        with_hits += usize::from(!want.is_empty());
    }
    assert!(with_hits > 1000, "only {with_hits} texts with hits");
}
