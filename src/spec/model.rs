//! The workflow file as written: plain serde types, one field per YAML key.
//! Nothing here interprets strings; `plan` does that.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::schedule::ScheduleSpec;
use crate::steps::browser::BrowserSpec;
use crate::steps::command::CommandSpec;
use crate::steps::route::RouteSpec;
use crate::steps::send_email::SendEmailSpec;

/// One workflow: a named list of steps, run by hand or on a schedule.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    /// Unique name of the workflow; used in the run log and in default idempotency keys.
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// When the scheduler (`cxflow serve`) runs this workflow.
    #[serde(default)]
    pub schedule: Option<ScheduleSpec>,
    /// Constants available to every template as `vars.<name>`.
    #[serde(default)]
    pub vars: Map<String, Value>,
    /// Values given at run time with `--var name=value`, available as `params.<name>`.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Names of environment variables holding secrets, available as `secrets.<NAME>`.
    /// Their values never reach the run log, stdout or an error message.
    #[serde(default)]
    pub secrets: Vec<String>,
    pub steps: Vec<StepSpec>,
}

/// What a step does on an item that fails after its retries.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Log the failed item and go on with the others (the run ends `partial`).
    #[default]
    Continue,
    /// Stop the run after the items in flight finish (the run ends `failed`).
    Stop,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Total attempts, including the first.
    pub attempts: u32,
    /// Wait before the second attempt, doubled for each further one (e.g. `30s`).
    #[serde(default)]
    pub backoff: Option<String>,
}

/// One step. Exactly one of the step kinds (`read_csv`, `send_email`, ...) must be set.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Unique id; later steps refer to this step's records and outputs by it.
    pub id: String,
    /// Run the step only when this template renders to something other than ``, `false`, `0` or `no`.
    #[serde(default)]
    pub when: Option<String>,
    /// Run the step once per record of the named earlier step.
    #[serde(default)]
    pub for_each: Option<String>,
    /// Stable identity of an item (a template over `item`); resume and the run log use it.
    #[serde(default)]
    pub item_key: Option<String>,
    /// Skip an item when this template renders truthy (e.g. `"{{eq item.status 'spam'}}"`).
    #[serde(default)]
    pub skip_if: Option<String>,
    #[serde(default)]
    pub retry: Option<RetrySpec>,
    /// Time limit for one attempt of one item, e.g. `20s`.
    #[serde(default)]
    pub timeout: Option<String>,
    /// How many items run at once.
    #[serde(default)]
    pub concurrency: Option<u32>,
    #[serde(default)]
    pub on_error: Option<OnError>,

    #[serde(default)]
    pub read_csv: Option<FileSource>,
    #[serde(default)]
    pub read_json: Option<FileSource>,
    #[serde(default)]
    pub sql: Option<SqlSpec>,
    #[serde(default)]
    pub write_csv: Option<WriteSpec>,
    #[serde(default)]
    pub write_json: Option<WriteSpec>,
    /// Run a program per item: `[program, arg, ...]` (templates, no shell).
    #[serde(default)]
    pub command: Option<CommandSpec>,
    #[serde(default)]
    pub send_email: Option<SendEmailSpec>,
    #[serde(default)]
    pub browser: Option<BrowserSpec>,
    #[serde(default)]
    pub route: Option<RouteSpec>,
}

/// The names of the step kinds, in the order they are documented.
pub const STEP_KINDS: &[&str] =
    &["read_csv", "read_json", "sql", "write_csv", "write_json", "command", "send_email", "browser", "route"];

impl StepSpec {
    /// The step kinds this step sets (valid steps set exactly one).
    pub fn kinds(&self) -> Vec<&'static str> {
        let set = [
            self.read_csv.is_some(),
            self.read_json.is_some(),
            self.sql.is_some(),
            self.write_csv.is_some(),
            self.write_json.is_some(),
            self.command.is_some(),
            self.send_email.is_some(),
            self.browser.is_some(),
            self.route.is_some(),
        ];
        STEP_KINDS.iter().zip(set).filter(|(_, s)| *s).map(|(k, _)| *k).collect()
    }
}

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
    pub query: String,
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
