//! The `schedule:` block of a workflow.

use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Standard 5-field crontab expression (`30 2 * * *`), 6/7 fields with seconds/years, or
    /// `@hourly`, `@daily`, `@weekly`, `@monthly`.
    pub cron: String,
    /// IANA time zone the cron expression is read in (default `UTC`).
    #[serde(default)]
    pub timezone: Option<String>,
}
