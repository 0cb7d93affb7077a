//! One module per step kind. Each gets its inputs planned and its clients handed in, does one
//! item (or one batch), and returns a typed outcome; none of them writes the run log itself.

pub mod browser;
pub mod command;
pub mod route;
pub mod send_email;
pub mod write;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::plan::Templates;
use crate::secrets::Secrets;
use crate::store::Store;

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

/// A file a step produced for one item, recorded in the run log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub kind: String,
    pub path: PathBuf,
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

/// Everything a step needs that lives for one run.
#[derive(Clone)]
pub struct RunEnv {
    pub run_id: i64,
    pub workflow: String,
    pub store: Store,
    pub config: Arc<Config>,
    /// The project folder: relative paths resolve against it.
    pub project: PathBuf,
    pub templates: Arc<Templates>,
    pub secrets: Arc<Secrets>,
    /// This run's own folder for artifacts (created on first use by whoever writes there).
    pub artifacts_dir: PathBuf,
    pub dry_run: bool,
    pub shutdown: CancellationToken,
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

/// One item of a per-item step.
pub struct ItemEnv<'a> {
    pub step_id: &'a str,
    pub key: &'a str,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// `{vars, params, secrets, steps, item}`.
    pub ctx: &'a Value,
    pub run: &'a RunEnv,
}
