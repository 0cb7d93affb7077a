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
    let text = err.to_string();
    // serde-saphyr appends where it happened; the diagnostic shows that itself.
    let msg = text.split(" at line ").next().unwrap_or(&text).to_string();
    let message = format!("invalid YAML: {msg}");
    let help = "check indentation and quoting on this line".to_string();
    Diagnostic::new(path, line.max(1), col.max(1), message).with_help(Some(help)).with_source(source)
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
}
