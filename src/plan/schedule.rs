//! The `schedule:` block, validated: a cron expression and an IANA time zone.

use chrono_tz::Tz;

use super::PlanCx;
use crate::spec::schedule::ScheduleSpec;

#[derive(Debug, Clone)]
pub struct PlannedSchedule {
    pub cron: String,
    pub timezone: Tz,
}

pub fn plan(s: &ScheduleSpec, cx: &mut PlanCx) -> Option<PlannedSchedule> {
    let tz = match s.timezone.as_deref().unwrap_or("UTC").parse::<Tz>() {
        Ok(tz) => Some(tz),
        Err(_) => {
            let tz = s.timezone.clone().unwrap_or_default();
            cx.error("schedule.timezone", format!("unknown time zone `{tz}`"), Some("use an IANA name like `Europe/London` or `UTC`".into()));
            None
        }
    };
    let cron_ok = check_cron(&s.cron, cx);
    Some(PlannedSchedule { cron: s.cron.clone(), timezone: tz? }).filter(|_| cron_ok)
}

/// A first check of the expression; the scheduler's own parser replaces this.
fn check_cron(expr: &str, cx: &mut PlanCx) -> bool {
    let fields = expr.split_whitespace().count();
    let shortcut = expr.trim().starts_with('@');
    let full = match fields {
        5 => format!("0 {expr}"),
        _ => expr.to_string(),
    };
    if !shortcut && !(5..=7).contains(&fields) {
        cx.error("schedule.cron", format!("`{expr}` has {fields} fields; cron needs 5 (minute hour day month weekday)"), Some("for example `30 2 * * *` runs at 02:30 every day".into()));
        return false;
    }
    if let Err(e) = full.parse::<cron::Schedule>() {
        // The cron crate's message repeats the expression with a caret; its last line says what is wrong.
        let e = e.to_string();
        let e = e.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
        cx.error("schedule.cron", format!("`{expr}` is not a valid cron expression: {e}"), Some("fields are minute hour day-of-month month day-of-week, e.g. `30 2 * * *`".into()));
        return false;
    }
    true
}
