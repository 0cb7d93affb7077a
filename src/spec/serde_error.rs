//! Turns serde_yaml's errors into diagnostics that say what to change.

use std::path::Path;

use super::diagnostic::{did_you_mean, Diagnostic};

pub(crate) fn to_diagnostic(path: &Path, source: &str, err: &serde_yaml::Error) -> Diagnostic {
    let (line, col) = err.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
    let raw = strip_location(&err.to_string());
    // serde_yaml prefixes the YAML path of the offending node: `steps[0]: unknown field ...`.
    let (at, msg) = match raw.split_once(": ") {
        Some((p, m)) if !p.contains(' ') => (Some(p.to_string()), m.to_string()),
        _ => (None, raw.clone()),
    };
    let (message, help) = explain(at.as_deref(), &msg);
    Diagnostic::new(path, line, col, message).with_help(help).with_source(source)
}

/// The message and help for serde's error text `msg` about the value at YAML path `at`.
pub fn explain(at: Option<&str>, msg: &str) -> (String, Option<String>) {
    let within = at.map(|p| format!(" in `{p}`")).unwrap_or_default();
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        let field = between_backticks(rest).unwrap_or_default();
        let expected = rest.split_once("expected ").map(|(_, e)| e.to_string()).unwrap_or_default();
        let names: Vec<String> = expected.split('`').skip(1).step_by(2).map(str::to_string).collect();
        let help = match did_you_mean(&field, names.iter().map(String::as_str)) {
            Some(s) => format!("did you mean `{s}`?"),
            None if names.is_empty() => "remove it".to_string(),
            None => format!("remove it, or use one of: {}", names.join(", ")),
        };
        (format!("unknown field `{field}`{within}"), Some(help))
    } else if let Some(rest) = msg.strip_prefix("missing field ") {
        let field = between_backticks(rest).unwrap_or_default();
        (format!("missing field `{field}`{within}"), Some(format!("add `{field}:` here")))
    } else if msg.starts_with("invalid type") || msg.starts_with("invalid value") {
        (format!("{msg}{within}"), Some("change the value to the expected type".to_string()))
    } else if msg.contains("a file path, or a mapping") {
        (
            format!("expected {msg}{within}"),
            Some("write `read_csv: data/file.csv` or `read_csv: { path: data/file.csv, delimiter: \";\" }`".to_string()),
        )
    } else if msg.contains("did not match any variant") {
        (format!("{msg}{within}"), None)
    } else if msg.starts_with("unknown variant") {
        (format!("{msg}{within}"), Some("use one of the values listed".to_string()))
    } else {
        (format!("invalid YAML: {msg}"), Some("check indentation and quoting on this line".to_string()))
    }
}

fn strip_location(s: &str) -> String {
    static AT: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| regex::Regex::new(r" at line \d+ column \d+").expect("valid regex"));
    at.replace_all(s, "").into_owned()
}

fn between_backticks(s: &str) -> Option<String> {
    let mut parts = s.split('`');
    parts.next()?;
    parts.next().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use std::path::Path;

    fn first_error(src: &str) -> String {
        parse(Path::new("w.yaml"), src.to_string()).unwrap_err().0[0].to_string()
    }

    #[test]
    fn wrong_type_names_the_path() {
        let e = first_error("name: x\nsteps:\n  - id: a\n    concurrency: four\n    read_csv: a.csv\n");
        assert!(e.contains("invalid type: string \"four\", expected u32 in `steps[0].concurrency`"), "{e}");
        assert!(e.contains("w.yaml:4:18"), "{e}");
    }

    #[test]
    fn missing_field() {
        let e = first_error("name: x\n");
        assert!(e.starts_with("error: missing field `steps`"), "{e}");
    }
}
