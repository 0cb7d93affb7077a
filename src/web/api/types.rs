//! What the API answers, as the OpenAPI document describes it. The store's rows stay free of
//! web crates; these are built from them. Statuses are their words, as in the run log.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::store::{ItemStatus, RunRow, RunStatus, StepStatus, TriggerKind};

/// Every failed request: the status code says what kind of failure, `error` what to do.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// Lowercase, names what failed and what to do.
    #[schema(examples("there is no run 42; `cxflow runs` lists them"))]
    pub error: String,
}

/// The run log's status words, one API enum per store enum: the exhaustive `match` makes a new
/// store status a compile error here until the API (and its document) knows it.
macro_rules! words {
    ($(#[$m:meta])* $name:ident from $src:ident { $($v:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
        pub(crate) enum $name { $(#[serde(rename = $s)] $v),+ }

        impl From<$src> for $name {
            fn from(s: $src) -> Self {
                match s { $($src::$v => $name::$v),+ }
            }
        }
    };
}

words!(
    /// How a run ended, or `running`.
    RunStatusWord from RunStatus {
        Running => "running", Succeeded => "succeeded", Partial => "partial", Failed => "failed",
        Interrupted => "interrupted", Skipped => "skipped",
    }
);
words!(
    StepStatusWord from StepStatus {
        Running => "running", Succeeded => "succeeded", Partial => "partial", Failed => "failed",
        Interrupted => "interrupted", Skipped => "skipped",
    }
);
words!(
    ItemStatusWord from ItemStatus { Ok => "ok", Failed => "failed", Skipped => "skipped" }
);
words!(
    /// How the run was started.
    TriggerWord from TriggerKind { Manual => "manual", Schedule => "schedule", DryRun => "dry-run", Resume => "resume" }
);

/// A run as lists show it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Run {
    pub id: i64,
    pub workflow: String,
    /// The workflow file, relative to the project.
    pub file: String,
    pub trigger: TriggerWord,
    pub status: RunStatusWord,
    /// The parameters the run was started with, as stored (never secrets).
    pub params: Value,
    /// The fire time of a scheduled run (RFC 3339).
    pub scheduled_for: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Why the run failed or was skipped (secrets already masked).
    pub error: Option<String>,
    /// How many times it was resumed.
    pub resumes: i64,
}

impl From<RunRow> for Run {
    fn from(r: RunRow) -> Run {
        Run {
            id: r.id,
            workflow: r.workflow,
            file: r.file,
            trigger: r.trigger.into(),
            status: r.status.into(),
            params: json_or_text(&r.params),
            scheduled_for: r.scheduled_for,
            started_at: r.started_at,
            finished_at: r.finished_at,
            error: r.error,
            resumes: r.resumes,
        }
    }
}

/// Stored JSON as JSON; text that is not JSON (an older run log) as a string, never an error.
pub(crate) fn json_or_text(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunsPage {
    /// Newest first.
    pub runs: Vec<Run>,
    /// Pass as `before` for the next page; null on the last page.
    pub next: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Step {
    pub id: String,
    pub position: i64,
    pub kind: String,
    pub status: StepStatusWord,
    /// Items (or records, for batch steps) that succeeded, failed, were skipped.
    pub ok: i64,
    pub failed: i64,
    pub skipped: i64,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    /// A batch step's summary (counts, files).
    pub output: Option<Value>,
}

/// A delivery that may or may not have reached the other side (`cxflow resolve` settles it).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Uncertain {
    pub key: String,
    pub step: String,
    pub item_key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunDetail {
    pub run: Run,
    pub steps: Vec<Step>,
    pub uncertain: Vec<Uncertain>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Item {
    pub step: String,
    pub key: String,
    pub status: ItemStatusWord,
    pub attempts: i64,
    pub error: Option<String>,
    pub output: Option<Value>,
    pub finished_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ItemsPage {
    /// In step order, then input order.
    pub items: Vec<Item>,
    /// Pass as `after` for the next page; null on the last page.
    pub next: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Artifact {
    pub id: i64,
    pub step: String,
    pub item_key: Option<String>,
    /// `screenshot`, `html`, `eml`, `digest`, ...
    pub kind: String,
    /// The file's name (the folder stays on the server).
    pub name: String,
    pub created_at: String,
    /// The file itself, served inline by the dashboard.
    pub url: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ArtifactsPage {
    pub artifacts: Vec<Artifact>,
    /// Pass as `after` for the next page; null on the last page.
    pub next: Option<String>,
}
