//! Static check of the variables a template refers to, so that `cxflow validate` catches a
//! typo in `{{vars.survey_url}}` before a night's run, not at the first record.

use regex::Regex;
use std::sync::OnceLock;

/// The roots a template may start a path from.
pub const ROOTS: &[&str] = &["vars", "params", "secrets", "steps", "item", "run"];

/// Words that are helpers or keywords, not variables.
const KEYWORDS: &[&str] = &[
    "if", "unless", "each", "with", "lookup", "else", "this", "eq", "ne", "gt", "gte", "lt", "lte", "and", "or", "not", "len", "true",
    "false", "null", "log", "raw",
];

/// A path used in a template: `vars.survey_url` → root `vars`, rest `survey_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarRef {
    pub path: String,
    /// Used where a missing value is expected and handled (`#if`, `#unless`, `default`).
    pub guarded: bool,
    /// In a helper's place (`{{shout item.name}}`, `(shout x)`) and not a known helper: an
    /// unknown helper, not a variable. Found at any depth, since helpers do not depend on scope.
    pub call: bool,
}

/// Helpers handlebars itself provides, besides ours (`helpers::NAMES`).
const BUILTIN_HELPERS: &[&str] =
    &["if", "unless", "each", "with", "lookup", "log", "eq", "ne", "gt", "gte", "lt", "lte", "and", "or", "not", "len"];

/// The message and help for a call of a helper that does not exist.
pub fn unknown_helper(name: &str) -> (String, String) {
    let all: Vec<&str> = super::helpers::NAMES.iter().chain(BUILTIN_HELPERS).copied().collect();
    let guess =
        crate::spec::diagnostic::did_you_mean(name, all.iter().copied()).map(|s| format!("did you mean `{s}`? ")).unwrap_or_default();
    let help = format!("{guess}the helpers are: {}", all.join(", "));
    (format!("unknown helper `{name}` in template"), help)
}

impl VarRef {
    pub fn root(&self) -> &str {
        self.path.split(['.', '[']).next().unwrap_or("")
    }
    /// The first segment after the root (`survey_url` in `vars.survey_url.x`).
    pub fn first(&self) -> Option<&str> {
        let rest = self.path.strip_prefix(self.root())?.strip_prefix('.')?;
        rest.split(['.', '[']).next().filter(|s| !s.is_empty())
    }
}

