//! Turns a workflow's `schedule:` block into what the scheduler runs, reporting each problem
//! at its YAML path (`schedule.cron`, ...) so `cxflow validate` can point at file:line:col.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono_tz::Tz;

use super::calendar::Calendar;
use super::cron_expr::CronSchedule;
use super::policy::{WorkflowSchedule, DEFAULT_CATCH_UP_LIMIT};
use crate::spec::schedule::ScheduleSpec;

/// Receives one problem: YAML path, message, help.
pub type Report<'a> = dyn FnMut(&str, String, Option<String>) + 'a;

/// Calendars shared by the workflows that name the same file.
#[derive(Default)]
pub struct CalendarCache(HashMap<PathBuf, Arc<Calendar>>);

/// Calendars read by any plan of this process, with the text each was read from. Thousands of
/// workflows name the same few calendars: each plan still reads the file (an edit is seen by the
/// next plan, as before) but shares the parsed calendar when the text is the same, instead of
/// parsing and holding one copy per workflow.
type Shared = HashMap<(PathBuf, String), (String, Arc<Calendar>)>;
static SHARED: std::sync::LazyLock<std::sync::Mutex<Shared>> = std::sync::LazyLock::new(Default::default);

fn shared_calendar(path: &Path, rel: &str) -> Result<Arc<Calendar>, super::calendar::CalendarError> {
    let text = std::fs::read_to_string(path).map_err(|source| super::calendar::CalendarError::Read { path: path.to_path_buf(), source })?;
    let key = (path.to_path_buf(), rel.to_string());
    if let Some((seen, c)) = SHARED.lock().unwrap().get(&key) {
        if *seen == text {
            return Ok(c.clone());
        }
    }
    let mut c = Calendar::parse(path, &text)?;
    c.path = PathBuf::from(rel);
    let c = Arc::new(c);
    SHARED.lock().unwrap().insert(key, (text, c.clone()));
    Ok(c)
}

pub fn parse_timezone(name: &str) -> Result<Tz, (String, Option<String>)> {
    name.parse::<Tz>().map_err(|_| {
        let best = chrono_tz::TZ_VARIANTS
            .iter()
            .map(|tz| (strsim::jaro_winkler(&tz.name().to_ascii_lowercase(), &name.to_ascii_lowercase()), tz.name()))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let help = match best {
            Some((score, n)) if score > 0.85 => format!("did you mean `{n}`? Time zones are IANA names"),
            _ => "use an IANA time zone name such as `Europe/London`, `America/New_York` or `UTC`".into(),
        };
        (format!("unknown time zone `{name}`"), Some(help))
    })
}

