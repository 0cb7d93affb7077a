//! `/`: the workflows, a page at a time (`?page=N`, 100 a page, in name order) and narrowed by
//! name (`?q=TEXT`, case-insensitive, anywhere in the name), each with its schedule, next fires,
//! last run, recent durations and recent failures; then, on every page, the workflow files that
//! do not validate. Only the page's workflows are read (`Store::workflow_summaries`, two queries)
//! and only their fires are worked out: with 10,000 workflows, one page of all of them was 6.4 MB
//! of HTML, and the memory built for it stayed with the server.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Query, State};
use chrono::{DateTime, Local, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use super::{fmt, sparkline};
use crate::engine::Plan;
use crate::scheduler::calendar::skip_reason;
use crate::store::{WorkflowSummary, FAILURE_DAYS};
use crate::web::auth::{Caller, Role};
use crate::web::workflows::Broken;
use crate::web::{layout, App, WebError};

/// Fires shown per workflow.
const NEXT_FIRES: usize = 3;
/// Workflows per page.
const PER_PAGE: usize = 100;

/// The query string as the form and the pager links send it; an empty field is no filter.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Filters {
    page: Option<String>,
    q: Option<String>,
}

pub(super) async fn page(State(app): State<App>, caller: Caller, Query(f): Query<Filters>) -> Result<Markup, WebError> {
    caller.require(Role::Viewer)?;
    let page = fmt::number::<NonZeroUsize>("page", &f.page, "a page number; pages count from 1")?.map_or(1, NonZeroUsize::get);
    let now = Utc::now();
    let snap = app.workflows.snapshot();
    let shown = Shown::pick(&snap.good, fmt::given(&f.q), page);
    let summaries = load(&app, &shown.rows, now).await?;
    let broken: Vec<(&Broken, Option<String>)> = snap.bad.iter().map(|b| (b, still_running(&app, &b.file))).collect();
    Ok(layout::page("Overview", &caller, render(&shown, &summaries, &broken, app.scheduled.is_some(), now)))
}

/// The summaries of the workflows on the page, and of no other.
async fn load(app: &App, rows: &[&Arc<Plan>], now: DateTime<Utc>) -> Result<HashMap<String, WorkflowSummary>, WebError> {
    if rows.is_empty() {
        return Ok(HashMap::new());
    }
    let names: Vec<String> = rows.iter().map(|p| p.name.clone()).collect();
    Ok(app.store.workflow_summaries(&names, now).await?)
}

/// One page of the workflows: which, and where it lies among those the filter keeps.
pub(super) struct Shown<'a> {
    /// The page's workflows, in name order.
    pub(super) rows: Vec<&'a Arc<Plan>>,
    /// The name filter, as given (trimmed).
    pub(super) q: Option<&'a str>,
    /// 1-based, as asked (it may lie past the last page).
    pub(super) page: usize,
    /// Pages of `matched` workflows; 1 when none match.
    pub(super) pages: usize,
    /// Workflows the filter keeps.
    pub(super) matched: usize,
    /// Valid workflows in all.
    pub(super) total: usize,
    /// 0-based position of the page's first workflow among the `matched`.
    pub(super) start: usize,
}

impl<'a> Shown<'a> {
    /// Page `page` of `plans` (sorted by name) whose name contains `q`, case aside.
    pub(super) fn pick(plans: &'a [Arc<Plan>], q: Option<&'a str>, page: usize) -> Shown<'a> {
        let needle = q.map(str::to_lowercase);
        let keeps = |p: &&Arc<Plan>| needle.as_deref().is_none_or(|n| p.name.to_lowercase().contains(n));
        let matched = plans.iter().filter(keeps).count();
        let start = (page - 1).saturating_mul(PER_PAGE);
        // Two passes over the names rather than a list of every match: the page keeps 100.
        let rows = plans.iter().filter(keeps).skip(start).take(PER_PAGE).collect();
        Shown { rows, q, page, pages: matched.div_ceil(PER_PAGE).max(1), matched, total: plans.len(), start }
    }

    /// The overview at page `n` with this filter (page 1 is the bare `/`).
    fn url(&self, n: usize) -> String {
        fmt::url("/", &[("q", self.q.map(str::to_string)), ("page", (n > 1).then(|| n.to_string()))])
    }
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
    shown: &Shown,
    summaries: &HashMap<String, WorkflowSummary>,
    broken: &[(&Broken, Option<String>)],
    serving: bool,
    now: DateTime<Utc>,
) -> Markup {
    let empty = WorkflowSummary::default();
    html! {
        h1 { "Workflows" }
        form.filters method="get" action="/" {
            label { "Name contains" input type="search" name="q" value=(shown.q.unwrap_or("")); }
            button.primary type="submit" { "Filter" }
            @if shown.q.is_some() { a href="/" { "Clear" } }
        }
        @if shown.total == 0 {
            p.muted { "No valid workflow files in the workflows folder." }
        } @else if shown.matched == 0 {
            p.muted #count { "No workflow name contains " code { (shown.q.unwrap_or("")) } " (of " (fmt::count(shown.total)) "). " a href="/" { "Show every workflow" } }
        } @else if shown.rows.is_empty() {
            @let there = if shown.pages == 1 { "is 1 page".to_string() } else { format!("are {} pages", fmt::count(shown.pages)) };
            p #count {
                "No workflows on page " (fmt::count(shown.page)) ": there " (there) ". "
                a href=(shown.url(shown.pages)) { "Go to the last page" } " or " a href=(shown.url(1)) { "the first" } "."
            }
        } @else {
            p #count {
                "Workflows " (fmt::count(shown.start + 1)) "–" (fmt::count(shown.start + shown.rows.len())) " of " (fmt::count(shown.matched))
                @if let Some(q) = shown.q { " matching " code { (q) } span.muted { " (" (fmt::count(shown.total)) " in all)" } }
            }
            table #workflows {
                thead { tr {
                    th { "Workflow" } th { "Schedule" } th { "Next fires (zone · local)" } th { "Last run" }
                    th { "Recent durations" } th.num { "Failures " (FAILURE_DAYS) " d" }
                } }
                tbody {
                    @for p in &shown.rows {
                        (row(p, summaries.get(&p.name).unwrap_or(&empty), now))
                    }
                }
            }
            (pager(shown))
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

/// First, previous, where we are, next, last; each keeps the filter. None with a single page.
fn pager(shown: &Shown) -> Markup {
    let (n, last) = (shown.page, shown.pages);
    html! {
        @if last > 1 {
            nav.pager aria-label="pages" {
                @if n > 1 {
                    a href=(shown.url(1)) { "« first" }
                    a rel="prev" href=(shown.url(n - 1)) { "‹ previous" }
                }
                span.muted { "page " (fmt::count(n)) " of " (fmt::count(last)) }
                @if n < last {
                    a rel="next" href=(shown.url(n + 1)) { "next ›" }
                    a href=(shown.url(last)) { "last »" }
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
