//! `/digests/{scope}/{team}`: one team's digests, newest first in the table and oldest first
//! in the charts, each with the change since the one before and links to its files.

use std::collections::HashSet;

use axum::extract::{Path, State};
use maud::{html, Markup};

use super::chart;
use crate::store::DigestPoint;
use crate::web::auth::{Caller, Role};
use crate::web::pages::{artifacts, fmt};
use crate::web::{layout, App, WebError};

/// Digests shown: about two years of weekly ones.
const SHOWN: i64 = 100;

pub(super) async fn page(State(app): State<App>, caller: Caller, Path((scope, team)): Path<(String, String)>) -> Result<Markup, WebError> {
    caller.require(Role::Viewer)?;
    let (mut history, served) = load(&app, &scope, &team).await?;
    if history.is_empty() {
        return Err(WebError::NotFound(format!(
            "no digests for team `{}` in `{}`; /digests lists the teams that have some",
            fmt::cut(&team, 80),
            fmt::cut(&scope, 80)
        )));
    }
    // One more than shown was read, for the change of the oldest one shown.
    let before_shown = (history.len() as i64 > SHOWN).then(|| history.pop()).flatten();
    Ok(layout::page(&format!("Digests of {team}"), &caller, render(&scope, &team, &history, before_shown.as_ref(), &served)))
}

/// The history, and which of its files the artifact route serves (a route step's `out_dir`
/// outside the artifacts folder, or a pruned run, leaves files it refuses).
async fn load(app: &App, scope: &str, team: &str) -> Result<(Vec<DigestPoint>, HashSet<i64>), WebError> {
    let history = app.store.digest_history(scope, team, SHOWN + 1).await?;
    let mut served = HashSet::new();
    for d in history.iter().take(SHOWN as usize) {
        for id in [d.artifact_id, d.markdown_artifact_id].into_iter().flatten() {
            if let Some(a) = app.store.artifact(d.run_id, id).await? {
                if artifacts::confined(app, &a.path).is_some() {
                    served.insert(id);
                }
            }
        }
    }
    Ok((history, served))
}

fn signed(v: f64, show: fn(f64) -> String) -> String {
    if v > 0.0 {
        format!("+{}", show(v))
    } else {
        show(v)
    }
}

/// What changed since `prev`: items, average rating, CSAT (in points).
fn change(d: &DigestPoint, prev: Option<&DigestPoint>) -> Markup {
    let Some(p) = prev else { return html! { span.muted { "first digest" } } };
    let items = d.count - p.count;
    let both = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a - b);
    html! {
        span title={ "since run #" (p.run_id) } {
            (if items > 0 { format!("+{items}") } else { items.to_string() }) " items"
            @if let Some(r) = both(d.avg_rating, p.avg_rating) { ", rating " (signed(r, chart::rating)) }
            @if let Some(c) = both(d.csat, p.csat) { ", CSAT " (signed(c, |v| format!("{v:.1}"))) " pt" }
        }
    }
}

fn file_link(run_id: i64, id: Option<i64>, label: &str, served: &HashSet<i64>) -> Markup {
    html! {
        @match id {
            Some(id) if served.contains(&id) => a href={ "/runs/" (run_id) "/artifacts/" (id) } { (label) },
            Some(_) => span.muted title="the file is gone, or lies outside the artifacts folder" { (label) " (not served)" },
            None => span.muted title="a dry run, or the run was pruned" { "no " (label) },
        }
    }
}

fn render(scope: &str, team: &str, history: &[DigestPoint], before_shown: Option<&DigestPoint>, served: &HashSet<i64>) -> Markup {
    let oldest_first: Vec<&DigestPoint> = history.iter().rev().collect();
    html! {
        p.muted { a href="/digests" { "Digests" } " / " code { (scope) } }
        h1 { (team) }
        p.muted {
            (history.len()) " digest" @if history.len() != 1 { "s" }
            @if before_shown.is_some() { " shown, the newest " (SHOWN) "; older ones are in " code { "/api/digests" } }
        }
        (chart::trends(&oldest_first))
        h2 { "History" }
        table #digest-history {
            thead { tr {
                th.num { "Run" } th { "When" } th.num { "Items" } th.num { "Urgent" } th.num { "Rated" }
                th.num { "Avg rating" } th.num { "CSAT" } th { "Change" } th { "Digest" }
            } }
            tbody {
                @for (i, d) in history.iter().enumerate() {
                    tr {
                        td.num { a href={ "/runs/" (d.run_id) } { (d.run_id) } }
                        td { (fmt::time(&d.created_at)) }
                        td.num { (d.count) }
                        td.num { (d.urgent) }
                        td.num { (d.rated) }
                        td.num { @match d.avg_rating { Some(r) => (chart::rating(r)), None => span.muted { "—" } } }
                        td.num { @match d.csat { Some(c) => (chart::percent(c)), None => span.muted { "—" } } }
                        td { (change(d, history.get(i + 1).or(before_shown))) }
                        td { (file_link(d.run_id, d.artifact_id, "HTML", served)) " · " (file_link(d.run_id, d.markdown_artifact_id, "Markdown", served)) }
                    }
                }
            }
        }
    }
}
