//! YAML shapes of the record steps: `read_csv`, `read_json`, `sql`, `write_csv`, `write_json`,
//! and `command`.

use schemars::JsonSchema;
use serde::Deserialize;

/// `command: [program, arg, ...]`.
pub type CommandSpec = Vec<String>;

/// A file to read records from: a path, or a mapping with the path and options.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "a file path, or a mapping with `path` (and for CSV `delimiter`)")]
pub enum FileSource {
    Path(String),
    Detailed(FileSourceDetailed),
}

#[derive(Debug, Clone, JsonSchema)]
pub struct FileSourceDetailed {
    pub path: String,
    /// CSV field separator, one character (default `,`).
    pub delimiter: Option<String>,
}

/// Accepts a mapping only: serde's derive would also take `[path]`, a shape we do not document.
impl<'de> Deserialize<'de> for FileSourceDetailed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            path: String,
            #[serde(default)]
            delimiter: Option<String>,
        }
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FileSourceDetailed;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mapping with `path`")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let r = Raw::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(FileSourceDetailed { path: r.path, delimiter: r.delimiter })
            }
        }
        d.deserialize_map(V)
    }
}

impl FileSource {
    pub fn path(&self) -> &str {
        match self {
            FileSource::Path(p) => p,
            FileSource::Detailed(d) => &d.path,
        }
    }
    pub fn delimiter(&self) -> Option<&str> {
        match self {
            FileSource::Path(_) => None,
            FileSource::Detailed(d) => d.delimiter.as_deref(),
        }
    }
}

/// A query against a SQLite or PostgreSQL database; each row becomes a record.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlSpec {
    /// `sqlite://path/to.db` or `postgres://user@host/db` (a template: put passwords in secrets).
    pub url: String,
    /// SQL as written, not a template: values from templates go in `args`.
    pub query: String,
    /// Templates whose rendered values are bound to the query's parameters, in order (`$1`,
    /// `$2` for PostgreSQL; `?1`, `?2` for SQLite), never spliced into the SQL. Bound as text.
    #[serde(default)]
    pub args: Vec<String>,
}

/// Write the records of an earlier step to a file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteSpec {
    /// The step whose records (or item outputs) are written.
    pub from: String,
    /// Output file (a template, e.g. `out/confirmations-{{params.date}}.csv`).
    pub path: String,
    /// Columns to write, in order (default: the fields of the first record).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// For `write_json`: one JSON object per line instead of one array.
    #[serde(default)]
    pub lines: Option<bool>,
}
