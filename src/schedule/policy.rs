//! What the scheduler knows about one workflow: when it fires and what to do when fires collide,
//! are missed, run long, or fall on a holiday.

use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;

use super::calendar::Calendar;
use super::cron_expr::CronSchedule;

pub use crate::spec::schedule::{CatchUp, Overlap, Resume};

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
