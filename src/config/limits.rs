//! The bounds of numeric settings. Beyond them a value is a typo or a joke, and some would
//! overflow the arithmetic that uses them (a rate of 1e-20 is a wait longer than `Duration` holds;
//! 4,000,000,000 retention days is a date before year 1): they are refused when the project or
//! workflow is validated, never met at run time.

use std::time::Duration;

/// Slowest email rate, in messages per second: one message every 10,000 s (about 2.8 hours).
pub const MIN_RATE: f64 = 0.0001;

/// Longest retention: 100 years.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// Most SMTP connections one step may open at once.
pub const MAX_POOL_SIZE: usize = 1_000;

/// Longest wait for items in flight on shutdown.
pub const MAX_SHUTDOWN_GRACE: Duration = Duration::from_secs(24 * 3600);

/// Why `rate` (messages per second) is refused, if it is.
pub fn rate_problem(rate: f64) -> Option<String> {
    if !(rate.is_finite() && rate > 0.0) {
        return Some(format!("must be more than 0 messages per second, not `{rate}`"));
    }
    if rate < MIN_RATE {
        return Some(format!(
            "`{rate}` messages per second is less than the slowest rate cxflow takes, {MIN_RATE} (one message every 10000s)"
        ));
    }
    None
}

/// Why a number of retention days is refused, if it is.
pub fn retention_days_problem(days: u32) -> Option<String> {
    (days > MAX_RETENTION_DAYS).then(|| format!("`{days}` days is more than the longest retention, {MAX_RETENTION_DAYS} days (100 years)"))
}

/// Longest duration a workflow may give (timeouts, waits, backoff, `max_runtime`): a year. A
/// longer one is a typo, and adding it to the clock would overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Why a workflow's duration `s` (parsed as `d`) is refused, if it is.
pub fn duration_problem(s: &str, d: Duration) -> Option<String> {
    (d > MAX_DURATION).then(|| format!("`{}` is longer than a year, the longest duration cxflow takes", s.trim()))
}
