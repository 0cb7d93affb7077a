//! The `schedule:` block, validated by the scheduler's own parser (crontab-faithful cron,
//! IANA zone, policies, calendar file), so `cxflow validate` reports the errors `cxflow serve`
//! would hit, at file:line:col.

use chrono_tz::Tz;

use super::PlanCx;
use crate::schedule::compile::{compile, CalendarCache};
use crate::schedule::policy::WorkflowSchedule;
use crate::spec::schedule::{OnFailureSpec, RetentionSpec, ScheduleSpec};

#[derive(Debug, Clone)]
pub struct PlannedSchedule {
    pub cron: String,
    pub timezone: Tz,
    /// What the scheduler runs.
    pub compiled: WorkflowSchedule,
    pub retention: Option<RetentionSpec>,
    pub on_failure: Option<OnFailureSpec>,
}

pub fn plan(name: &str, s: &ScheduleSpec, cx: &mut PlanCx) -> Option<PlannedSchedule> {
    let base = cx.base_dir().to_path_buf();
    let mut errors = Vec::new();
    let compiled = compile(name, s, &base, &mut CalendarCache::default(), &mut |path, msg, help| {
        errors.push((path.to_string(), msg, help));
    });
    for (path, msg, help) in errors {
        cx.error(&path, msg, help);
    }
    let compiled = compiled?;
    Some(PlannedSchedule {
        cron: s.cron.clone(),
        timezone: compiled.tz,
        compiled,
        retention: s.retention,
        on_failure: s.on_failure.clone(),
    })
}
