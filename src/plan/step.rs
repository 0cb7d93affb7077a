//! One step, validated: the settings every step has, and its kind planned through the registry.

use std::time::Duration;

use super::{duration, PlanCx, TemplateRef};
use crate::spec::diagnostic::did_you_mean;
use crate::spec::model::{OnError, StepSpec, STEP_SETTINGS};

/// A step, validated: the engine's settings (items, retry, timeout) plus its kind's typed
/// inputs `kind`, whose type the step registry decides (the plan layer never looks inside).
#[derive(Debug)]
pub struct PlannedStep<K> {
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
    /// Items in flight over all nodes at most, when items are spread over nodes.
    pub concurrency_total: Option<u32>,
    pub on_error: OnError,
    /// The kind's name as written (`send_email`), for the run log and messages.
    pub kind_name: &'static str,
    /// Acts once per item (and so takes `for_each`, `retry`, `concurrency`...).
    pub per_item: bool,
    /// The earlier steps (`steps.<id>`) the workflow's templates in this step read (`when`,
    /// `item_key`, the kind's fields); a kind's templates of its own (an email body) are not in it.
    pub reads: super::templates::Reads,
    pub kind: K,
}

/// What a step kind's plan function gives back, through the registry.
pub struct KindPlan<K> {
    pub kind: K,
    pub per_item: bool,
    /// Whether later steps can read records from it (`for_each`, `from:`); false for sinks.
    pub records: bool,
    /// Items at once when the step does not set `concurrency` (a browser step: its `sessions`).
    pub default_concurrency: usize,
}

/// The step kinds a plan can contain: the step registry implements it, so this layer knows no
/// kind by name.
pub trait StepPlanner {
    type Kind;
    /// The kind names, in the order they are documented.
    fn kind_names(&self) -> Vec<&'static str>;
    /// Plan the value of kind `name` (one of `kind_names`) found at YAML path `path`; `None`
    /// when it has errors (reported into `cx`).
    fn plan_kind(&self, name: &str, raw: &crate::spec::Node, path: &str, cx: &mut PlanCx) -> Option<KindPlan<Self::Kind>>;
}

pub(super) fn plan<P: StepPlanner>(s: &StepSpec, index: usize, path: &str, planner: &P, cx: &mut PlanCx) -> Option<PlannedStep<P::Kind>> {
    if s.id.is_empty() || !s.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || s.id.starts_with(|c: char| c.is_ascii_digit()) {
        cx.error(
            &format!("{path}.id"),
            format!("step id `{}` must be letters, digits and `_`, not starting with a digit", s.id),
            Some(format!("templates refer to it as `steps.<id>`; try `{}`", suggest_id(&s.id))),
        );
    }
    let names = planner.kind_names();
    let mut kinds = Vec::new();
    let mut unknown = false;
    for (key, _) in &s.kinds {
        match names.iter().find(|n| **n == key.as_str()) {
            Some(n) => kinds.push(*n),
            None => {
                unknown = true;
                let candidates = STEP_SETTINGS.iter().chain(names.iter()).copied();
                let help = match did_you_mean(key, candidates) {
                    Some(m) => format!("did you mean `{m}`?"),
                    None => format!(
                        "remove it, or use one of: {}",
                        STEP_SETTINGS.iter().chain(names.iter()).copied().collect::<Vec<_>>().join(", ")
                    ),
                };
                cx.error_at_key(&format!("{path}.{key}"), format!("unknown field `{key}` in `{path}`"), Some(help));
            }
        }
    }
    let planned = match kinds.as_slice() {
        [] if unknown => None,
        [] => {
            cx.error(path, format!("step `{}` does not say what to do", s.id), Some(format!("add one of: {}", names.join(", "))));
            None
        }
        [one] => {
            let raw = &s.kinds.iter().find(|(k, _)| k == one).expect("found above").1;
            planner.plan_kind(one, raw, &format!("{path}.{one}"), cx).map(|k| (*one, k))
        }
        [_, second, ..] => {
            cx.error_at_key(
                &format!("{path}.{second}"),
                format!("step `{}` has more than one kind: {}", s.id, kinds.join(", ")),
                Some("split it into one step per kind".into()),
            );
            None
        }
    };
    if let Some((name, k)) = &planned {
        if !k.records {
            cx.mark_sink(&s.id, name);
        }
    }
    let when = s.when.as_ref().and_then(|w| cx.template(&format!("{path}.when"), w));
    let per_item = planned.as_ref().map(|(_, k)| k.per_item);
    let for_each = match (&s.for_each, per_item) {
        (Some(_), Some(false)) => {
            let k = kinds.first().copied().unwrap_or("this kind");
            cx.error_at_key(
                &format!("{path}.for_each"),
                format!("`for_each` does not apply to a `{k}` step"),
                Some("name the input inside the step instead (e.g. `from:` or `input:`), or remove `for_each`".into()),
            );
            None
        }
        (Some(f), _) => cx.require_records(&format!("{path}.for_each"), f).then(|| f.clone()),
        (None, _) => None,
    };
    for (key, set) in [("item_key", s.item_key.is_some()), ("skip_if", s.skip_if.is_some())] {
        if set && s.for_each.is_none() {
            cx.error_at_key(
                &format!("{path}.{key}"),
                format!("`{key}` needs `for_each`"),
                Some("add `for_each: <earlier step>` or remove it".into()),
            );
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
                cx.error(
                    &format!("{path}.retry.attempts"),
                    "`attempts` must be at least 1",
                    Some("1 means no retry; 3 means two retries".into()),
                );
            }
            let b = r.backoff.as_deref().and_then(|b| duration(cx, &format!("{path}.retry.backoff"), b));
            (r.attempts.max(1), b.unwrap_or(Duration::from_secs(1)))
        }
    };
    let timeout = s.timeout.as_deref().and_then(|t| duration(cx, &format!("{path}.timeout"), t));
    if s.concurrency == Some(0) {
        cx.error(&format!("{path}.concurrency"), "`concurrency` must be at least 1", None);
    }
    if s.concurrency_total == Some(0) {
        cx.error(
            &format!("{path}.concurrency_total"),
            "`concurrency_total` must be at least 1",
            Some("leave it out for no cap over all nodes".into()),
        );
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
        concurrency: match (&planned, s.concurrency) {
            (_, Some(c)) => c.max(1) as usize,
            (Some((_, k)), None) => k.default_concurrency.max(1),
            _ => 1,
        },
        concurrency_total: s.concurrency_total,
        on_error: s.on_error.unwrap_or_default(),
        kind_name: planned.as_ref()?.0,
        per_item: planned.as_ref()?.1.per_item,
        reads: std::mem::replace(&mut cx.step_reads, super::templates::Reads::none()),
        kind: planned?.1.kind,
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
