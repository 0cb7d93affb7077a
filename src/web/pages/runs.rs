//! `/runs`: every run, newest first, filtered by workflow, status, trigger and start date, in
//! pages linked by `before=<id>` (keyset: a page is one index range however far back it is).

use axum::extract::{Query, State};
use chrono::Utc;
use maud::{html, Markup};
use serde::Deserialize;

use super::fmt;
use crate::store::{parse_time_bound, Page, RunRow, RunStatus, RunsQuery, TriggerKind};
use crate::web::auth::{Caller, Role};
use crate::web::{layout, App, WebError};

/// Runs per page.
const PER_PAGE: i64 = 50;

/// The filters as the form sends them: every field optional, an empty one no filter.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Filters {
    workflow: Option<String>,
    status: Option<String>,
    trigger: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<String>,
}

impl Filters {
    fn query(&self) -> Result<RunsQuery, WebError> {
        let bad = |e: &dyn std::fmt::Display| WebError::BadRequest(format!("{e}; fix the filter and try again"));
        Ok(RunsQuery {
            workflow: fmt::given(&self.workflow).map(str::to_string),
            status: fmt::word("status", &self.status, RunStatus::ALL, RunStatus::as_str)?,
            trigger: fmt::word("trigger", &self.trigger, TriggerKind::ALL, TriggerKind::as_str)?,
            started_from: fmt::given(&self.from).map(|s| parse_time_bound(s, false)).transpose().map_err(|e| bad(&e))?,
            started_to: fmt::given(&self.to).map(|s| parse_time_bound(s, true)).transpose().map_err(|e| bad(&e))?,
            before: fmt::number("before", &self.before, "a run id")?,
            limit: PER_PAGE,
        })
    }

    /// The filters as URL pairs, the cursor left out (each link sets its own).
    fn pairs(&self) -> Vec<(&'static str, Option<String>)> {
        vec![
            ("workflow", self.workflow.clone()),
            ("status", self.status.clone()),
            ("trigger", self.trigger.clone()),
            ("from", self.from.clone()),
            ("to", self.to.clone()),
        ]
    }

    /// The next page: these filters, runs before `next`.
    fn older(&self, next: i64) -> String {
        let mut pairs = self.pairs();
        pairs.push(("before", Some(next.to_string())));
        fmt::url("/runs", &pairs)
    }
}

pub(super) async fn page(State(app): State<App>, caller: Caller, Query(f): Query<Filters>) -> Result<Markup, WebError> {
    caller.require(Role::Viewer)?;
    let q = f.query()?;
    let (page, names) = load(&app, &q).await?;
    Ok(layout::page("Runs", &caller, render(&f, &q, &page, &names)))
}

async fn load(app: &App, q: &RunsQuery) -> Result<(Page<RunRow>, Vec<String>), WebError> {
    let page = app.store.runs_page(q).await?;
    let names = app.workflows.snapshot().good.iter().map(|p| p.name.clone()).collect();
    Ok((page, names))
}

fn select(name: &str, current: Option<&str>, words: &[&str]) -> Markup {
    html! {
        select name=(name) {
            option value="" selected[current.is_none()] { "any" }
            @for w in words { option value=(w) selected[current == Some(*w)] { (w) } }
        }
    }
}

fn render(f: &Filters, q: &RunsQuery, page: &Page<RunRow>, names: &[String]) -> Markup {
    let now = Utc::now();
    let statuses: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
    let triggers: Vec<&str> = TriggerKind::ALL.iter().map(|s| s.as_str()).collect();
    html! {
        h1 { "Runs" }
        form.filters method="get" action="/runs" {
            label { "Workflow" input name="workflow" list="workflow-names" value=(f.workflow.as_deref().unwrap_or("")); }
            datalist #workflow-names { @for n in names { option value=(n) {} } }
            label { "Status" (select("status", fmt::given(&f.status), &statuses)) }
            label { "Trigger" (select("trigger", fmt::given(&f.trigger), &triggers)) }
            label { "From" input type="date" name="from" value=(f.from.as_deref().unwrap_or("")); }
            label { "To" input type="date" name="to" value=(f.to.as_deref().unwrap_or("")); }
            button.primary type="submit" { "Filter" }
            a href="/runs" { "Clear" }
        }
        @if page.rows.is_empty() {
            p.muted { "No runs match." }
        } @else {
            table #runs {
                thead { tr {
                    th.num { "Run" } th { "Workflow" } th { "Trigger" } th { "Status" } th { "Started" } th.num { "Duration" } th { "Error" }
                } }
                tbody {
                    @for r in &page.rows {
                        tr {
                            td.num { a href={ "/runs/" (r.id) } { (r.id) } }
                            td { (r.workflow) }
                            td { (r.trigger.as_str()) }
                            td { (layout::status(r.status.as_str())) }
                            td { (fmt::time(&r.started_at)) }
                            td.num { (fmt::duration_between(&r.started_at, r.finished_at.as_deref(), now)) }
                            td.error { @if let Some(e) = &r.error { span title=(fmt::cut(e, 2000)) { (fmt::cut(e, 120)) } } }
                        }
                    }
                }
            }
        }
        nav.pager {
            @if q.before.is_some() { a href=(fmt::url("/runs", &f.pairs())) { "« newest" } }
            @if let Some(next) = page.next {
                a rel="next" href=(f.older(next)) { "older »" }
            }
        }
    }
}
