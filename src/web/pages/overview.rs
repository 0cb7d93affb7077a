//! `/`: every workflow with its schedule, next fires, last run, recent durations and recent
//! failures; then the workflow files that do not validate. Three queries whatever the number of
//! workflows (`Store::workflow_summaries`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::extract::State;
use chrono::{DateTime, Local, Utc};
use maud::{html, Markup};

use super::{fmt, sparkline};
use crate::engine::Plan;
use crate::scheduler::calendar::skip_reason;
use crate::store::{WorkflowSummary, FAILURE_DAYS};
use crate::web::auth::{Caller, Role};
use crate::web::workflows::{Broken, Snapshot};
use crate::web::{layout, App, WebError};

/// Fires shown per workflow.
const NEXT_FIRES: usize = 3;

pub(super) async fn page(State(app): State<App>, caller: Caller) -> Result<Markup, WebError> {
    caller.require(Role::Viewer)?;
    let now = Utc::now();
    let (snap, summaries) = load(&app, now).await?;
    let broken: Vec<(&Broken, Option<String>)> = snap.bad.iter().map(|b| (b, still_running(&app, &b.file))).collect();
    Ok(layout::page("Overview", &caller, render(&snap.good, &summaries, &broken, app.scheduled.is_some(), now)))
}

async fn load(app: &App, now: DateTime<Utc>) -> Result<(Arc<Snapshot>, HashMap<String, WorkflowSummary>), WebError> {
    let snap = app.workflows.snapshot();
    let names: Vec<String> = snap.good.iter().map(|p| p.name.clone()).collect();
    let summaries = app.store.workflow_summaries(&names, now).await?;
    Ok((snap, summaries))
}

/// The name of the plan `serve` keeps scheduling from `file`, its last good version.
fn still_running(app: &App, file: &Path) -> Option<String> {
    let plans = app.scheduled.as_ref()?;
    let plans = plans.read().unwrap_or_else(|e| e.into_inner());
    let same = |p: &Path| p == file || (std::fs::canonicalize(p).ok().is_some_and(|c| std::fs::canonicalize(file).ok() == Some(c)));
    plans.values().find(|p| same(&p.file)).map(|p| p.name.clone())
}

/// One upcoming fire: in the workflow's zone, in the server's local time, and why the
/// scheduler will skip it (weekend with `business_days`, a calendar holiday), if it will.
struct Fire {
    zoned: String,
    local: String,
    skip: Option<String>,
}

fn next_fires(plan: &Plan, now: DateTime<Utc>) -> Vec<Fire> {
    let Some(s) = &plan.schedule else { return Vec::new() };
    let w = &s.compiled;
    w.cron
        .iter_after(now, w.tz)
        .take(NEXT_FIRES)
        .map(|t| {
            let zoned = t.with_timezone(&w.tz);
            Fire {
                zoned: zoned.format("%a %Y-%m-%d %H:%M %Z").to_string(),
                local: t.with_timezone(&Local).format("%a %Y-%m-%d %H:%M %Z").to_string(),
                skip: skip_reason(zoned.date_naive(), w.business_days, w.calendar.as_deref()),
            }
        })
        .collect()
}

fn render(
    plans: &[Arc<Plan>],
    summaries: &HashMap<String, WorkflowSummary>,
    broken: &[(&Broken, Option<String>)],
    serving: bool,
    now: DateTime<Utc>,
) -> Markup {
    let empty = WorkflowSummary::default();
    html! {
        h1 { "Workflows" }
        @if plans.is_empty() {
            p.muted { "No valid workflow files in the workflows folder." }
        } @else {
            table #workflows {
                thead { tr {
                    th { "Workflow" } th { "Schedule" } th { "Next fires (zone · local)" } th { "Last run" }
                    th { "Recent durations" } th.num { "Failures " (FAILURE_DAYS) " d" }
                } }
                tbody {
                    @for p in plans {
                        (row(p, summaries.get(&p.name).unwrap_or(&empty), now))
                    }
                }
            }
        }
        @if !broken.is_empty() {
            h2 #broken { "Workflow files with errors" }
            @for (b, running) in broken {
                section.broken {
                    h3 { code { (b.file.display()) } }
                    @match (running, serving) {
                        (Some(name), _) => p { "The last good version of " code { (name) } " keeps running until this file is fixed." },
                        (None, true) => p.error { "Nothing runs from this file until it is fixed." },
                        (None, false) => p.muted { "Nothing runs from this file until it is fixed (`cxflow ui` schedules nothing; a running `cxflow serve` keeps the last good version it loaded, if any)." },
                    }
                    pre { (b.message) }
                }
            }
        }
    }
}

fn row(p: &Plan, s: &WorkflowSummary, now: DateTime<Utc>) -> Markup {
    let runs = fmt::url("/runs", &[("workflow", Some(p.name.clone()))]);
    html! {
        tr {
            td { a href=(super::actions::workflow_url(&p.name, "")) { (p.name) } " " a.muted href=(runs) { "runs" } }
            td {
                @match &p.schedule {
                    Some(s) => { code { (s.cron) } " " span.muted { (s.timezone.name()) } },
                    None => span.muted { "manual" },
                }
            }
            td {
                @for f in next_fires(p, now) {
                    div {
                        (f.zoned) " · " span.muted { (f.local) }
                        @if let Some(why) = &f.skip { " " span.status.s-skipped title=(why) { "skipped: " (why) } }
                    }
                }
            }
            td {
                @match &s.last {
                    Some(r) => {
                        a href={ "/runs/" (r.id) } { "#" (r.id) } " " (layout::status(r.status.as_str())) " " (fmt::time(&r.started_at))
                    },
                    None => span.muted { "never ran" },
                }
            }
            td { (sparkline::svg(&s.recent)) }
            td.num {
                @if s.failures_7d > 0 {
                    // Failed and partial runs: one status filter cannot say both, the window can.
                    @let since = (now - chrono::Duration::days(FAILURE_DAYS)).format("%Y-%m-%d").to_string();
                    a.error href=(fmt::url("/runs", &[("workflow", Some(p.name.clone())), ("from", Some(since))])) title="failed or partial" { (s.failures_7d) }
                } @else { "0" }
            }
        }
    }
}
