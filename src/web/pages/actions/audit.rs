//! `/actions`: the audit log, newest first: who did (or tried) what, to which workflow or run,
//! and the outcome. Filters by workflow, actor and action; "older" pages by keyset (`before`).

use axum::extract::{Query, State};
use maud::{html, Markup};
use serde::Deserialize;

use super::super::fmt;
use super::{run_url, workflow_url};
use crate::store::{ActionFilter, ActionRow};
use crate::web::auth::{Caller, Role};
use crate::web::layout;
use crate::web::{App, WebError};

pub(crate) const PAGE: i64 = 50;

/// The actions control records, for the filter's choices.
const ACTIONS: &[&str] = &["run", "resume", "cancel", "pause", "unpause", "resolve"];

#[derive(Deserialize, Default)]
pub(super) struct AuditQuery {
    workflow: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    run: Option<String>,
    before: Option<String>,
}

/// An empty field of the filter form means "any".
fn given(v: &Option<String>) -> Option<String> {
    fmt::given(v).map(String::from)
}

pub(super) async fn page(State(app): State<App>, caller: Caller, Query(q): Query<AuditQuery>) -> Result<Markup, WebError> {
    caller.require(Role::Viewer)?;
    let filter = ActionFilter {
        workflow: given(&q.workflow),
        run_id: fmt::number("run", &q.run, "a run id")?,
        actor: given(&q.actor),
        action: given(&q.action),
    };
    let before = fmt::number("before", &q.before, "an action id")?;
    let mut rows = app.store.actions(&filter, before, PAGE + 1).await?;
    let older = (rows.len() as i64 > PAGE).then(|| {
        rows.truncate(PAGE as usize);
        rows.last().map(|r| r.id)
    });
    let older = older.flatten().map(|id| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [("workflow", &filter.workflow), ("actor", &filter.actor), ("action", &filter.action)] {
            if let Some(v) = v {
                s.append_pair(k, v);
            }
        }
        if let Some(r) = filter.run_id {
            s.append_pair("run", &r.to_string());
        }
        s.append_pair("before", &id.to_string());
        format!("/actions?{}", s.finish())
    });
    let body = html! {
        h1 { "Actions" }
        p.muted { "Every run, resume, cancel, pause, unpause and resolve taken from the dashboard, the API or the CLI, done or refused, with who asked." }
        form.filters method="get" action="/actions" {
            label { "workflow" input type="text" name="workflow" value=(filter.workflow.as_deref().unwrap_or("")); }
            label { "who" input type="text" name="actor" value=(filter.actor.as_deref().unwrap_or("")); }
            label { "action"
                select name="action" {
                    option value="" { "any" }
                    @for a in ACTIONS { option value=(a) selected[filter.action.as_deref() == Some(*a)] { (a) } }
                }
            }
            label { "run" input type="text" name="run" size="6" value=(filter.run_id.map(|r| r.to_string()).unwrap_or_default()); }
            button type="submit" { "Filter" }
        }
        (actions_table(&rows))
        div.pager {
            @if before.is_some() { a href="/actions" { "Newest" } }
            @if let Some(href) = &older { a href=(href) { "Older" } }
        }
    };
    Ok(layout::page("Actions", &caller, body))
}

/// Audit rows as a table (the workflow page shows the recent ones on it).
pub(crate) fn actions_table(rows: &[ActionRow]) -> Markup {
    if rows.is_empty() {
        return html! { p.muted { "No actions recorded." } };
    }
    html! {
        table.actions {
            thead { tr { th { "time" } th { "who" } th { "role" } th { "action" } th { "workflow" } th { "run" } th { "outcome" } th { "detail" } } }
            tbody {
                @for a in rows {
                    tr {
                        td { (a.at) }
                        td { (a.actor) }
                        td { (a.role) }
                        td { (a.action) }
                        td { @if let Some(w) = &a.workflow { a href=(workflow_url(w, "")) { (w) } } }
                        td.num { @if let Some(r) = a.run_id { a href=(run_url(r, "")) { (r) } } }
                        td {
                            @if a.outcome == "ok" { (layout::status("ok")) }
                            @else { span.error { (a.outcome) } }
                        }
                        td { @if let Some(d) = &a.detail { code { (d) } } }
                    }
                }
            }
        }
    }
}
