//! A YAML file the user wrote, read once: syntax, repeated keys, then its serde type, each
//! error positioned. Workflows, `cxflow.yaml` and route rule files all come through here.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::yaml::{self, Node};
use super::{serde_error, Diagnostic, Diagnostics, Positions};

/// A document read into its type `T`, with the tree and positions to point into it.
#[derive(Debug)]
pub struct Document<T> {
    pub value: T,
    pub tree: Node,
    pub positions: Positions,
}

/// Parse `source`, read from `path` (shown in errors), and deserialize it into `T`.
pub fn read<T: DeserializeOwned>(path: &Path, source: &str) -> Result<Document<T>, Diagnostics> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let tree = yaml::parse(source).map_err(|e| Diagnostics(vec![syntax_diagnostic(path, source, &e)]))?;
    let positions = Positions::of(&tree);
    if !positions.duplicates.is_empty() {
        return Err(duplicate_keys(path, source, &positions));
    }
    match serde_path_to_error::deserialize::<_, T>(&tree) {
        Ok(value) => Ok(Document { value, tree, positions }),
        Err(e) => Err(Diagnostics(vec![serde_error::document_diagnostic(path, source, &positions, &e)])),
    }
}

/// A byte-order mark is how some editors (Notepad, Excel's "UTF-8" export) start a file; it is
/// not part of the text, and columns on line 1 are counted without it.
pub fn strip_bom(source: String) -> String {
    match source.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => source,
    }
}

fn syntax_diagnostic(path: &Path, source: &str, e: &yaml::SyntaxError) -> Diagnostic {
    let err = e.0.without_snippet();
    let (line, col) = err.location().map_or((1, 1), |l| (l.line() as usize, l.column() as usize));
    let (line, col) = (line.max(1), col.max(1));
    let text = err.to_string();
    // serde-saphyr appends where it happened; the diagnostic shows that itself.
    let msg = text.split(" at line ").next().unwrap_or(&text).to_string();
    let (line, col, message, help) = if let Some(limit) = alias_limit(err) {
        let message =
            format!("too many alias expansions: the aliases in this file would repeat more than {limit} values, so it is refused");
        let help =
            "each `*name` copies what `&name` holds, and copies of copies multiply; write the values out, or use fewer, unnested aliases";
        (line, col, message, help.to_string())
    } else if let serde_saphyr::Error::Budget { breach, .. } = original(err) {
        let message = format!("the file is too large or nests too deep to be a workflow ({breach:?}), so it is refused");
        (line, col, message, "split it into smaller workflows".to_string())
    } else if msg.contains("tab") {
        let help = "replace the tab with spaces (most editors can insert spaces when Tab is pressed)".to_string();
        match indentation_tab(source, line) {
            Some((line, col)) => (line, col, "a tab in the indentation: YAML indents with spaces only".to_string(), help),
            None => (line, col, "a tab where YAML allows only spaces".to_string(), help),
        }
    } else {
        (line, col, format!("invalid YAML: {msg}"), "check indentation and quoting on this line".to_string())
    };
    Diagnostic::new(path, line, col, message).with_help(Some(help)).with_source(source)
}

/// The limit an alias "bomb" ran into (a few lines whose aliases expand to millions of values).
fn alias_limit(err: &serde_saphyr::Error) -> Option<usize> {
    match original(err) {
        serde_saphyr::Error::AliasReplayLimitExceeded { max_total_replayed_events, .. } => Some(*max_total_replayed_events),
        serde_saphyr::Error::AliasExpansionLimitExceeded { max_expansions_per_anchor, .. } => Some(*max_expansions_per_anchor),
        _ => None,
    }
}

/// The error under serde-saphyr's wrappers (a snippet, the alias it was replayed through).
fn original(err: &serde_saphyr::Error) -> &serde_saphyr::Error {
    match err {
        serde_saphyr::Error::WithSnippet { error, .. } | serde_saphyr::Error::AliasError { error, .. } => original(error),
        other => other,
    }
}

/// The tab in the indentation of `line` or the next one (the scanner may report a tab only at
/// the end of the token before it), as (line, column).
fn indentation_tab(source: &str, line: usize) -> Option<(usize, usize)> {
    source.lines().enumerate().skip(line.saturating_sub(1)).take(2).find_map(|(i, l)| {
        let indent = &l[..l.len() - l.trim_start_matches([' ', '\t']).len()];
        indent.find('\t').map(|at| (i + 1, indent[..at].chars().count() + 1))
    })
}