/// Paths referred to at the top level of the template (inside `#each`/`#with` blocks names are
/// relative to the block and are left to strict mode at render time).
pub fn var_refs(src: &str, extra_keywords: &[&str]) -> Vec<VarRef> {
    static EXPR: OnceLock<Regex> = OnceLock::new();
    static WORD: OnceLock<Regex> = OnceLock::new();
    static STR: OnceLock<Regex> = OnceLock::new();
    let expr = EXPR.get_or_init(|| Regex::new(r"\{\{\{?~?([^}]*)\}?\}\}").expect("valid regex"));
    let word = WORD.get_or_init(|| Regex::new(r"[A-Za-z_@][A-Za-z0-9_.\-\[\]@]*").expect("valid regex"));
    let strs = STR.get_or_init(|| Regex::new(r#""[^"]*"|'[^']*'"#).expect("valid regex"));
    let mut depth = 0usize;
    let mut out = Vec::new();
    for cap in expr.captures_iter(src) {
        let inner = cap[1].trim().trim_end_matches('~').trim();
        if inner.starts_with('!') {
            continue;
        }
        let opens_scope = inner.starts_with("#each") || inner.starts_with("#with");
        if inner.starts_with("/each") || inner.starts_with("/with") {
            depth = depth.saturating_sub(1);
            continue;
        }
        // Literals become `""`: gone as words, but still there as arguments.
        let body = strs.replace_all(inner.trim_start_matches(['#', '/', '>', '^', '&']), "\"\"");
        // A partial's name (`{{> header}}`) is not a variable.
        if inner.starts_with('>') {
            continue;
        }
        let guarded = ["#if", "#unless", "default "].iter().any(|g| inner.starts_with(g)) || inner.contains("(default ");
        for m in word.find_iter(&body) {
            let w = m.as_str().trim_end_matches(['.', '-']);
            let (before, after) = (body[..m.start()].trim_end(), &body[m.end()..]);
            let has_args = after.starts_with(char::is_whitespace) && !after.trim().is_empty() && !after.trim().starts_with(')');
            let simple = !w.contains(['.', '[', '@', '/']);
            if simple && has_args && (before.is_empty() || before.ends_with('(')) {
                let known = super::helpers::NAMES.contains(&w) || BUILTIN_HELPERS.contains(&w) || KEYWORDS.contains(&w);
                if !known && !extra_keywords.contains(&w) {
                    out.push(VarRef { path: w.to_string(), guarded: false, call: true });
                }
                continue;
            }
            if depth == 0 {
                let root = w.split(['.', '[']).next().unwrap_or("");
                // `key=value` hash arguments: the key is not a variable.
                if body[body.find(w).unwrap_or(0) + w.len()..].starts_with('=') {
                    continue;
                }
                let helper = super::helpers::NAMES.contains(&root);
                if w.starts_with('@') || helper || KEYWORDS.contains(&root) || extra_keywords.contains(&root) {
                    continue;
                }
                out.push(VarRef { path: w.to_string(), guarded, call: false });
            }
        }
        if opens_scope {
            depth += 1;
        }
    }
    out
}

/// The first expression of `src` that can reach `secrets`, in any path form handlebars accepts:
/// `secrets.X`, `@root.secrets.X`, `this.secrets.X`, `./secrets/X`, `../secrets.X`, `[secrets].X`,
/// `lookup ... "secrets"`, or the whole context (`@root`, or `this` / `.` outside a block), which
/// `json`, `lookup` or `#with` can open up to its secrets. For places where a secret must never go
/// (item keys, file names): it errs on the side of refusing.
pub fn secret_path(src: &str) -> Option<String> {
    static EXPR: OnceLock<Regex> = OnceLock::new();
    static TOKEN: OnceLock<Regex> = OnceLock::new();
    let expr = EXPR.get_or_init(|| Regex::new(r"\{\{\{?~?([^}]*)\}?\}\}").expect("valid regex"));
    let token = TOKEN.get_or_init(|| Regex::new(r#""([^"]*)"|'([^']*)'|([A-Za-z0-9_@.\[\]/\-]+)"#).expect("valid regex"));
    let mut depth = 0usize;
    for cap in expr.captures_iter(src) {
        let inner = cap[1].trim().trim_end_matches('~').trim();
        if inner.starts_with('!') {
            continue;
        }
        if inner.starts_with("/each") || inner.starts_with("/with") {
            depth = depth.saturating_sub(1);
            continue;
        }
        let body = inner.trim_start_matches(['#', '/', '>', '^', '&']);
        for t in token.captures_iter(body) {
            if let Some(lit) = t.get(1).or(t.get(2)) {
                if lit.as_str().trim_matches(['[', ']']) == "secrets" && body.contains("lookup") {
                    return Some(inner.to_string());
                }
                continue;
            }
            let raw = &t[3];
            let path = normalize(raw);
            let whole_context = path.is_empty() && (raw.starts_with("@root") || raw.contains("..") || depth == 0);
            if whole_context || path == "secrets" || path.starts_with("secrets.") {
                return Some(inner.to_string());
            }
        }
        if inner.starts_with("#each") || inner.starts_with("#with") {
            depth += 1;
        }
    }
    None
}

/// `@root/[secrets].PW`, `this.secrets.PW`, `../secrets/PW` → `secrets.PW`; a reference to the
/// whole context → `""`. Only the words handlebars reads as the context are stripped.
fn normalize(raw: &str) -> String {
    let mut p = raw.replace(['[', ']'], "").replace('/', ".");
    loop {
        let before = p.len();
        for prefix in ["@root", "this", "."] {
            if p == prefix {
                p.clear();
            } else if let Some(rest) = p.strip_prefix(prefix).filter(|r| r.starts_with('.') || prefix == ".") {
                p = rest.to_string();
            }
        }
        if p.len() == before {
            return p.trim_start_matches('.').to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(src: &str) -> Vec<String> {
        var_refs(src, &[]).into_iter().map(|r| r.path).collect()
    }

    #[test]
    fn finds_top_level_paths() {
        assert_eq!(paths("Hi {{item.name}}, see {{vars.url}}?t={{ item.id }}"), ["item.name", "vars.url", "item.id"]);
        assert_eq!(paths("{{#if (eq item.kind 'x')}}{{upper item.a}}{{/if}}"), ["item.kind", "item.a"]);
        assert_eq!(paths("{{ticket}}"), ["ticket"]);
    }

    #[test]
    fn ignores_block_scoped_names_and_literals() {
        assert_eq!(paths("{{#each item.lines}}{{name}}{{/each}}{{vars.x}}"), ["item.lines", "vars.x"]);
        assert_eq!(paths("{{eq item.a \"vars.nope\"}}"), ["item.a"]);
        assert_eq!(paths("{{> header}}{{!-- {{nope}} --}}"), Vec::<String>::new());
    }

    #[test]
    fn guarded_refs() {
        let g: Vec<bool> = var_refs("{{default item.a 'x'}}{{#if item.b}}{{/if}}{{upper (default item.c 'y')}}{{item.d}}", &[])
            .into_iter()
            .map(|r| r.guarded)
            .collect();
        assert_eq!(g, [true, true, true, false]);
    }

    #[test]
    fn every_path_form_to_secrets_is_found() {
        for src in [
            "{{secrets.PW}}",
            "{{@root.secrets.PW}}",
            "{{this.secrets.PW}}",
            "{{./secrets/PW}}",
            "{{this/secrets/PW}}",
            "{{@root/secrets/PW}}",
            "{{[secrets].[PW]}}",
            "{{#each item.lines}}{{../secrets.PW}}{{/each}}",
            "{{#with item}}{{@root.secrets.PW}}{{/with}}",
            "{{lookup secrets 'PW'}}",
            "{{lookup (lookup this \"secrets\") 'PW'}}",
            "{{json @root}}",
            "{{#with this}}{{secrets.PW}}{{/with}}",
            "{{#with .}}{{x}}{{/with}}",
            "{{json ..}}",
        ] {
            assert!(secret_path(src).is_some(), "{src}");
        }
        for src in ["{{item.id}}-{{run.id}}", "{{item.secrets}}", "{{#each item.lines}}{{this}}{{/each}}", "{{@index}}-{{item.this_id}}"] {
            assert_eq!(secret_path(src), None, "{src}");
        }
    }

    #[test]
    fn a_call_of_an_unknown_helper_is_one() {
        let calls = |src: &str| var_refs(src, &[]).into_iter().map(|r| (r.path, r.call)).collect::<Vec<_>>();
        assert_eq!(calls("{{shout item.name}}"), [("shout".into(), true), ("item.name".into(), false)]);
        assert_eq!(calls("{{upper (shout 'x')}}"), [("shout".into(), true)]);
        assert_eq!(calls("{{#each item.lines}}{{shout name}}{{/each}}"), [("item.lines".into(), false), ("shout".into(), true)]);
        assert_eq!(calls("{{upper item.name}}{{name}}"), [("item.name".into(), false), ("name".into(), false)]);
    }

    #[test]
    fn an_unknown_helper_is_named_with_the_available_ones() {
        let src = "name: x\nvars: {greeting: hi}\nsteps:\n  - id: a\n    command: [echo, \"{{shout vars.greeting}}\"]\n";
        let file = std::sync::Arc::new(crate::spec::parse(std::path::Path::new("w.yaml"), src.into()).unwrap());
        let (dir, config) = (tempfile::tempdir().unwrap(), crate::config::Config::default());
        let errors = crate::plan::build(file, &config, dir.path(), &crate::steps::REGISTRY).unwrap_err().0;
        let e: Vec<String> = errors.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            e,
            ["error: unknown helper `shout` in template
  --> w.yaml:5:21
  |
5 |     command: [echo, \"{{shout vars.greeting}}\"]
  |                     ^
  = help: the helpers are: date, default, pluralize, pluralise, upper, uppercase, lower, lowercase, trim, json, change, inc, if, unless, each, with, lookup, log, eq, ne, gt, gte, lt, lte, and, or, not, len"]
        );
    }

    #[test]
    fn root_and_first() {
        let r = VarRef { path: "vars.a.b".into(), guarded: false, call: false };
        assert_eq!((r.root(), r.first()), ("vars", Some("a")));
    }
}
