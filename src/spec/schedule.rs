//! The `schedule:` block of a workflow: when `cxflow serve` runs it, and how.
//! Interpreted by `plan::schedule` (validation) and the `scheduler`; see docs/scheduling.md.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `schedule:` in a workflow: when it runs under `cxflow serve`, and how.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Crontab expression (5 fields; 6 with seconds first; 7 with a year last) or @hourly,
    /// @daily, @weekly, @monthly, @yearly. Weekday numbers are crontab's: 0 and 7 are Sunday.
    pub cron: String,
    /// IANA time zone the cron fields are read in, e.g. `Europe/London`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// A fire while the previous run is still going: skip (default), queue or allow.
    #[serde(default)]
    pub overlap: Overlap,
    /// Fire times missed while the scheduler was down: none, latest (default) or all.
    #[serde(default)]
    pub catch_up: CatchUp,
    /// With `catch_up: all`, the most missed fires run (the latest are kept). Default 10.
    #[serde(default)]
    pub catch_up_limit: Option<usize>,
    /// A run still going after this long (e.g. `2h`, `90m`) is stopped and marked failed.
    #[serde(default)]
    pub max_runtime: Option<String>,
    /// YAML list of dates (`- {date: 2025-12-25, name: Christmas Day}`) on which not to run;
    /// relative to the workflow project folder.
    #[serde(default)]
    pub calendar: Option<String>,
    /// Run on Monday to Friday only (in the workflow's time zone).
    #[serde(default)]
    pub business_days: bool,
    /// Most runs of this workflow at once (with `overlap: allow`).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// How long this workflow's runs are kept; overrides `retention_days`/`retention_runs`
    /// in cxflow.yaml.
    #[serde(default)]
    pub retention: Option<RetentionSpec>,
    /// A run left `running` by a crash: manual (default: marked interrupted) or auto
    /// (also resumed when the scheduler starts).
    #[serde(default)]
    pub resume: Resume,
    /// Who to tell when a scheduled run fails or ends partial.
    #[serde(default)]
    pub on_failure: Option<OnFailureSpec>,
}

/// Keep runs for N days, or the last N runs (either or both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionSpec {
    #[serde(default)]
    pub days: Option<u32>,
    #[serde(default)]
    pub runs: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnFailureSpec {
    /// URL that receives a JSON POST describing the failed run.
    #[serde(default)]
    pub webhook: Option<String>,
    /// Addresses emailed about the failed run (through the send_email SMTP settings).
    #[serde(default)]
    pub email: Vec<String>,
}

/// What to do when a fire comes while a run of the same workflow is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Resume {
    /// Mark it interrupted; a person resumes it with `cxflow resume`.
    #[default]
    Manual,
    /// Mark it interrupted and resume it at once.
    Auto,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_block_and_defaults() {
        let s: ScheduleSpec = serde_saphyr::from_str("cron: '30 2 * * *'").unwrap();
        assert_eq!(s.timezone, None);
        assert_eq!(s.overlap, Overlap::Skip);
        assert_eq!(s.catch_up, CatchUp::Latest);
        let s: ScheduleSpec = serde_saphyr::from_str(
            "cron: '0 9 * * 1-5'\ntimezone: Europe/London\noverlap: queue\ncatch_up: all\ncatch_up_limit: 3\n\
max_runtime: 2h\ncalendar: calendars/uk-bank-holidays.yaml\nbusiness_days: true\nconcurrency: 2\n\
retention: {days: 30}\nresume: auto\non_failure: {webhook: 'http://127.0.0.1:9/x', email: [ops@example.com]}\n",
        )
        .unwrap();
        assert_eq!(s.retention, Some(RetentionSpec { days: Some(30), runs: None }));
        assert_eq!(s.resume, Resume::Auto);
        assert_eq!(s.on_failure.unwrap().email, vec!["ops@example.com".to_string()]);
        let e = serde_saphyr::from_str::<ScheduleSpec>("cron: x\noverlapp: skip").unwrap_err();
        assert!(e.to_string().contains("unknown field `overlapp`"));
    }
}
