//! `/runs/{id}`: one run. Its summary and steps refresh themselves while it runs (`data-live`
//! on `#run-live`, gone once it finished); then its items (`items.rs`), its artifacts shown
//! inline (`artifacts.rs`) and its uncertain deliveries.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use chrono::Utc;
use maud::{html, Markup};
use serde::Deserialize;

use super::artifacts::{self, Preview};
use super::{actions, fmt, items};
use crate::store::{
    ArtifactWithId, ItemCursor, ItemRowWithSeq, ItemStatus, ItemsQuery, Page, RunRow, RunStatus, StepCounts, StepRow, UncertainRow,
};
use crate::web::auth::{Caller, Role};
use crate::web::{layout, App, WebError};

/// Items per page.
const ITEMS_PER_PAGE: i64 = 100;
/// Artifacts shown inline per page (a browser step can leave one per item).
const ARTIFACTS_PER_PAGE: i64 = 30;
/// How often a running run's summary refreshes, in milliseconds.
const LIVE_MS: &str = "2000";

#[derive(Debug, Default, Deserialize)]
pub(super) struct RunFilters {
    pub(super) status: Option<String>,
    pub(super) step: Option<String>,
    pub(super) q: Option<String>,
    pub(super) after: Option<String>,
    pub(super) art_after: Option<String>,
    /// What an action just did (its redirect carries it here).
    pub(super) done: Option<String>,
}

impl RunFilters {
    fn items_query(&self) -> Result<ItemsQuery, WebError> {
        let bad = |e: &dyn std::fmt::Display| WebError::BadRequest(format!("{e}; fix the filter and try again"));
        Ok(ItemsQuery {
            step: fmt::given(&self.step).map(str::to_string),
            status: fmt::word("status", &self.status, ItemStatus::ALL, ItemStatus::as_str)?,
            // The key prefix is matched exactly: spaces count.
            q: self.q.clone().filter(|q| !q.is_empty()),
            after: fmt::given(&self.after).map(|s| s.parse::<ItemCursor>()).transpose().map_err(|e| bad(&e))?,
            limit: ITEMS_PER_PAGE,
        })
    }

    fn art_after(&self) -> Result<Option<i64>, WebError> {
        fmt::number("art_after", &self.art_after, "an artifact id")
    }
}

pub(super) struct Loaded {
    pub(super) run: RunRow,
    pub(super) steps: Vec<StepRow>,
    pub(super) counts: Vec<StepCounts>,
    pub(super) items: Page<ItemRowWithSeq, ItemCursor>,
    pub(super) artifacts: Page<ArtifactWithId>,
    pub(super) previews: HashMap<i64, Preview>,
    pub(super) uncertain: Vec<UncertainRow>,
}

pub(super) async fn page(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<i64>,
    Query(f): Query<RunFilters>,
) -> Result<Markup, WebError> {
    caller.require(Role::Viewer)?;
    let d = load(&app, id, &f.items_query()?, f.art_after()?).await?;
    Ok(layout::page(&format!("Run {id}"), &caller, render(&d, &f, &caller)))
}

async fn load(app: &App, id: i64, items: &ItemsQuery, art_after: Option<i64>) -> Result<Loaded, WebError> {
    let s = &app.store;
    // Side by side: the page takes as long as its slowest read (counting a running step's items),
    // not the sum.
    let (run, steps, counts, items, artifacts, uncertain) = tokio::try_join!(
        s.run(id),
        s.steps(id),
        s.item_counts(id),
        s.items_page(id, items),
        s.artifacts_with_ids(id, art_after, ARTIFACTS_PER_PAGE),
        s.uncertain_for_run(id),
    )?;
    let previews = artifacts::previews(app, &artifacts.rows).await;
    Ok(Loaded { run, steps, counts, items, artifacts, previews, uncertain })
}

