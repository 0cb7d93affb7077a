//! Cron expressions as a person writing a crontab means them, evaluated with the `cron` crate.
//!
//! The `cron` crate (0.17) differs from crontab in three ways that silently shift fire times, so
//! expressions are translated before they reach it:
//! - it requires a seconds field: 5-field expressions get `0` seconds prepended;
//! - it numbers weekdays 1–7 with Sunday = 1, where crontab uses 0–7 with Sunday = 0 or 7:
//!   weekday numbers are always read the crontab way and rewritten as names (`SUN`..`SAT`);
//! - it ANDs day-of-month with day-of-week, where crontab ORs them when both are restricted:
//!   such an expression becomes two schedules whose fire times are merged.
//!
//! Fire times are computed in the workflow's time zone; see `next_after` for the DST rule.

use std::str::FromStr;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// A cron expression that cannot be used, with a hint on how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CronError {
    pub message: String,
    pub help: Option<String>,
}

impl CronError {
    fn new(message: impl Into<String>, help: impl Into<String>) -> Self {
        CronError { message: message.into(), help: Some(help.into()) }
    }
}

const FORMS_HELP: &str = "use 5 fields `minute hour day-of-month month day-of-week` (e.g. `30 2 * * *`), \
6 fields with seconds first, 7 fields with a year last, or one of @hourly @daily @weekly @monthly @yearly";

/// A parsed, translated cron expression.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    source: String,
    /// One schedule, or two whose fire times are merged (crontab's day-of-month OR day-of-week).
    /// Shared by clones: a `cron::Schedule` holds every value of each field (a kilobyte), and the
    /// scheduler and the plan of each of thousands of workflows hold the same one.
    parts: std::sync::Arc<[cron::Schedule]>,
    /// True when the hour field is `*`: such jobs follow elapsed time across DST changes
    /// (they fire in both passes of a repeated hour); fixed-hour jobs follow the wall clock.
    every_hour: bool,
}

#[derive(Clone, Copy)]
enum Unit {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
    Year,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Second => "second",
            Unit::Minute => "minute",
            Unit::Hour => "hour",
            Unit::DayOfMonth => "day-of-month",
            Unit::Month => "month",
            Unit::DayOfWeek => "day-of-week",
            Unit::Year => "year",
        }
    }
    fn range_help(self) -> &'static str {
        match self {
            Unit::Second => "seconds are 0-59",
            Unit::Minute => "minutes are 0-59",
            Unit::Hour => "hours are 0-23",
            Unit::DayOfMonth => "days of the month are 1-31",
            Unit::Month => "months are 1-12 or JAN-DEC",
            Unit::DayOfWeek => "weekdays are 0-7 (0 and 7 are Sunday) or SUN-SAT",
            Unit::Year => "years are 1970-2099",
        }
    }
}

