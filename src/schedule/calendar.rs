//! Holiday calendars and business days: a fire that falls on a listed date (or a weekend, with
//! `business_days: true`) is skipped and logged with its reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    #[error("cannot read calendar `{path}`: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("calendar `{path}` is not a list of `{{date: YYYY-MM-DD, name: ...}}` entries: {message}")]
    Format { path: PathBuf, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    date: NaiveDate,
    #[serde(default)]
    name: Option<String>,
}

/// Either a plain list of entries, or `{name, dates: [...]}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum FileForm {
    List(Vec<Entry>),
    Named {
        #[allow(dead_code)]
        name: Option<String>,
        dates: Vec<Entry>,
    },
}

/// Dates on which a workflow does not run.
#[derive(Debug, Clone, Default)]
pub struct Calendar {
    pub path: PathBuf,
    pub holidays: BTreeMap<NaiveDate, String>,
}

impl Calendar {
    pub fn load(path: &Path) -> Result<Calendar, CalendarError> {
        let text = std::fs::read_to_string(path).map_err(|source| CalendarError::Read { path: path.to_path_buf(), source })?;
        Calendar::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Calendar, CalendarError> {
        let form: FileForm = serde_saphyr::from_str(text)
            .map_err(|e| CalendarError::Format { path: path.to_path_buf(), message: e.without_snippet().to_string() })?;
        let entries = match form {
            FileForm::List(v) => v,
            FileForm::Named { dates, .. } => dates,
        };
        let holidays = entries.into_iter().map(|e| (e.date, e.name.unwrap_or_else(|| "holiday".into()))).collect();
        Ok(Calendar { path: path.to_path_buf(), holidays })
    }

    pub fn holiday(&self, date: NaiveDate) -> Option<&str> {
        self.holidays.get(&date).map(String::as_str)
    }
}

/// Why a fire on local date `date` must be skipped, if it must.
pub fn skip_reason(date: NaiveDate, business_days: bool, calendar: Option<&Calendar>) -> Option<String> {
    if business_days && matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
        return Some(format!("{date} is a {} (business_days: true)", weekday_name(date.weekday())));
    }
    let cal = calendar?;
    cal.holiday(date).map(|name| format!("{date} is {name} in calendar {}", cal.path.display()))
}

fn weekday_name(w: Weekday) -> &'static str {
    match w {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn shipped_calendars_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let uk = Calendar::load(&root.join("calendars/uk-bank-holidays.yaml")).unwrap();
        assert_eq!(uk.holiday(d("2025-12-25")), Some("Christmas Day"));
        assert_eq!(uk.holiday(d("2025-12-24")), None);
        let us = Calendar::load(&root.join("calendars/us-federal-holidays.yaml")).unwrap();
        assert_eq!(us.holiday(d("2025-11-27")), Some("Thanksgiving Day"));
        // Every shipped date is a weekday: observed/substitute days are listed, not weekends.
        for cal in [&uk, &us] {
            for date in cal.holidays.keys() {
                assert!(!matches!(date.weekday(), Weekday::Sat | Weekday::Sun), "{date}");
            }
        }
    }

    #[test]
    fn named_form_and_errors() {
        let cal = Calendar::parse(Path::new("c.yaml"), "name: x\ndates:\n  - {date: 2025-01-02}\n").unwrap();
        assert_eq!(cal.holiday(d("2025-01-02")), Some("holiday"));
        let err = Calendar::parse(Path::new("c.yaml"), "- {date: 2025-13-02}\n").unwrap_err();
        assert!(err.to_string().contains("calendar `c.yaml`"), "{err}");
    }

    #[test]
    fn reasons() {
        let cal = Calendar::parse(Path::new("cal.yaml"), "- {date: 2025-12-25, name: Christmas Day}").unwrap();
        assert_eq!(skip_reason(d("2025-12-25"), false, Some(&cal)).unwrap(), "2025-12-25 is Christmas Day in calendar cal.yaml");
        assert_eq!(skip_reason(d("2025-12-27"), true, None).unwrap(), "2025-12-27 is a Saturday (business_days: true)");
        assert_eq!(skip_reason(d("2025-12-27"), false, Some(&cal)), None);
        assert_eq!(skip_reason(d("2025-12-29"), true, Some(&cal)), None);
    }
}
