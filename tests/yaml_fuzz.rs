//! Property test of the workflow parser and validator (spec + plan, what `cxflow validate` runs):
//! arbitrary text, and the shipped and broken workflows mutated (a character changed, a tab or
//! an alias put in, lines swapped, the file cut short), never panic, and every error points at a
//! line and column inside the file. A few seconds in the normal suite; longer by hand with
//! `PROPTEST_CASES=20000 cargo test --release --test yaml_fuzz` (docs/security.md).

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;

/// The corpus the mutations start from: every shipped and every broken workflow.
fn seeds() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in ["workflows", "tests/broken"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir)).unwrap().flatten().map(|e| e.path()).collect();
        files.sort();
        out.extend(files.iter().filter(|p| p.extension().is_some_and(|e| e == "yaml")).map(|p| std::fs::read_to_string(p).unwrap()));
    }
    assert!(out.len() > 40, "the corpus has {} files", out.len());
    out
}

/// Text pieces that YAML and the validator treat specially.
const PIECES: &[&str] = &[
    "\t",
    " ",
    "\n",
    ":",
    "- ",
    "#",
    "&a ",
    "*a",
    "[",
    "]",
    "{",
    "}",
    "\"",
    "'",
    "|",
    ">",
    "!!str ",
    "~",
    "\u{feff}",
    "{{",
    "}}",
    "é",
    "0x1F",
    "-1",
    "1e400",
    "4294967296",
    "steps:",
    "id: x",
    "for_each: ",
    "<<: *a",
    "? ",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
];

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, usize),
    Delete(usize, usize),
    SwapLines(usize, usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0..PIECES.len()).prop_map(|(at, p)| Edit::Insert(at, p)),
        (any::<usize>(), 1usize..20).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

/// The character boundary at or before `at` (taken modulo the length).
fn boundary(s: &str, at: usize) -> usize {
    let mut i = at % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(mut s: String, e: &Edit) -> String {
    match *e {
        Edit::Insert(at, p) => s.insert_str(boundary(&s, at), PIECES[p]),
        Edit::Delete(at, n) => {
            let a = boundary(&s, at);
            let b = boundary(&s, a.saturating_add(n).min(s.len()));
            s.replace_range(a..b.max(a), "");
        }
        Edit::SwapLines(a, b) => {
            let mut lines: Vec<&str> = s.lines().collect();
            if !lines.is_empty() {
                let n = lines.len();
                lines.swap(a % n, b % n);
            }
            s = lines.join("\n");
        }
        Edit::Truncate(at) => s.truncate(boundary(&s, at)),
    }
    s
}

/// Runs spec + plan over `src`; every error must point inside the text.
fn check(src: &str) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let file = Path::new("w.yaml");
    let errors = match cxflow::spec::parse(file, src.to_string()) {
        Err(ds) => ds.0,
        Ok(spec) => {
            let config = cxflow::config::Config::default();
            match cxflow::plan::build(Arc::new(spec), &config, dir.path(), &cxflow::steps::registry::REGISTRY) {
                Ok(_) => Vec::new(),
                Err(ds) => ds.0,
            }
        }
    };
    // Lines as the diagnostic counts them: a byte-order mark is not a character of line 1.
    let text = src.strip_prefix('\u{feff}').unwrap_or(src);
    let lines: Vec<&str> = text.split('\n').collect();
    for d in errors {
        prop_assert!(d.line >= 1 && d.line <= lines.len(), "line {} of {} in:\n{d}\n--- source:\n{src:?}", d.line, lines.len());
        let width = lines[d.line - 1].trim_end_matches('\r').chars().count();
        prop_assert!(d.col >= 1 && d.col <= width + 1, "column {} of {width} in:\n{d}\n--- source:\n{src:?}", d.col);
        prop_assert!(!d.message.is_empty());
    }
    Ok(())
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_workflows_never_panic_and_point_inside_the_file(seed in any::<prop::sample::Index>(), edits in prop::collection::vec(edit(), 1..6)) {
        let seeds = seeds();
        let src = edits.iter().fold(seed.get(&seeds).clone(), apply);
        check(&src)?;
    }

    #[test]
    fn arbitrary_text_never_panics(src in "(\\PC|[ \\t\\n:#&*!|>\\[\\]{}'\"-]){0,200}") {
        check(&src)?;
    }
}