const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl CronSchedule {
    /// Parses a crontab-style expression (5, 6 or 7 fields, or an @shortcut).
    pub fn parse(expr: &str) -> Result<CronSchedule, CronError> {
        let source = expr.trim().to_string();
        if source.is_empty() {
            return Err(CronError::new("empty cron expression", FORMS_HELP));
        }
        let fields: Vec<String> = if source.starts_with('@') {
            let six = match source.to_ascii_lowercase().as_str() {
                "@hourly" => "0 0 * * * *",
                "@daily" | "@midnight" => "0 0 0 * * *",
                "@weekly" => "0 0 0 * * SUN",
                "@monthly" => "0 0 0 1 * *",
                "@yearly" | "@annually" => "0 0 0 1 1 *",
                other => {
                    return Err(CronError::new(
                        format!("unknown cron shortcut `{other}`"),
                        "use one of @hourly @daily @weekly @monthly @yearly",
                    ))
                }
            };
            six.split(' ').map(str::to_string).collect()
        } else {
            let raw: Vec<&str> = source.split_whitespace().collect();
            match raw.len() {
                5 => std::iter::once("0").chain(raw).map(str::to_string).collect(),
                6 | 7 => raw.into_iter().map(str::to_string).collect(),
                n => return Err(CronError::new(format!("cron expression `{source}` has {n} fields"), FORMS_HELP)),
            }
        };
        let units = [Unit::Second, Unit::Minute, Unit::Hour, Unit::DayOfMonth, Unit::Month, Unit::DayOfWeek, Unit::Year];
        // Check each field on its own so the error names the field that is wrong.
        let mut fields = fields;
        // crontab decides OR-vs-AND on the fields as written (`*/2` counts as unrestricted).
        let dom_restricted = !is_unrestricted(&fields[3]);
        let dow_restricted = !is_unrestricted(&fields[5]);
        fields[5] = translate_weekdays(&fields[5])?;
        for (i, f) in fields.iter().enumerate() {
            check_field(units[i], i, f)?;
        }
        let every_hour = fields[2] == "*";
        let variants: Vec<Vec<String>> = if dom_restricted && dow_restricted {
            // crontab fires when EITHER day field matches.
            let mut by_dom = fields.clone();
            by_dom[5] = "*".into();
            let mut by_dow = fields.clone();
            by_dow[3] = "*".into();
            vec![by_dom, by_dow]
        } else {
            vec![fields]
        };
        let mut parts = Vec::with_capacity(variants.len());
        for v in variants {
            let text = v.join(" ");
            let sched = cron::Schedule::from_str(&text)
                .map_err(|e| CronError::new(format!("invalid cron expression `{source}`: {e}"), FORMS_HELP))?;
            parts.push(sched);
        }
        Ok(CronSchedule { source, parts: parts.into(), every_hour })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first fire time strictly after `after`, for a job whose times are read in `tz`.
    ///
    /// DST rule. Fixed-hour jobs (hour field not `*`) follow the wall clock and fire once per
    /// matching local time: a local time skipped by spring-forward fires at the first instant
    /// after the gap; a local time repeated by fall-back fires at its first occurrence only.
    /// Jobs whose hour field is `*` follow elapsed time: they fire at every instant whose local
    /// time matches, so in both passes of a repeated hour, and not in a skipped one.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        self.parts.iter().filter_map(|s| if self.every_hour { next_elapsed(s, after, tz) } else { next_wall_clock(s, after, tz) }).min()
    }

    /// Iterator over fire times strictly after `after`.
    pub fn iter_after(&self, after: DateTime<Utc>, tz: Tz) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        let mut cur = after;
        std::iter::from_fn(move || {
            let next = self.next_after(cur, tz)?;
            cur = next;
            Some(next)
        })
    }
}

/// Maps a local wall-clock time to the instant it fires: the first occurrence of an ambiguous
/// time, the end of the gap for a nonexistent one. Monotone in `local`.
pub fn wall_clock_instant(local: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // Walk forward minute by minute to the end of the gap (gaps are whole minutes and
            // at most a few hours), then back to the exact transition instant.
            let mut probe = local.with_second(0).unwrap_or(local).with_nanosecond(0).unwrap_or(local);
            for _ in 0..(24 * 60) {
                probe += chrono::Duration::minutes(1);
                if let Some(t) = tz.from_local_datetime(&probe).earliest() {
                    let t = t.with_timezone(&Utc);
                    // `t` is at most one minute past the transition; find the transition.
                    let mut lo = t - chrono::Duration::minutes(1);
                    let mut hi = t;
                    while hi - lo > chrono::Duration::seconds(1) {
                        let mid = lo + (hi - lo) / 2;
                        if offset_secs(mid, tz) == offset_secs(t, tz) {
                            hi = mid;
                        } else {
                            lo = mid;
                        }
                    }
                    return hi;
                }
            }
            // Unreachable for real zones; fall back to reading the time as UTC.
            Utc.from_utc_datetime(&local)
        }
    }
}

fn offset_secs(t: DateTime<Utc>, tz: Tz) -> i32 {
    // `t` may carry sub-second parts; offsets only change on whole seconds.
    use chrono::Offset;
    t.with_timezone(&tz).offset().fix().local_minus_utc()
}

/// Wall-clock iteration: the `cron` crate walks local times (carried as UTC so it never sees
/// DST), each is mapped to its instant by `wall_clock_instant`.
fn next_wall_clock(s: &cron::Schedule, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    // Because the mapping is monotone, no local time before `after`'s own local time can map to
    // an instant after `after`; candidates mapping to or before it (the repeated hour's first
    // pass, a gap already fired) are skipped.
    let local = after.with_timezone(&tz).naive_local();
    let start = Utc.from_utc_datetime(&local);
    s.after(&start).take(100_000).map(|c| wall_clock_instant(c.naive_utc(), tz)).find(|t| *t > after)
}

