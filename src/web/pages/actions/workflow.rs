//! `/workflows/{name}`: one workflow's schedule and pause, "run now", its last runs and the
//! actions taken on it. A workflow whose file is gone (or broken) still has a page while the run
//! log knows it, so its pause can be lifted and its runs found.

use axum::extract::{Path, Query, State};
use chrono::Utc;
use maud::{html, Markup};
use serde::Deserialize;

use super::audit::actions_table;
use super::{flash, pause_toggle, run_now_form, run_url};
use crate::engine::Plan;
use crate::schedule::calendar::skip_reason;
use crate::store::{ActionFilter, RunFilter};
use crate::web::auth::{Caller, Role};
use crate::web::layout::{self, status};
use crate::web::{App, WebError};

const LAST_RUNS: i64 = 20;
const LAST_ACTIONS: i64 = 20;
const NEXT_FIRES: usize = 5;

#[derive(Deserialize)]
pub(super) struct Flash {
    done: Option<String>,
}

pub(super) async fn page(
    State(app): State<App>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<Flash>,
) -> Result<Markup, WebError> {
    caller.require(Role::Viewer)?;
    let snap = app.workflows.snapshot();
    let plan = snap.get(&name).cloned();
    let store = &app.store;
    let pause = store.schedule_pause(&name).await?;
    let runs = store.runs(&RunFilter { workflow: Some(name.clone()), status: None, limit: LAST_RUNS }).await?;
    if plan.is_none() && pause.is_none() && runs.is_empty() {
        return Err(WebError::NotFound(format!(
            "no workflow named `{name}` in the workflows folder or the run log; the overview lists them"
        )));
    }
    let filter = ActionFilter { workflow: Some(name.clone()), ..Default::default() };
    let actions = store.actions(&filter, None, LAST_ACTIONS).await?;
    let body = html! {
        (flash(q.done.as_deref()))
        h1 { "Workflow " (name) }
        @match &plan {
            Some(p) => p.muted { code { (p.file.display()) } }
            None => p.error { "No workflow file names it now (removed, renamed, or failing validation: `cxflow validate` says why); its runs and pause remain." }
        }
        h2 { "Schedule" }
        @match plan.as_deref() {
            Some(p) => (schedule(p, pause.is_some())),
            None => p.muted { "unknown while the file is missing" },
        }
        (pause_toggle(&caller, &name, pause.as_ref()))
        @if let Some(p) = &plan {
            @if caller.role.may_act() {
                h2 { "Run now" }
                (run_now_form(&caller, p))
            }
        }
        h2 { "Last runs" }
        @if runs.is_empty() {
            p.muted { "No runs yet." }
        } @else {
            table {
                thead { tr { th.num { "run" } th { "status" } th { "trigger" } th { "started" } th { "finished" } th { "error" } } }
                tbody {
                    @for r in &runs {
                        tr {
                            td.num { a href=(run_url(r.id, "")) { (r.id) } }
                            td { (status(r.status.as_str())) }
                            td { (r.trigger.as_str()) }
                            td { (r.started_at) }
                            td { (r.finished_at.as_deref().unwrap_or("")) }
                            td.error { (r.error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
            p { a href={ "/runs?workflow=" (url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()) } { "All runs of " (name) } }
        }
        h2 { "Recent actions" }
        (actions_table(&actions))
        p { a href={ "/actions?workflow=" (url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()) } { "All actions on " (name) } }
    };
    Ok(layout::page(&format!("Workflow {name}"), &caller, body))
}

/// The cron, its zone and the next fire times (or, while paused, none: each would be skipped).
fn schedule(plan: &Plan, paused: bool) -> Markup {
    let Some(s) = &plan.schedule else {
        return html! { p.muted { "No schedule: it runs when started by hand or through the API." } };
    };
    let w = &s.compiled;
    let fires: Vec<(String, Option<String>)> = w
        .cron
        .iter_after(Utc::now(), w.tz)
        .take(NEXT_FIRES)
        .map(|t| {
            let zoned = t.with_timezone(&w.tz);
            (zoned.format("%a %Y-%m-%d %H:%M:%S %Z").to_string(), skip_reason(zoned.date_naive(), w.business_days, w.calendar.as_deref()))
        })
        .collect();
    html! {
        p { code { (s.cron) } " in " (w.tz.name()) }
        @if !paused {
            p { "Next fires:" }
            ul.next-fires {
                @for (t, skip) in &fires {
                    li { (t) @if let Some(r) = skip { span.muted { " (skipped: " (r) ")" } } }
                }
            }
        }
    }
}
