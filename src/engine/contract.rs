//! The step contract: what a step kind implements and what the engine hands it.
//!
//! A kind is either per-item (`ItemStep`: opened once per step run, then `run_item` for each
//! record) or batch (`BatchStep`: one `run` over all the records of its input). Both return
//! typed outcomes that carry their artifacts, on failure too; the engine records them. Steps
//! never see the run log: what must happen once goes through `Delivery`, and routed ids through
//! `RouteLog`, both handed out here.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::delivery::{Delivery, RouteLog};
use super::fuse::Fuse;
use super::log::{Fence, RunLog};
use super::records::{BadRecords, RecordSource};
use crate::config::Config;
use crate::plan::paths::PathTemplate;
use crate::plan::templates::Reads;
use crate::plan::Templates;
use crate::secrets::Secrets;

/// Why an item failed, and so whether the engine tries it again.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StepError {
    /// Worth another attempt after the backoff: a 4xx from a mail server, a dropped connection, a timeout.
    #[error("{0}")]
    Retryable(String),
    /// Never retried: bad data, a 5xx, a missing selector.
    #[error("{0}")]
    Fatal(String),
}

/// A file a step produced, recorded in the run log by the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub kind: String,
    pub path: PathBuf,
    /// The item it belongs to, for batch steps (a team's digest); per-item steps leave it
    /// `None` and the engine files it under the item's key.
    pub item: Option<String>,
}

impl Artifact {
    pub fn new(kind: &str, path: PathBuf) -> Artifact {
        Artifact { kind: kind.to_string(), path, item: None }
    }

    pub fn for_item(mut self, item: &str) -> Artifact {
        self.item = Some(item.to_string());
        self
    }
}

/// What one item produced: its output (a JSON object later steps can read) and files.
#[derive(Debug, Clone, Default)]
pub struct ItemOutput {
    pub output: Value,
    pub artifacts: Vec<Artifact>,
    /// Nothing was done because it was done before (already sent, uncertain and left alone):
    /// logged as `skipped`, not `ok`, so the counts say what this run did.
    pub skipped: bool,
}

impl ItemOutput {
    pub fn new(output: Value) -> Self {
        ItemOutput { output, artifacts: Vec::new(), skipped: false }
    }

    pub fn skipped(output: Value) -> Self {
        ItemOutput { output, artifacts: Vec::new(), skipped: true }
    }
}

/// An item attempt that failed, with the files it left to look at (a screenshot, the page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub error: StepError,
    pub artifacts: Vec<Artifact>,
}

impl From<StepError> for Failed {
    fn from(error: StepError) -> Failed {
        Failed { error, artifacts: Vec::new() }
    }
}

impl Failed {
    pub fn with_artifacts(error: StepError, artifacts: Vec<Artifact>) -> Failed {
        Failed { error, artifacts }
    }
}

/// What a batch step produced.
#[derive(Debug)]
pub struct BatchOutcome {
    /// The records later steps iterate over.
    pub records: RecordSource,
    /// What later steps' templates read as `steps.<id>.output`.
    pub output: Value,
    /// Records handled, and records that could not be (the step ends `partial`).
    pub ok: u64,
    pub failed: u64,
    pub artifacts: Vec<Artifact>,
}

impl BatchOutcome {
    /// A source step: records to read later, nothing done yet.
    pub fn source(records: RecordSource, output: Value) -> BatchOutcome {
        BatchOutcome { records, output, ok: 0, failed: 0, artifacts: Vec::new() }
    }
}

