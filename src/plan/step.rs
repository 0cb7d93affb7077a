//! One step, validated: its kind's typed inputs plus the engine's settings (items, retry, timeout).

use std::time::Duration;

use super::{duration, PlanCx, TemplateRef};
use crate::spec::model::{OnError, StepSpec, WriteSpec, STEP_KINDS};
use crate::steps::{browser, command, route, send_email};

#[derive(Debug)]
pub struct PlannedStep {
    pub id: String,
    pub index: usize,
    pub when: Option<TemplateRef>,
    /// The earlier step whose records this step runs once per.
    pub for_each: Option<String>,
    pub item_key: Option<TemplateRef>,
    pub skip_if: Option<TemplateRef>,
    pub attempts: u32,
    pub backoff: Duration,
    pub timeout: Option<Duration>,
    pub concurrency: usize,
    pub on_error: OnError,
    pub kind: StepKind,
}

#[derive(Debug)]
pub enum StepKind {
    ReadCsv { path: TemplateRef, delimiter: u8 },
    ReadJson { path: TemplateRef },
    Sql { url: TemplateRef, query: String },
    WriteCsv(WritePlan),
    WriteJson(WritePlan),
    Command(command::Planned),
    SendEmail(Box<send_email::Planned>),
    Browser(Box<browser::Planned>),
    Route(Box<route::Planned>),
}

impl StepKind {
    /// Steps that act once per item (and so take `for_each`, `retry`, `concurrency`...).
    pub fn is_per_item(&self) -> bool {
        matches!(self, StepKind::Command(_) | StepKind::SendEmail(_) | StepKind::Browser(_))
    }

    pub fn name(&self) -> &'static str {
        match self {
            StepKind::ReadCsv { .. } => "read_csv",
            StepKind::ReadJson { .. } => "read_json",
            StepKind::Sql { .. } => "sql",
            StepKind::WriteCsv(_) => "write_csv",
            StepKind::WriteJson(_) => "write_json",
            StepKind::Command(_) => "command",
            StepKind::SendEmail(_) => "send_email",
            StepKind::Browser(_) => "browser",
            StepKind::Route(_) => "route",
        }
    }
}

#[derive(Debug)]
pub struct WritePlan {
    pub from: String,
    pub path: TemplateRef,
    pub columns: Option<Vec<String>>,
    pub lines: bool,
}

pub(super) fn plan(s: &StepSpec, index: usize, path: &str, cx: &mut PlanCx) -> Option<PlannedStep> {
    if s.id.is_empty() || !s.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || s.id.starts_with(|c: char| c.is_ascii_digit()) {
        cx.error(
            &format!("{path}.id"),
            format!("step id `{}` must be letters, digits and `_`, not starting with a digit", s.id),
            Some(format!("templates refer to it as `steps.<id>`; try `{}`", suggest_id(&s.id))),
        );
    }
    let kinds = s.kinds();
    let kind = match kinds.as_slice() {
        [] => {
            cx.error(path, format!("step `{}` does not say what to do", s.id), Some(format!("add one of: {}", STEP_KINDS.join(", "))));
            None
        }
        [one] => plan_kind(s, one, path, cx),
        [_, second, ..] => {
            cx.error_at_key(
                &format!("{path}.{second}"),
                format!("step `{}` has more than one kind: {}", s.id, kinds.join(", ")),
                Some("split it into one step per kind".into()),
            );
            None
        }
    };
    let when = s.when.as_ref().and_then(|w| cx.template(&format!("{path}.when"), w));
    let per_item = kind.as_ref().map(StepKind::is_per_item);
    let for_each = match (&s.for_each, per_item) {
        (Some(_), Some(false)) => {
            let k = kinds.first().copied().unwrap_or("this kind");
            cx.error_at_key(&format!("{path}.for_each"), format!("`for_each` does not apply to a `{k}` step"), Some("name the input inside the step instead (e.g. `from:` or `input:`), or remove `for_each`".into()));
            None
        }
        (Some(f), _) => cx.require_earlier_step(&format!("{path}.for_each"), f).then(|| f.clone()),
        (None, _) => None,
    };
    for (key, set) in [("item_key", s.item_key.is_some()), ("skip_if", s.skip_if.is_some())] {
        if set && s.for_each.is_none() {
            cx.error_at_key(&format!("{path}.{key}"), format!("`{key}` needs `for_each`"), Some("add `for_each: <earlier step>` or remove it".into()));
        }
    }
    if let Some(t) = &s.item_key {
        cx.forbid_secrets(&format!("{path}.item_key"), t, "`item_key`");
    }
    let item_key = s.item_key.as_ref().and_then(|t| cx.template(&format!("{path}.item_key"), t));
    let skip_if = s.skip_if.as_ref().and_then(|t| cx.template(&format!("{path}.skip_if"), t));
    let (attempts, backoff) = match &s.retry {
        None => (1, Duration::from_secs(1)),
        Some(r) => {
            if r.attempts == 0 {
                cx.error(&format!("{path}.retry.attempts"), "`attempts` must be at least 1", Some("1 means no retry; 3 means two retries".into()));
            }
            let b = r.backoff.as_deref().and_then(|b| duration(cx, &format!("{path}.retry.backoff"), b));
            (r.attempts.max(1), b.unwrap_or(Duration::from_secs(1)))
        }
    };
    let timeout = s.timeout.as_deref().and_then(|t| duration(cx, &format!("{path}.timeout"), t));
    if s.concurrency == Some(0) {
        cx.error(&format!("{path}.concurrency"), "`concurrency` must be at least 1", None);
    }
    Some(PlannedStep {
        id: s.id.clone(),
        index,
        when,
        for_each,
        item_key,
        skip_if,
        attempts,
        backoff,
        timeout,
        // A browser step works its `sessions` in parallel unless told otherwise.
        concurrency: match (&kind, s.concurrency) {
            (_, Some(c)) => c.max(1) as usize,
            (Some(StepKind::Browser(b)), None) => b.sessions,
            _ => 1,
        },
        on_error: s.on_error.unwrap_or_default(),
        kind: kind?,
    })
}

