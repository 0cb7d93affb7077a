//! `/api/runs`, `/api/runs/{id}`, its items and artifacts.

use std::path::Path as FsPath;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use super::types::{
    json_or_text, Artifact, ArtifactsPage, Item, ItemStatusWord, ItemsPage, Run, RunDetail, RunStatusWord, RunsPage, Step, TriggerWord,
    Uncertain,
};
use super::{bad, bad_path, bad_query, data, ApiCaller, ListErrors, OneErrors};
use crate::store::api_tmp::ApiRunsQuery;
use crate::store::{ItemCursor, ItemStatus, ItemsQuery, RunStatus, TriggerKind};
use crate::web::auth::Role;
use crate::web::{ApiError, App};

/// Rows per page when `limit` is not given, and the most one page holds.
pub(super) const DEFAULT_LIMIT: i64 = 100;
pub(super) const MAX_LIMIT: i64 = 500;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunsParams {
    /// Only runs of this workflow.
    workflow: Option<String>,
    /// Only runs with this status.
    #[param(value_type = Option<RunStatusWord>)]
    status: Option<String>,
    /// Only runs started this way.
    #[param(value_type = Option<TriggerWord>)]
    trigger: Option<String>,
    /// Runs started at or after this time: RFC 3339, or a date (UTC).
    from: Option<String>,
    /// Runs started before this time: RFC 3339, or a date (UTC), which includes that day.
    to: Option<String>,
    /// The `next` of the previous page: runs older than that one.
    #[param(value_type = Option<i64>)]
    before: Option<String>,
    /// Runs per page (default 100, at most 500).
    #[param(value_type = Option<i64>)]
    limit: Option<String>,
}

/// Runs, newest first, a page at a time.
#[utoipa::path(get, path = "/api/runs", tag = "cxflow", params(RunsParams),
    responses((status = 200, description = "A page of runs", body = RunsPage), ListErrors))]
pub(super) async fn list(
    State(app): State<App>,
    caller: ApiCaller,
    q: Result<Query<RunsParams>, QueryRejection>,
) -> Result<Json<RunsPage>, ApiError> {
    caller.require(Role::Viewer)?;
    let Query(p) = q.map_err(bad_query)?;
    let q = ApiRunsQuery {
        workflow: p.workflow.filter(|w| !w.is_empty()),
        status: word::<RunStatus>("status", p.status)?,
        trigger: word::<TriggerKind>("trigger", p.trigger)?,
        started_from: p.from.as_deref().map(|s| time_bound("from", s, false)).transpose()?,
        started_to: p.to.as_deref().map(|s| time_bound("to", s, true)).transpose()?,
        before: number("before", p.before)?,
        limit: limit(p.limit)?,
    };
    let page = data::runs_page(&app.store, &q).await?;
    Ok(Json(RunsPage { runs: page.rows.into_iter().map(Run::from).collect(), next: page.next.map(|n| n.to_string()) }))
}

/// A run with its steps (with counts) and the deliveries it left uncertain.
#[utoipa::path(get, path = "/api/runs/{id}", tag = "cxflow", params(("id" = i64, Path, description = "Run id")),
    responses((status = 200, description = "The run", body = RunDetail), OneErrors))]