/// A per-item step kind, as planned.
#[async_trait]
pub trait ItemStep: fmt::Debug + Send + Sync {
    /// Items at once when the step does not set `concurrency`.
    fn default_concurrency(&self) -> usize {
        1
    }
    /// The earlier steps (`steps.<id>`) the kind's templates of its own read (an email body),
    /// beyond the workflow's templates the plan knows of. Each item's context holds only the
    /// steps read, so its copy costs what the step reads rather than every step before it; the
    /// default, `Reads::All`, holds them all.
    fn own_reads(&self) -> Reads {
        Reads::All
    }
    /// Open what the step's items share (an SMTP pool, browser sessions), once per step run;
    /// an error here fails the step before any item.
    async fn open(&self, cx: &StepCx<'_>) -> anyhow::Result<Box<dyn ItemRunner>>;
}

/// A per-item step, opened.
#[async_trait]
pub trait ItemRunner: Send + Sync {
    async fn run_item(&self, cx: &ItemCx<'_>) -> Result<ItemOutput, Failed>;
    async fn close(self: Box<Self>) {}
}

/// A batch step kind, as planned.
#[async_trait]
pub trait BatchStep: fmt::Debug + Send + Sync {
    /// The earlier step whose records this one reads (`from:`, `input:`), if any.
    fn input(&self) -> Option<&str> {
        None
    }
    /// Whether later steps can read records from it; a sink (`write_csv`) answers false, and
    /// `for_each` or `from:` naming it is a validation error.
    fn produces_records(&self) -> bool {
        true
    }
    async fn run(&self, input: RecordSource, cx: &BatchCx<'_>) -> anyhow::Result<BatchOutcome>;
}

/// A planned step kind: what the registry's plan functions make.
#[derive(Debug)]
pub enum Step {
    Item(Box<dyn ItemStep>),
    Batch(Box<dyn BatchStep>),
}

/// Everything a step may use that lives for one run.
#[derive(Clone)]
pub struct RunEnv {
    pub run_id: i64,
    pub workflow: String,
    pub config: Arc<Config>,
    /// The project folder: relative paths resolve against it.
    pub project: PathBuf,
    pub templates: Arc<Templates>,
    pub secrets: Arc<Secrets>,
    /// This run's own folder for artifacts (created on first use by whoever writes there).
    pub artifacts_dir: PathBuf,
    pub dry_run: bool,
    pub shutdown: CancellationToken,
    /// Private to the engine: steps reach the run log only through `Delivery` and `RouteLog`.
    pub(super) log: Arc<dyn RunLog>,
    /// Blown by the first failed run-log write: the run stops before its next side effect.
    pub(super) fuse: Arc<Fuse>,
}

impl RunEnv {
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = std::path::Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.project.join(p)
        }
    }
}

/// One step of a run, as `ItemStep::open` sees it.
pub struct StepCx<'a> {
    pub step_id: &'a str,
    pub run: &'a RunEnv,
}

/// One item of a per-item step.
pub struct ItemCx<'a> {
    pub step_id: &'a str,
    pub key: &'a str,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// `{vars, params, secrets, steps, run, item}`.
    pub ctx: &'a Value,
    pub run: &'a RunEnv,
    /// This node's claim on a shared item (`spread_items`): its deliveries are fenced by it.
    pub(super) fence: Option<&'a Fence>,
}

impl ItemCx<'_> {
    /// The exactly-once capability for this item's side effect.
    pub fn delivery(&self) -> Delivery<'_> {
        Delivery::new(self.run, self.step_id, self.key).fenced(self.fence)
    }
}

/// One run of a batch step.
pub struct BatchCx<'a> {
    pub step_id: &'a str,
    /// `{vars, params, secrets, steps, run}`.
    pub ctx: &'a Value,
    pub run: &'a RunEnv,
    /// Bad input records logged as failed items (through `bad_records`), for the step's message.
    pub(super) bad_logged: Arc<AtomicU64>,
}

impl BatchCx<'_> {
    /// Where the step records input records it could not use: each becomes a failed item.
    pub fn bad_records(&self) -> BadRecords {
        BadRecords::new(self.run, self.step_id, self.bad_logged.clone())
    }

    /// A path field of the step, rendered and resolved against the project folder; a rendered
    /// path that leaves it (`PathRule`) is refused.
    pub fn path(&self, t: &PathTemplate) -> anyhow::Result<PathBuf> {
        let p = self.run.templates.render(&t.tpl, self.ctx).map_err(|e| anyhow::anyhow!("cannot render the path: {e}"))?;
        t.rule
            .apply(&self.run.project, &p)
            .map_err(|e| anyhow::anyhow!("step `{}`: {}", self.step_id, self.run.secrets.redact(&e.to_string())))
    }

    /// The exactly-once capability for one side effect of this step, named by `item` (a team).
    pub fn delivery<'b>(&'b self, item: &'b str) -> Delivery<'b> {
        Delivery::new(self.run, self.step_id, item)
    }

    /// The ids this step routed before, and the writer for the ones it routes now.
    pub fn route_log(&self) -> RouteLog<'_> {
        RouteLog::new(self.run, self.step_id)
    }
}
