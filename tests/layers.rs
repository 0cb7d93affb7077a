//! The layer rule, checked from the source: data flows spec → plan → engine → steps → store,
//! and a module may name (`crate::x`) only modules of its own layer or an earlier one. The
//! store and the steps meet only through the traits the engine defines (`RunLog`, the step
//! contract), so neither names the other. The application layer (commands, the scheduler
//! daemon, the demo portal) wires them together and may name anything.
//!
//! Test code (`tests.rs` files and everything after `#[cfg(test)]`) is not checked: a test may
//! wire real parts from any layer.

use std::path::{Path, PathBuf};

/// The layer of each top-level module of `src/`, earliest first.
const LAYERS: &[(&str, &[&str])] = &[
    // What the operating system says about processes: below everything that records them.
    ("os", &["process"]),
    ("spec", &["spec"]),
    // The one place strings become typed things: plans, settings, secrets, schedule logic.
    ("plan", &["plan", "config", "secrets", "schedule"]),
    ("engine", &["engine"]),
    ("steps", &["steps"]),
    ("store", &["store"]),
    ("app", &["cli", "scheduler", "demo_portal", "metrics", "lib", "main"]),
];

/// Pairs that the order alone would allow but the design does not: the two ends of the engine's
/// interfaces never name each other.
const FORBIDDEN: &[(&str, &str)] = &[("store", "steps")];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&module))
}

/// `src/engine/items.rs` → `engine`; `src/config.rs` → `config`.
fn module_of(rel: &Path) -> String {
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().to_string();
    first.strip_suffix(".rs").map(str::to_string).unwrap_or(first)
}

/// The source without its test code.
fn non_test(src: &str, path: &Path) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    // `#[cfg(test)] mod tests;` only declares a test file (checked on its own, as `tests.rs`);
    // any other `#[cfg(test)]` starts the test code, which runs to the end of the file.
    let mut out = String::new();
    let mut rest = src;
    while let Some(i) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..i]);
        let after = rest[i + "#[cfg(test)]".len()..].trim_start();
        let decl = after.starts_with("mod ") && after.find(';').is_some_and(|semi| after.find('{').is_none_or(|brace| semi < brace));
        if !decl {
            return out;
        }
        rest = &after[after.find(';').unwrap_or(0) + 1..];
    }
    out.push_str(rest);
    out
}

/// Every `crate::<module>` named in `src`, with its line number; comments are skipped, and a
/// group (`use crate::{engine, spec::X}`, over several lines too) names each of its members.
fn crate_refs(src: &str) -> Vec<(usize, String)> {
    let code: String = src.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    let line_at = |i: usize| code[..i].matches('\n').count() + 1;
    let ident = |s: &str| -> String { s.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect() };
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(k) = code[from..].find("crate::") {
        let i = from + k;
        let after = i + "crate::".len();
        from = after;
        // `$crate::` in macros, and names that merely end in `crate`, are not this crate.
        if code[..i].chars().last().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if !code[after..].starts_with('{') {
            let name = ident(&code[after..]);
            if !name.is_empty() {
                out.push((line_at(i), name));
            }
            continue;
        }
        // A group: split its top level at commas.
        let (mut depth, mut start) = (0usize, after + 1);
        for (j, c) in code[after..].char_indices() {
            let at = after + j;
            match c {
                '{' => depth += 1,
                '}' | ',' if depth == 1 => {
                    let name = ident(&code[start..at]);
                    if !name.is_empty() {
                        out.push((line_at(start), name));
                    }
                    start = at + 1;
                    if c == '}' {
                        break;
                    }
                }
                '}' => depth -= 1,
                _ => {}
            }
        }
    }
    out
}

/// The violations in one file: `path:line: <module> (layer) names <target> (layer)`.
fn check_file(rel: &Path, src: &str) -> Vec<String> {
    let module = module_of(rel);
    let Some(own) = layer_of(&module) else {
        return vec![format!("{}: module `{module}` is in no layer; add it to LAYERS in tests/layers.rs", rel.display())];
    };
    let mut bad = Vec::new();
    for (line, target) in crate_refs(&non_test(src, rel)) {
        let Some(theirs) = layer_of(&target) else { continue };
        let (own_name, their_name) = (LAYERS[own].0, LAYERS[theirs].0);
        if theirs > own || FORBIDDEN.contains(&(own_name, their_name)) {
            bad.push(format!(
                "{}:{line}: `{module}` ({own_name} layer) names `crate::{target}` ({their_name} layer); \
                 an earlier layer must not know a later one: move the code, or go through a trait the engine defines",
                rel.display()
            ));
        }
    }
    bad
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn imports_follow_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 50, "found only {} source files under {}", files.len(), src.display());
    let mut bad = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        bad.extend(check_file(rel, &std::fs::read_to_string(f).unwrap()));
    }
    assert!(bad.is_empty(), "{} import(s) against the layers:\n{}", bad.len(), bad.join("\n"));
}

#[test]
fn a_backward_import_is_caught() {
    let spec = Path::new("spec/model.rs");
    assert_eq!(check_file(spec, "use crate::steps::browser::BrowserSpec;\n").len(), 1);
    assert_eq!(check_file(spec, "use crate::{plan, engine::Plan};\n").len(), 2);
    assert_eq!(check_file(spec, "use crate::{\n    plan::{A, B},\n    engine,\n};\n").len(), 2, "a group over several lines");
    let step = Path::new("steps/send_email/mod.rs");
    let e = check_file(step, "fn f() {\n    let s: crate::store::Store;\n}\n");
    assert_eq!(
        e,
        ["steps/send_email/mod.rs:2: `steps` (steps layer) names `crate::store` (store layer); an earlier layer must not know a later one: move the code, or go through a trait the engine defines"]
    );
    assert!(check_file(Path::new("store/mod.rs"), "use crate::steps::REGISTRY;\n").len() == 1, "store and steps never meet");
    // Allowed: a later layer naming an earlier one, comments, and test code.
    assert!(check_file(step, "use crate::engine::Delivery;\nuse crate::plan::PlanCx;\n// crate::store is not named\n").is_empty());
    assert!(check_file(Path::new("engine/mod.rs"), "use crate::plan::Plan;\n#[cfg(test)]\nmod tests { use crate::steps::REGISTRY; }\n")
        .is_empty());
    assert_eq!(check_file(Path::new("newthing.rs"), "").len(), 1, "a module in no layer is reported");
    // A test file declared at the top does not hide the code below it.
    assert_eq!(check_file(spec, "#[cfg(test)]\nmod tests;\nuse crate::store::Store;\n").len(), 1);
}