/// One diagnostic per key given twice in a mapping (serde would report only the first, and
/// keeps the last entry of a map without a word).
pub(crate) fn duplicate_keys(path: &Path, source: &str, positions: &Positions) -> Diagnostics {
    let ds = positions.duplicates.iter().map(|(key, (line, col), (first, _))| {
        let (within, name) = match key.rsplit_once('.') {
            Some((parent, name)) => (format!(" in `{parent}`"), name),
            None => (String::new(), key.as_str()),
        };
        Diagnostic::new(path, *line, *col, format!("duplicate key `{name}`{within} (first on line {first})"))
            .with_help(Some("keep one of them: a key can appear only once in a mapping".into()))
            .with_source(source)
    });
    Diagnostics(ds.collect())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn first_error(src: &str) -> String {
        super::super::parse(Path::new("w.yaml"), src.to_string()).unwrap_err().0[0].to_string()
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_file() {
        let spec = super::super::parse(Path::new("w.yaml"), "\u{feff}name: x\nsteps:\n  - id: a\n    read_csv: a.csv\n".into()).unwrap();
        assert_eq!((spec.spec.name.as_str(), spec.positions.key("steps")), ("x", (2, 1)));
        assert_eq!(
            first_error("\u{feff}nme: x\nsteps: []\n"),
            "error: unknown field `nme`\n  --> w.yaml:1:1\n  |\n1 | nme: x\n  | ^\n  = help: did you mean `name`?"
        );
        let c = super::super::config_file::parse(Path::new("cxflow.yaml"), "\u{feff}smtp_pool_size: 2\n".into()).unwrap();
        assert_eq!(c.file.smtp_pool_size, Some(2));
        // Only a mark and comments: an empty file, as without the mark.
        assert!(super::super::config_file::parse(Path::new("cxflow.yaml"), "\u{feff}# nothing yet\n".into()).is_ok());
        let e = first_error("\u{feff}# nothing yet\n");
        assert!(e.starts_with("error: the workflow file is empty\n  --> w.yaml:1:1\n"), "{e}");
    }

    #[test]
    fn a_tab_in_the_indentation_is_named_where_it_is() {
        assert_eq!(
            first_error("name: x\nsteps:\n  - id: a\n\tread_csv: a.csv\n"),
            "error: a tab in the indentation: YAML indents with spaces only\n  --> w.yaml:4:1\n  |\n4 | \tread_csv: a.csv\n  | ^\n  = help: replace the tab with spaces (most editors can insert spaces when Tab is pressed)"
        );
        assert_eq!(
            first_error("name: x\nsteps:\n  - id: a\n  \t read_csv: a.csv\n"),
            "error: a tab in the indentation: YAML indents with spaces only\n  --> w.yaml:4:3\n  |\n4 |   \t read_csv: a.csv\n  |   ^\n  = help: replace the tab with spaces (most editors can insert spaces when Tab is pressed)"
        );
    }

    #[test]
    fn an_alias_bomb_is_refused_at_an_alias() {
        let mut src = String::from("name: x\nsteps: []\nvars:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (name, prev) in ["b", "c", "d", "e", "f", "g"].iter().zip(["a", "b", "c", "d", "e", "f"]) {
            src +=
                &format!("  {name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n");
        }
        let e = first_error(&src);
        let (head, rest) = e.split_once("\n  --> w.yaml:").unwrap();
        assert_eq!(
            head,
            "error: too many alias expansions: the aliases in this file would repeat more than 10000 values, so it is refused"
        );
        let (line, col) = rest.split_once('\n').unwrap().0.split_once(':').unwrap();
        let (line, col): (usize, usize) = (line.parse().unwrap(), col.parse().unwrap());
        assert_eq!(src.lines().nth(line - 1).unwrap().chars().nth(col - 1), Some('*'), "{e}");
        assert!(e.ends_with("= help: each `*name` copies what `&name` holds, and copies of copies multiply; write the values out, or use fewer, unnested aliases"), "{e}");
    }
}