pub(super) async fn one(
    State(app): State<App>,
    caller: ApiCaller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<RunDetail>, ApiError> {
    caller.require(Role::Viewer)?;
    let Path(id) = id.map_err(bad_path)?;
    let d = data::run(&app.store, id).await?;
    let steps = d
        .steps
        .into_iter()
        .map(|s| {
            // A running step's row is written when it ends; its items so far are counted.
            let (ok, failed, skipped) = match d.counts.iter().find(|c| c.step_id == s.step_id) {
                Some(c) => (c.ok, c.failed, c.skipped),
                None => (s.ok, s.failed, s.skipped),
            };
            Step {
                id: s.step_id,
                position: s.position,
                kind: s.kind,
                status: s.status.into(),
                ok,
                failed,
                skipped,
                started_at: s.started_at,
                finished_at: s.finished_at,
                error: s.error,
                output: s.output.as_deref().map(json_or_text),
            }
        })
        .collect();
    let uncertain = d.uncertain.into_iter().map(|u| Uncertain { key: u.key, step: u.step_id, item_key: u.item_key }).collect();
    Ok(Json(RunDetail { run: d.run.into(), steps, uncertain }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ItemsParams {
    /// Only items with this status.
    #[param(value_type = Option<ItemStatusWord>)]
    status: Option<String>,
    /// Only items of this step.
    step: Option<String>,
    /// Only items whose key starts with this text.
    q: Option<String>,
    /// The `next` of the previous page.
    after: Option<String>,
    /// Items per page (default 100, at most 500).
    #[param(value_type = Option<i64>)]
    limit: Option<String>,
}

/// A run's items in step order, then input order, a page at a time.
#[utoipa::path(get, path = "/api/runs/{id}/items", tag = "cxflow", params(("id" = i64, Path, description = "Run id"), ItemsParams),
    responses((status = 200, description = "A page of items", body = ItemsPage), OneErrors))]
pub(super) async fn items(
    State(app): State<App>,
    caller: ApiCaller,
    id: Result<Path<i64>, PathRejection>,
    q: Result<Query<ItemsParams>, QueryRejection>,
) -> Result<Json<ItemsPage>, ApiError> {
    caller.require(Role::Viewer)?;
    let Path(id) = id.map_err(bad_path)?;
    let Query(p) = q.map_err(bad_query)?;
    let q = ItemsQuery {
        step: p.step.filter(|s| !s.is_empty()),
        status: word::<ItemStatus>("status", p.status)?,
        q: p.q.filter(|s| !s.is_empty()),
        after: p.after.filter(|s| !s.is_empty()).map(|s| item_cursor(&s)).transpose()?,
        limit: limit(p.limit)?,
    };
    let page = data::items_page(&app.store, id, &q).await?;
    let items = page
        .rows
        .into_iter()
        .map(|i| Item {
            step: i.step_id,
            key: i.item_key,
            status: i.status.into(),
            attempts: i.attempts,
            error: i.error,
            output: i.output.as_deref().map(json_or_text),
            finished_at: i.finished_at,
        })
        .collect();
    Ok(Json(ItemsPage { items, next: page.next.map(|c| c.to_string()) }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ArtifactsParams {
    /// The `next` of the previous page.
    #[param(value_type = Option<i64>)]
    after: Option<String>,
    /// Artifacts per page (default 100, at most 500).
    #[param(value_type = Option<i64>)]
    limit: Option<String>,
}

/// The files a run kept (screenshots, pages, emails, digests), oldest first.
#[utoipa::path(get, path = "/api/runs/{id}/artifacts", tag = "cxflow", params(("id" = i64, Path, description = "Run id"), ArtifactsParams),
    responses((status = 200, description = "A page of artifacts", body = ArtifactsPage), OneErrors))]
pub(super) async fn artifacts(
    State(app): State<App>,
    caller: ApiCaller,
    id: Result<Path<i64>, PathRejection>,
    q: Result<Query<ArtifactsParams>, QueryRejection>,
) -> Result<Json<ArtifactsPage>, ApiError> {
    caller.require(Role::Viewer)?;
    let Path(id) = id.map_err(bad_path)?;
    let Query(p) = q.map_err(bad_query)?;
    let page = data::artifacts_page(&app.store, id, number("after", p.after)?, limit(p.limit)?).await?;
    let artifacts = page
        .rows
        .into_iter()
        .map(|a| Artifact {
            url: format!("/runs/{id}/artifacts/{}", a.id),
            id: a.id,
            step: a.step_id,
            item_key: a.item_key,
            kind: a.kind,
            name: FsPath::new(&a.path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            created_at: a.created_at,
        })
        .collect();
    Ok(Json(ArtifactsPage { artifacts, next: page.next.map(|n| n.to_string()) }))
}

/// A status or trigger word as the run log spells it; an empty value is no filter.
fn word<T: std::str::FromStr + WordList>(what: &str, v: Option<String>) -> Result<Option<T>, ApiError> {
    match v.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| {
            let shown: String = s.chars().take(40).collect();
            bad(format!("`{what}={shown}` is not one of: {}", T::words().join(", ")))
        }),
    }
}

pub(super) trait WordList {
    fn words() -> Vec<&'static str>;
}

macro_rules! word_list {
    ($($t:ty),+) => {$(
        impl WordList for $t {
            fn words() -> Vec<&'static str> {
                <$t>::ALL.iter().map(|s| s.as_str()).collect()
            }
        }
    )+};
}
word_list!(RunStatus, ItemStatus, TriggerKind);

pub(super) fn number(what: &str, v: Option<String>) -> Result<Option<i64>, ApiError> {
    match v.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s.trim().parse().map(Some).map_err(|_| {
            let shown: String = s.chars().take(40).collect();
            bad(format!("`{what}={shown}` is not a number; use the `next` value of the previous page as it was given"))
        }),
    }
}

pub(super) fn limit(v: Option<String>) -> Result<i64, ApiError> {
    Ok(match number("limit", v)? {
        None => DEFAULT_LIMIT,
        Some(n) if n <= 0 => DEFAULT_LIMIT,
        Some(n) => n.min(MAX_LIMIT),
    })
}

fn item_cursor(s: &str) -> Result<ItemCursor, ApiError> {
    s.parse().map_err(|_| {
        let shown: String = s.chars().take(40).collect();
        bad(format!("`after={shown}` is not an item cursor; use the `next` value of the previous page as it was given"))
    })
}

/// `from`/`to` as the run log stores times (RFC 3339 UTC, milliseconds, compared as text). As
/// an upper bound a date means the end of that day.
fn time_bound(what: &str, s: &str, end: bool) -> Result<String, ApiError> {
    let s = s.trim();
    let t: Option<DateTime<Utc>> = DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc)).or_else(|| {
        let day = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
        let day = if end { day.succ_opt()? } else { day };
        Some(day.and_hms_opt(0, 0, 0)?.and_utc())
    });
    match t {
        Some(t) => Ok(t.to_rfc3339_opts(SecondsFormat::Millis, true)),
        None => {
            let shown: String = s.chars().take(40).collect();
            Err(bad(format!("`{what}={shown}` is not a date (2024-05-31) or an RFC 3339 time (2024-05-31T09:00:00Z)")))
        }
    }
}
