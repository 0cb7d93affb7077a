//! Arbitrary record values through every output of the template service. Short by default (see
//! `cases`); `PROPTEST_CASES=20000 cargo test --lib plan::templates::proptests` runs it longer.

use proptest::prelude::*;
use serde_json::json;

use super::*;

const SECRET: &str = "s3cr3t-VALUE";
const PARTIAL: &str = "PARTIAL-BODY";

/// Templates as a workflow writes them; every `{{...}}` in here is the author's, never the data's.
const SOURCES: &[&str] = &[
    "{{item.a}}",
    "[{{item.a}}|{{item.b}}]",
    "{{upper item.a}}",
    "{{trim item.a}}",
    "{{default item.a \"none\"}}",
    "{{#if item.a}}{{item.a}}{{/if}}",
];

/// What each source must render to, from the raw values: the template's own text as written and
/// each value escaped once by `esc`. Anything else would mean the data was read as a template.
fn expected(i: usize, a: &str, b: &str, esc: fn(&str) -> String) -> String {
    match i {
        0 => esc(a),
        1 => format!("[{}|{}]", esc(a), esc(b)),
        2 => esc(&a.to_uppercase()),
        3 => esc(a.trim()),
        4 if a.is_empty() => esc("none"),
        4 => esc(a),
        5 if a.is_empty() => String::new(),
        5 => esc(a),
        _ => unreachable!(),
    }
}

/// Pieces a hostile record is made of: markup, line breaks, NUL, terminal escapes, Handlebars
/// syntax naming a secret, a partial, a raw block or a comment, and `../` paths.
const HOSTILE: &[&str] = &[
    "<script>alert(1)</script>",
    "\r\n",
    "\n",
    "\r",
    "\0",
    "\u{1b}[31m",
    "\u{1b}]0;title\u{7}",
    "{{secrets.X}}",
    "{{{secrets.X}}}",
    "{{> partial}}",
    "{{#each secrets}}{{this}}{{/each}}",
    "{{!-- c --}}",
    "\\{{secrets.X}}",
    "{{",
    "}}",
    "../../etc/passwd",
    "Eve, \"x\" <eve@evil.test>",
    "Bcc: all@evil.test",
    "\t",
    "&amp;",
    "# - 1. *_~`|[]()",
    "\u{202e}",
    "\u{fffd}",
];

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(HOSTILE).prop_map(str::to_string),
        3 => any::<String>(),
        // Bytes that are not UTF-8: the readers refuse such a row, and a value that got through
        // some other way (JSON's `\ud800` is replaced) holds U+FFFD where the bytes were.
        1 => proptest::collection::vec(any::<u8>(), 0..16).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        20 => proptest::collection::vec(piece(), 0..8).prop_map(|p| p.concat()),
        // A 1 MB field, with the hostile piece at its end where a length cut would hide it.
        1 => piece().prop_map(|p| format!("{}{p}", "x".repeat(1 << 20))),
    ]
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(48)
}

fn templates() -> (Templates, Vec<TemplateRef>) {
    let mut t = Templates::new();
    let all = [Output::Text, Output::Html, Output::Markdown, Output::Header];
    t.add_partial("partial", PARTIAL, &all).unwrap();
    let mut refs = Vec::new();
    for o in all {
        for (i, src) in SOURCES.iter().enumerate() {
            refs.push(t.add_as(&format!("t{i}.{o:?}"), src, o).unwrap());
        }
    }
    (t, refs)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn record_values_are_rendered_literally_never_as_templates(a in value(), b in value()) {
        let (t, refs) = templates();
        let ctx = json!({"item": {"a": a, "b": b}, "secrets": {"X": SECRET}});
        for r in &refs {
            let i: usize = r.0[1..r.0.find('.').unwrap()].parse().unwrap();
            let esc: fn(&str) -> String = match r.1 {
                Output::Text | Output::Header => str::to_string,
                Output::Html => escape_html,
                Output::Markdown => escape_markdown,
            };
            let want = expected(i, &a, &b, esc);
            match t.render(r, &ctx) {
                Ok(got) => {
                    prop_assert!(got == want, "{}: data changed in rendering", r.0);
                    prop_assert!(!got.contains(SECRET) && !got.contains(PARTIAL), "{}: data was run as a template", r.0);
                    if r.1 == Output::Header {
                        prop_assert!(!got.contains(['\r', '\n', '\0']), "{}: a line break got into a header", r.0);
                    }
                }
                // Only a header refuses a value, and only one with a control character in it.
                Err(e) => {
                    prop_assert_eq!(r.1, Output::Header, "{}: {}", r.0, e.0);
                    prop_assert!(want.chars().any(|c| c.is_control() && c != '\t'), "{}: refused a one-line value", r.0);
                    prop_assert!(!e.0.contains(SECRET), "{}: the refusal shows a secret", r.0);
                }
            }
        }
    }
}

/// The generator really does produce what the property is about (it could drift to only
/// harmless strings and pass forever).
#[test]
fn the_generator_makes_hostile_values() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let vals: Vec<String> = (0..400).map(|_| value().new_tree(&mut runner).unwrap().current()).collect();
    for needle in ["{{secrets.X}}", "{{> partial}}", "\r\n", "\0", "<script>", "\u{1b}["] {
        assert!(vals.iter().any(|v| v.contains(needle)), "no value with {needle:?}");
    }
    assert!(vals.iter().any(|v| v.len() > 1 << 20), "no 1 MB value");
}