pub(super) fn render(d: &Loaded, f: &RunFilters, caller: &Caller) -> Markup {
    let r = &d.run;
    let live = (r.status == RunStatus::Running).then_some(LIVE_MS);
    let step_ids: Vec<&str> = d.steps.iter().map(|s| s.step_id.as_str()).collect();
    let uncertain: Vec<(String, String)> = d.uncertain.iter().map(|u| (u.step_id.clone(), u.item_key.clone())).collect();
    html! {
        (actions::flash(f.done.as_deref()))
        h1 { "Run " (r.id) " · " a href=(actions::workflow_url(&r.workflow, "")) { (r.workflow) } " " (layout::status(r.status.as_str())) }
        div #run-live data-live=[live] {
            (summary(r))
            (actions::run_actions(caller, r, &step_ids))
            h2 { "Steps" }
            (steps(d))
        }
        (items::section(r.id, &d.steps, &d.items, f))
        (artifacts::section(r.id, &d.artifacts, &d.previews))
        section #uncertain {
            @if !d.uncertain.is_empty() {
                h2 { "Uncertain deliveries" }
                p { "These deliveries were started and never confirmed: they may or may not have happened. Check on the other side, then resolve them (`cxflow resolve`)." }
                table.uncertain {
                    thead { tr { th { "Step" } th { "Item" } th { "Key" } th { "Since" } } }
                    tbody {
                        @for u in &d.uncertain {
                            tr { td { (u.step_id) } td { (u.item_key) } td { code { (u.key) } } td { (fmt::time(&u.since)) } }
                        }
                    }
                }
                (actions::resolve_form(caller, r.id, &uncertain))
            }
        }
    }
}

fn summary(r: &RunRow) -> Markup {
    let params = serde_json::from_str::<serde_json::Value>(&r.params)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| r.params.clone());
    html! {
        table.summary {
            tr { th { "Workflow" } td { (r.workflow) " " span.muted { (r.file) } } }
            tr { th { "Status" } td { (layout::status(r.status.as_str())) } }
            tr { th { "Trigger" } td { (r.trigger.as_str()) @if let Some(t) = &r.scheduled_for { " for " (fmt::time(t)) } } }
            tr { th { "Params" } td { pre.params { (params) } } }
            tr { th { "Started" } td { (fmt::time(&r.started_at)) } }
            tr { th { "Finished" } td { (fmt::time_opt(r.finished_at.as_deref())) } }
            tr { th { "Duration" } td { (fmt::duration_between(&r.started_at, r.finished_at.as_deref(), Utc::now())) } }
            tr { th { "Resumes" } td { (r.resumes) } }
            @if let Some(e) = &r.error { tr { th { "Error" } td { pre.error { (e) } } } }
        }
    }
}

fn steps(d: &Loaded) -> Markup {
    let now = Utc::now();
    html! {
        @if d.steps.is_empty() {
            p.muted { "No step has started." }
        } @else {
            table #steps {
                thead { tr {
                    th.num { "#" } th { "Step" } th { "Kind" } th { "Status" } th.num { "OK" } th.num { "Failed" } th.num { "Skipped" }
                    th { "Started" } th.num { "Duration" } th { "Error" }
                } }
                tbody {
                    @for s in &d.steps {
                        @let c = d.counts.iter().find(|c| c.step_id == s.step_id);
                        tr data-step=(s.step_id) {
                            td.num { (s.position + 1) }
                            td { a href=(fmt::url(&format!("/runs/{}", d.run.id), &[("step", Some(s.step_id.clone()))])) { (s.step_id) } }
                            td { (s.kind) }
                            td { (layout::status(s.status.as_str())) }
                            td.num.ok { (c.map_or(s.ok, |c| c.ok)) }
                            td.num.failed { (c.map_or(s.failed, |c| c.failed)) }
                            td.num.skipped { (c.map_or(s.skipped, |c| c.skipped)) }
                            td { (fmt::time(&s.started_at)) }
                            td.num { (fmt::duration_between(&s.started_at, s.finished_at.as_deref(), now)) }
                            td.error { @if let Some(e) = &s.error { (fmt::expandable(e, 120)) } }
                        }
                    }
                }
            }
        }
    }
}
