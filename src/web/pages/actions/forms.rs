//! The action forms other pages place (overview, run page, workflow page). Each renders nothing
//! for a caller who may not act: a viewer sees the state, never a button that would be refused.
//! They post plain HTML forms (no script needed) carrying the CSRF field.

use maud::{html, Markup};
use serde_json::{Map, Value};

use super::{run_url, workflow_url};
use crate::engine::{Plan, RunStatus};
use crate::store::{Pause, RunRow, TriggerKind};
use crate::web::auth::Caller;
use crate::web::layout::csrf_field;

/// Form fields of the run-now form are `param.NAME`, so a parameter named `csrf` cannot clash.
pub(crate) const PARAM_PREFIX: &str = "param.";

/// "Run now" for `plan`: one input per declared parameter, filled with its default; the
/// required ones (no default) are marked and must be filled.
pub(crate) fn run_now_form(caller: &Caller, plan: &Plan) -> Markup {
    params_form(caller, &plan.name, &plan.params)
}

pub(crate) fn params_form(caller: &Caller, workflow: &str, params: &Map<String, Value>) -> Markup {
    if !caller.role.may_act() {
        return html! {};
    }
    html! {
        form.filters.run-now method="post" action=(workflow_url(workflow, "runs")) {
            (csrf_field(caller))
            @for (name, default) in params {
                @let required = default.is_null();
                label {
                    span { (name) @if required { " " abbr.required title="required: this parameter has no default" { "*" } } }
                    input type="text" name={ (PARAM_PREFIX) (name) } value=(default_text(default)) required[required];
                }
            }
            button.primary type="submit" { "Run now" }
        }
    }
}

/// A default as the form shows it; [`form_params`] turns the unchanged text back into the
/// default's own JSON value (a number stays a number).
pub(crate) fn default_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The parameters a run-now form sent: empty fields are left out (the default applies, or a
/// required one is reported missing), a default sent back unchanged keeps its JSON type, any
/// other value is text, as with `cxflow run --var`.
pub(crate) fn form_params(fields: &[(String, String)], declared: Option<&Map<String, Value>>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in fields {
        let Some(name) = k.strip_prefix(PARAM_PREFIX) else { continue };
        if v.is_empty() {
            continue;
        }
        let value = match declared.and_then(|d| d.get(name)) {
            Some(default) if !default.is_null() && default_text(default) == *v => default.clone(),
            _ => Value::String(v.clone()),
        };
        out.insert(name.to_string(), value);
    }
    out
}

/// Resume (and resume from a step), or cancel while the run is going.
pub(crate) fn run_actions<S: AsRef<str>>(caller: &Caller, run: &RunRow, steps: &[S]) -> Markup {
    if !caller.role.may_act() || run.trigger == TriggerKind::DryRun {
        return html! {};
    }
    html! {
        div.run-actions.filters {
            @if run.status == RunStatus::Running {
                form.inline method="post" action=(run_url(run.id, "cancel")) {
                    (csrf_field(caller))
                    button.danger type="submit" title="items in flight finish within the grace; the run ends interrupted and can be resumed" { "Cancel run" }
                }
            } @else {
                @if run.status != RunStatus::Succeeded {
                    form.inline method="post" action=(run_url(run.id, "resume")) {
                        (csrf_field(caller))
                        button.primary type="submit" title="runs again what did not succeed" { "Resume" }
                    }
                }
                @if !steps.is_empty() {
                    form.inline method="post" action=(run_url(run.id, "resume")) {
                        (csrf_field(caller))
                        label {
                            "Resume from step (it and the steps after it run every item again)"
                            select name="from" required {
                                @for s in steps { option value=(s.as_ref()) { (s.as_ref()) } }
                            }
                        }
                        button type="submit" { "Resume from step" }
                    }
                }
            }
        }
    }
}

/// The decision about a run's uncertain deliveries: (step, item key) each, as `cxflow show`
/// lists them.
pub(crate) fn resolve_form(caller: &Caller, run_id: i64, items: &[(String, String)]) -> Markup {
    if items.is_empty() || !caller.role.may_act() {
        return html! {};
    }
    html! {
        form.resolve method="post" action=(run_url(run_id, "resolve")) {
            (csrf_field(caller))
            p {
                "These deliveries may or may not have reached the other side: cxflow will not send them again "
                "until you decide. Look in the mail server's log (or the recipient's mailbox) for each message "
                "(its Message-ID is derived from the key), then record what you found."
            }
            table {
                thead { tr { th { "" } th { "step" } th { "item" } } }
                tbody {
                    @for (step, key) in items {
                        tr {
                            td { input type="checkbox" name="items" value=(key) id={ "resolve-" (step) "-" (key) }; }
                            td { (step) }
                            td { label for={ "resolve-" (step) "-" (key) } { code { (key) } } }
                        }
                    }
                }
            }
            p { label { input type="checkbox" name="all" value="1"; " all " (items.len()) " uncertain deliveries of this run" } }
            p {
                button.primary type="submit" name="as" value="sent" { "Sent" }
                " it arrived: never send it again. "
                button.danger type="submit" name="as" value="not-sent" { "Not sent" }
                " it did not arrive: the next resume sends it."
            }
        }
    }
}

/// Whether `workflow`'s schedule is paused (everyone sees that), with the button that flips it
/// for operators; pausing asks for an optional reason.
pub(crate) fn pause_toggle(caller: &Caller, workflow: &str, pause: Option<&Pause>) -> Markup {
    let act = caller.role.may_act();
    html! {
        div.pause-toggle {
            @if let Some(p) = pause {
                p { span.status.s-interrupted { "paused" } " " (p.skip_reason()) }
                @if act {
                    form.inline method="post" action=(workflow_url(workflow, "unpause")) {
                        (csrf_field(caller))
                        button.primary type="submit" { "Unpause" }
                    }
                }
            } @else {
                @if act {
                    form.filters method="post" action=(workflow_url(workflow, "pause")) {
                        (csrf_field(caller))
                        label { "Reason (optional)" input type="text" name="reason" placeholder="portal maintenance"; }
                        button.danger type="submit" title="each fire is recorded as skipped until unpaused; skipped fires are not caught up" { "Pause schedule" }
                    }
                }
            }
        }
    }
}

/// The message an action's redirect carries (`?done=...`), escaped like everything else.
pub(crate) fn flash(done: Option<&str>) -> Markup {
    html! { @if let Some(m) = done.filter(|m| !m.is_empty()) { div.flash role="status" { (m) } } }
}