/// Elapsed-time iteration: every instant whose local time matches fires, so both occurrences of
/// a repeated local time, and none of a nonexistent one.
///
/// Between two offset transitions local time is UTC plus a constant, so the `cron` crate can
/// walk local times directly; at a transition the walk restarts with the new offset. Zones change
/// offset at most once in any 3 hours, which bounds the search for a transition.
fn next_elapsed(s: &cron::Schedule, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    let span = chrono::Duration::hours(3);
    let sec = chrono::Duration::seconds(1);
    let mut x = after;
    for _ in 0..100_000 {
        let o = chrono::Duration::seconds(offset_secs(x + sec, tz).into());
        let c = s.after(&(x + o)).next()?;
        let t = c - o;
        let horizon = t.min(x + span);
        if offset_secs(horizon, tz) == offset_secs(x + sec, tz) {
            if t <= x + span {
                return Some(t);
            }
            x += span;
            continue;
        }
        // Find the transition instant T in (x, horizon] and resume just before it.
        let (mut lo, mut hi) = (x, horizon);
        let before = offset_secs(x + sec, tz);
        while hi - lo > sec {
            let mid = lo + (hi - lo) / 2;
            if offset_secs(mid, tz) == before {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        x = hi - sec;
    }
    None
}

fn is_unrestricted(field: &str) -> bool {
    field.starts_with('*') || field == "?"
}

/// Rewrites a crontab weekday field (numbers 0-7, Sunday = 0 or 7, names, ranges, steps, lists)
/// as an explicit list of names, which the `cron` crate reads unambiguously.
fn translate_weekdays(field: &str) -> Result<String, CronError> {
    if field == "*" || field == "?" {
        return Ok(field.to_string());
    }
    let bad = |what: String| {
        CronError::new(
            format!("invalid day-of-week `{field}`: {what}"),
            "weekdays are 0-7 (0 and 7 are Sunday) or SUN-SAT, e.g. `1-5` or `MON-FRI`",
        )
    };
    let day = |s: &str| -> Result<u32, CronError> {
        if let Ok(n) = s.parse::<u32>() {
            if n <= 7 {
                return Ok(n % 7);
            }
            return Err(bad(format!("`{s}` is out of range")));
        }
        const FULL: [&str; 7] = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];
        let lower = s.to_ascii_lowercase();
        FULL.iter().position(|w| lower == *w || lower == w[..3]).map(|p| p as u32).ok_or_else(|| bad(format!("`{s}` is not a weekday")))
    };
    let mut set = [false; 7];
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| bad(format!("step `{s}` is not a number")))?;
                if step == 0 {
                    return Err(bad("a step of 0 never advances".into()));
                }
                (r, step)
            }
            None => (item, 1),
        };
        // Ranges run over 0..=7 so `5-7` (Friday to Sunday) works as in crontab.
        let (lo, hi) = if range == "*" {
            (0, 6)
        } else if let Some((a, b)) = range.split_once('-') {
            let a = day(a)?;
            let b_raw = b.parse::<u32>().ok();
            let b = if b_raw == Some(7) { 7 } else { day(b)? };
            if b < a {
                return Err(bad(format!("range `{range}` runs backwards")));
            }
            (a, b)
        } else {
            let d = day(range)?;
            // `5/2` means from 5 to the end of the week, as in crontab.
            (d, if step > 1 { 6 } else { d })
        };
        let mut d = lo;
        while d <= hi {
            set[(d % 7) as usize] = true;
            d += step;
        }
    }
    let names: Vec<&str> = (0..7).filter(|&i| set[i]).map(|i| WEEKDAYS[i]).collect();
    if names.is_empty() {
        return Err(bad("it matches no day".into()));
    }
    Ok(names.join(","))
}

/// Validates one field alone by parsing it inside an otherwise all-`*` expression, so the
/// error names the field and its range rather than the `cron` crate's internal form.
fn check_field(unit: Unit, index: usize, field: &str) -> Result<(), CronError> {
    let mut probe = ["*"; 7];
    probe[0] = "0";
    probe[index] = field;
    if cron::Schedule::from_str(&probe.join(" ")).is_err() {
        return Err(CronError::new(
            format!("invalid {} field `{field}`: {}", unit.name(), unit.range_help()),
            "lists `a,b`, ranges `a-b` and steps `*/n` are allowed; fields are minute hour day-of-month month day-of-week, e.g. `30 2 * * *`",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