fn suggest_id(id: &str) -> String {
    let s: String = id.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) || s.is_empty() {
        format!("step_{s}")
    } else {
        s
    }
}

fn plan_kind(s: &StepSpec, kind: &str, path: &str, cx: &mut PlanCx) -> Option<StepKind> {
    let kpath = format!("{path}.{kind}");
    match kind {
        "read_csv" => {
            let src = s.read_csv.as_ref()?;
            let (ppath, dpath) = match src {
                crate::spec::model::FileSource::Path(_) => (kpath.clone(), kpath.clone()),
                _ => (format!("{kpath}.path"), format!("{kpath}.delimiter")),
            };
            let delimiter = match src.delimiter() {
                None => b',',
                Some(d) if d.len() == 1 => d.as_bytes()[0],
                Some(d) => {
                    cx.error(&dpath, format!("delimiter `{d}` must be one character"), Some("for tabs write `\"\\t\"`".into()));
                    b','
                }
            };
            check_input_file(cx, &ppath, src.path());
            Some(StepKind::ReadCsv { path: cx.template(&ppath, src.path())?, delimiter })
        }
        "read_json" => {
            let src = s.read_json.as_ref()?;
            let ppath = match src {
                crate::spec::model::FileSource::Path(_) => kpath.clone(),
                _ => format!("{kpath}.path"),
            };
            if src.delimiter().is_some() {
                cx.error_at_key(&format!("{kpath}.delimiter"), "`delimiter` applies to CSV only", Some("remove it".into()));
            }
            check_input_file(cx, &ppath, src.path());
            Some(StepKind::ReadJson { path: cx.template(&ppath, src.path())? })
        }
        "sql" => {
            let q = s.sql.as_ref()?;
            let url_ok = q.url.starts_with("{{") || ["sqlite:", "postgres:", "postgresql:"].iter().any(|p| q.url.starts_with(p));
            if !url_ok {
                cx.error(&format!("{kpath}.url"), format!("`{}` is not a database URL cxflow can read", q.url), Some("use `sqlite://path/to.db` or `postgres://user@host/db`".into()));
            }
            if q.query.trim().is_empty() {
                cx.error(&format!("{kpath}.query"), "the query is empty", None);
            }
            Some(StepKind::Sql { url: cx.template(&format!("{kpath}.url"), &q.url)?, query: q.query.clone() })
        }
        "write_csv" => Some(StepKind::WriteCsv(plan_write(s.write_csv.as_ref()?, &kpath, cx)?)),
        "write_json" => Some(StepKind::WriteJson(plan_write(s.write_json.as_ref()?, &kpath, cx)?)),
        "command" => command::plan(s.command.as_ref()?, &kpath, cx).map(StepKind::Command),
        "send_email" => send_email::plan(s.send_email.as_ref()?, &kpath, cx).map(|p| StepKind::SendEmail(Box::new(p))),
        "browser" => browser::plan(s.browser.as_ref()?, &kpath, cx).map(|p| StepKind::Browser(Box::new(p))),
        "route" => route::plan(s.route.as_ref()?, &kpath, cx).map(|p| StepKind::Route(Box::new(p))),
        _ => None,
    }
}

/// A literal input path that does not exist is a mistake worth catching before the night's run;
/// templated paths are checked when the step runs.
fn check_input_file(cx: &mut PlanCx, path: &str, file: &str) {
    if file.contains("{{") {
        return;
    }
    let full = cx.resolve(file);
    if !full.exists() {
        cx.error(path, format!("input file `{file}` does not exist"), Some(format!("paths are relative to the project folder `{}`", cx.base_dir().display())));
    }
}

fn plan_write(w: &WriteSpec, kpath: &str, cx: &mut PlanCx) -> Option<WritePlan> {
    let from_ok = cx.require_earlier_step(&format!("{kpath}.from"), &w.from);
    cx.forbid_secrets(&format!("{kpath}.path"), &w.path, "an output path");
    let path = cx.template(&format!("{kpath}.path"), &w.path);
    if kpath.ends_with("write_csv") && w.lines.is_some() {
        cx.error_at_key(&format!("{kpath}.lines"), "`lines` applies to `write_json` only", Some("remove it".into()));
    }
    if !from_ok {
        return None;
    }
    Some(WritePlan { from: w.from.clone(), path: path?, columns: w.columns.clone(), lines: w.lines.unwrap_or(false) })
}
