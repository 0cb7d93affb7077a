//! A user-facing error about a file the user wrote: where it is, what is wrong, how to fix it.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
    pub help: Option<String>,
    /// The offending source line, kept so the diagnostic renders without re-reading the file.
    pub source_line: Option<String>,
}

impl Diagnostic {
    pub fn new(file: &Path, line: usize, col: usize, message: impl Into<String>) -> Self {
        Diagnostic { file: file.to_path_buf(), line, col, message: message.into(), help: None, source_line: None }
    }

    pub fn with_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    /// Attach the source line so the rendered error can show a caret under the column.
    pub fn with_source(mut self, source: &str) -> Self {
        if self.line > 0 {
            self.source_line = source.lines().nth(self.line - 1).map(str::to_string);
        }
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        write!(f, "  --> {}:{}:{}", self.file.display(), self.line, self.col)?;
        if let Some(src) = &self.source_line {
            let num = self.line.to_string();
            let pad = " ".repeat(num.len());
            write!(f, "\n{pad} |\n{num} | {src}\n{pad} | {}^", " ".repeat(self.col.saturating_sub(1)))?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  = help: {help}")?;
        }
        Ok(())
    }
}

/// All diagnostics of one check, printed in file order.
#[derive(Debug, Clone, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_caret_under_column() {
        let d = Diagnostic::new(Path::new("w.yaml"), 2, 3, "unknown field `x`")
            .with_help(Some("remove it".into()))
            .with_source("a: 1\n  x: 2\n");
        assert_eq!(d.to_string(), "error: unknown field `x`\n  --> w.yaml:2:3\n  |\n2 |   x: 2\n  |   ^\n  = help: remove it");
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("read_cvs", ["read_csv", "read_json"]), Some("read_csv"));
        assert_eq!(did_you_mean("zzz", ["read_csv", "read_json"]), None);
    }
}
