//! What the scheduler knows about one workflow: when it fires and what to do when fires collide,
//! are missed, run long, or fall on a holiday.

use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;

use super::calendar::Calendar;
use super::cron_expr::CronSchedule;

/// What to do when a fire comes while a run of the same workflow is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Do not start; log a skipped run.
    #[default]
    Skip,
    /// Start when the running one ends.
    Queue,
    /// Start alongside (up to the workflow's `concurrency`).
    Allow,
}

/// What to do with fire times missed while the scheduler was not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Run none of them (they are logged as skipped).
    None,
    /// Run the most recent one once.
    #[default]
    Latest,
    /// Run each, oldest first, up to `catch_up_limit`.
    All,
}

/// What to do on start with a run a crash left `running`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Resume {
    /// Mark it interrupted; a person resumes it with `cxflow resume`.
    #[default]
    Manual,
    /// Mark it interrupted and resume it at once.
    Auto,
}

/// Catch-up runs kept by `catch_up: all` when no limit is given.
pub const DEFAULT_CATCH_UP_LIMIT: usize = 10;

#[derive(Debug, Clone)]
pub struct WorkflowSchedule {
    pub name: String,
    pub cron: CronSchedule,
    pub tz: Tz,
    pub overlap: Overlap,
    pub catch_up: CatchUp,
    /// Most missed fires run by `catch_up: all` (the latest ones are kept).
    pub catch_up_limit: usize,
    pub max_runtime: Option<Duration>,
    pub calendar: Option<Arc<Calendar>>,
    pub business_days: bool,
    /// Most runs of this workflow at once (only matters with `overlap: allow`).
    pub concurrency: Option<usize>,
    pub resume: Resume,
}

impl WorkflowSchedule {
    /// A schedule with every policy at its default.
    pub fn new(name: impl Into<String>, cron: CronSchedule, tz: Tz) -> Self {
        WorkflowSchedule {
            name: name.into(),
            cron,
            tz,
            overlap: Overlap::default(),
            catch_up: CatchUp::default(),
            catch_up_limit: DEFAULT_CATCH_UP_LIMIT,
            max_runtime: None,
            calendar: None,
            business_days: false,
            concurrency: None,
            resume: Resume::default(),
        }
    }
}
