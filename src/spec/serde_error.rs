//! Turns serde's errors about a parsed document into diagnostics that say what to change.

use std::path::Path;

use super::diagnostic::{did_you_mean, Diagnostic};
use super::Positions;

/// Where a serde error found at `inner` (serde_path_to_error's path, `.` for the whole value)
/// within the value at `prefix` points: (the path named in the message, the path whose position
/// is shown, whether that is a key rather than a value).
pub(crate) fn locate(prefix: &str, inner: &str, msg: &str) -> (String, String, bool) {
    if inner == "." {
        return (prefix.to_string(), prefix.to_string(), false);
    }
    let full = match (prefix.is_empty(), inner.starts_with('[')) {
        (true, _) => inner.to_string(),
        (false, true) => format!("{prefix}{inner}"),
        (false, false) => format!("{prefix}.{inner}"),
    };
    match msg.strip_prefix("unknown field `").and_then(|r| r.split_once('`')) {
        // Unknown keys point at the key itself, within the mapping that holds it.
        Some((field, _)) if !inner.ends_with(field) => {
            let key = if full.is_empty() { field.to_string() } else { format!("{full}.{field}") };
            (full, key, true)
        }
        Some((field, _)) => {
            let parent = full.strip_suffix(field).map(|p| p.strip_suffix('.').unwrap_or(p)).unwrap_or(&full).to_string();
            (parent, full.clone(), true)
        }
        None => (full.clone(), full, false),
    }
}

/// The diagnostic for serde's error `e` about the document `source` at `path`.
pub(crate) fn document_diagnostic(
    path: &Path,
    source: &str,
    positions: &Positions,
    e: &serde_path_to_error::Error<serde::de::value::Error>,
) -> Diagnostic {
    let msg = e.inner().to_string();
    let (at, line_path, key) = locate("", &e.path().to_string(), &msg);
    let (line, col) = if key { positions.key(&line_path) } else { positions.value(&line_path) };
    let (message, help) = explain((!at.is_empty()).then_some(at.as_str()), &msg);
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
        let (msg, help) = readable_expected(msg);
        (format!("{msg}{within}"), Some(help))
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

/// serde names the Rust type it wanted (`expected u32`); say what to write instead.
pub(crate) fn readable_expected(msg: &str) -> (String, String) {
    let Some((head, ty)) = msg.rsplit_once(", expected ") else {
        return (msg.to_string(), "change the value to the expected type".to_string());
    };
    let (name, help) = match ty {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => ("a whole number", "write digits without quotes, like `4`"),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => ("a whole number", "write digits without quotes, like `4` or `-4`"),
        "f32" | "f64" => ("a number", "write a number without quotes, like `4` or `0.5`"),
        "a boolean" => ("`true` or `false`", "write `true` or `false` without quotes"),
        "a sequence" => ("a list", "write the items on lines starting with `- `, or as `[a, b]`"),
        "a string" | "a character" => (ty, "quote the value, like `\"...\"`"),
        _ => return (msg.to_string(), "change the value to the expected type".to_string()),
    };
    (format!("{head}, expected {name}"), help.to_string())
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
        assert_eq!(
            e,
            "error: invalid type: string \"four\", expected a whole number in `steps[0].concurrency`\n  --> w.yaml:4:18\n  |\n4 |     concurrency: four\n  |                  ^\n  = help: write digits without quotes, like `4`"
        );
    }

    #[test]
    fn missing_field() {
        let e = first_error("name: x\n");
        assert!(e.starts_with("error: missing field `steps`"), "{e}");
    }
}