/// Compiles `spec` for workflow `name`; relative calendar paths resolve against `base_dir`.
/// Returns None when anything was reported.
pub fn compile(
    name: &str,
    spec: &ScheduleSpec,
    base_dir: &Path,
    calendars: &mut CalendarCache,
    report: &mut Report<'_>,
) -> Option<WorkflowSchedule> {
    let mut ok = true;
    let cron = match CronSchedule::parse(&spec.cron) {
        Ok(c) => Some(c),
        Err(e) => {
            report("schedule.cron", e.message, e.help);
            None
        }
    };
    let tz = match parse_timezone(spec.timezone.as_deref().unwrap_or("UTC")) {
        Ok(tz) => Some(tz),
        Err((m, h)) => {
            report("schedule.timezone", m, h);
            None
        }
    };
    let max_runtime = match spec.max_runtime.as_deref().map(humantime::parse_duration) {
        None => None,
        Some(Ok(d)) if d > crate::config::limits::MAX_DURATION => {
            let s = spec.max_runtime.as_deref().unwrap_or_default();
            report(
                "schedule.max_runtime",
                crate::config::limits::duration_problem(s, d).unwrap_or_default(),
                Some("e.g. `2h` or `90m`".into()),
            );
            ok = false;
            None
        }
        Some(Ok(d)) if !d.is_zero() => Some(d),
        Some(Ok(_)) => {
            report("schedule.max_runtime", "max_runtime must be longer than zero".into(), Some("e.g. `2h` or `90m`".into()));
            ok = false;
            None
        }
        Some(Err(e)) => {
            report(
                "schedule.max_runtime",
                {
                    let _ = e;
                    format!("`{}` is not a duration", spec.max_runtime.as_deref().unwrap_or_default())
                },
                Some("write a duration such as `45m`, `2h` or `1h 30m`".into()),
            );
            ok = false;
            None
        }
    };
    let calendar = match &spec.calendar {
        None => None,
        Some(rel) => {
            let path = base_dir.join(rel);
            if let Some(c) = calendars.0.get(&path) {
                Some(c.clone())
            } else {
                match shared_calendar(&path, rel) {
                    Ok(c) => {
                        calendars.0.insert(path, c.clone());
                        Some(c)
                    }
                    Err(e) => {
                        let msg = match &e {
                            super::calendar::CalendarError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                                format!("calendar file `{rel}` does not exist")
                            }
                            super::calendar::CalendarError::Read { source, .. } => format!("cannot read calendar `{rel}`: {source}"),
                            super::calendar::CalendarError::Format { message, .. } => {
                                format!("calendar `{rel}` is not a list of `{{date: YYYY-MM-DD, name: ...}}` entries: {message}")
                            }
                        };
                        report(
                            "schedule.calendar",
                            msg,
                            Some("a calendar is a YAML list like `- {date: 2025-12-25, name: Christmas Day}`; paths are relative to the project folder".into()),
                        );
                        ok = false;
                        None
                    }
                }
            }
        }
    };
    if spec.concurrency == Some(0) {
        report("schedule.concurrency", "concurrency must be at least 1".into(), None);
        ok = false;
    }
    if spec.catch_up_limit == Some(0) {
        report(
            "schedule.catch_up_limit",
            "catch_up_limit must be at least 1".into(),
            Some("use `catch_up: none` to run no missed fires".into()),
        );
        ok = false;
    }
    if let Some(r) = &spec.retention {
        if r.days.is_none() && r.runs.is_none() {
            report("schedule.retention", "retention needs `days`, `runs` or both".into(), Some("e.g. `retention: {days: 30}`".into()));
            ok = false;
        }
        if let Some(m) = r.days.and_then(crate::config::limits::retention_days_problem) {
            report("schedule.retention.days", m, Some("e.g. `retention: {days: 90}`".into()));
            ok = false;
        }
    }
    if let Some(of) = &spec.on_failure {
        if let Some(url) = &of.webhook {
            match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => {
                    report(
                        "schedule.on_failure.webhook",
                        format!("invalid webhook URL `{url}`"),
                        Some("use an http:// or https:// URL".into()),
                    );
                    ok = false;
                }
            }
        }
        for (i, addr) in of.email.iter().enumerate() {
            if addr.parse::<lettre::Address>().is_err() {
                report(&format!("schedule.on_failure.email[{i}]"), format!("invalid email address `{addr}`"), None);
                ok = false;
            }
        }
    }
    let (cron, tz) = (cron?, tz?);
    if !ok {
        return None;
    }
    let mut wf = WorkflowSchedule::new(name, cron, tz);
    wf.overlap = spec.overlap;
    wf.catch_up = spec.catch_up;
    wf.catch_up_limit = spec.catch_up_limit.unwrap_or(DEFAULT_CATCH_UP_LIMIT);
    wf.max_runtime = max_runtime;
    wf.calendar = calendar;
    wf.business_days = spec.business_days;
    wf.concurrency = spec.concurrency;
    wf.resume = spec.resume;
    Some(wf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(yaml: &str) -> Vec<(String, String)> {
        let spec: ScheduleSpec = serde_saphyr::from_str(yaml).unwrap();
        let mut out = Vec::new();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let r = compile("w", &spec, root, &mut CalendarCache::default(), &mut |p, m, _| out.push((p.to_string(), m)));
        assert_eq!(r.is_some(), out.is_empty());
        out
    }

    #[test]
    fn good_block_compiles() {
        assert!(errs("cron: '0 9 * * 1-5'\ntimezone: Europe/London\ncalendar: calendars/uk-bank-holidays.yaml\nmax_runtime: 1h 30m\n")
            .is_empty());
    }

    #[test]
    fn each_problem_at_its_path() {
        let e = errs("cron: '0 9 * *'\ntimezone: Europe/Londn\nmax_runtime: soon\ncalendar: nope.yaml\non_failure: {webhook: 'ftp://x', email: [bad]}\n");
        let paths: Vec<&str> = e.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "schedule.cron",
                "schedule.timezone",
                "schedule.max_runtime",
                "schedule.calendar",
                "schedule.on_failure.webhook",
                "schedule.on_failure.email[0]"
            ]
        );
        let spec: ScheduleSpec = serde_saphyr::from_str("cron: '@daily'\ntimezone: europe/london").unwrap();
        let mut help = None;
        compile("w", &spec, Path::new("."), &mut CalendarCache::default(), &mut |_, _, h| help = h);
        assert!(help.unwrap().contains("`Europe/London`"));
    }

    #[test]
    fn plans_share_a_calendar_until_its_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("h.yaml"), "- {date: 2025-12-25, name: Christmas Day}\n").unwrap();
        let spec: ScheduleSpec = serde_saphyr::from_str("cron: '0 9 * * *'\ncalendar: h.yaml\n").unwrap();
        let cal = || {
            let w = compile("w", &spec, dir.path(), &mut CalendarCache::default(), &mut |_, m, _| panic!("{m}")).unwrap();
            w.calendar.unwrap()
        };
        let (a, b) = (cal(), cal());
        assert!(Arc::ptr_eq(&a, &b), "one parsed calendar for every plan that names the file");
        assert_eq!(a.path, PathBuf::from("h.yaml"));
        let christmas = chrono::NaiveDate::from_ymd_opt(2025, 12, 25).unwrap();
        assert_eq!(a.holidays.get(&christmas).map(String::as_str), Some("Christmas Day"));

        // Edited (same length, so only the text tells): the next plan reads the new dates.
        std::fs::write(dir.path().join("h.yaml"), "- {date: 2025-12-26, name: Christmas Day}\n").unwrap();
        let c = cal();
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(c.holidays.contains_key(&chrono::NaiveDate::from_ymd_opt(2025, 12, 26).unwrap()));
        assert!(!c.holidays.contains_key(&christmas));
        // A broken edit is reported as before, not hidden by the shared copy.
        std::fs::write(dir.path().join("h.yaml"), "- {date: nope}\n").unwrap();
        let mut errs = Vec::new();
        assert!(compile("w", &spec, dir.path(), &mut CalendarCache::default(), &mut |p, m, _| errs.push((p.to_string(), m))).is_none());
        assert_eq!(errs[0].0, "schedule.calendar", "{errs:?}");
    }
}
