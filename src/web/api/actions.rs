//! The actions as JSON: the same `control` calls as the dashboard's forms, the same refusals
//! (`{"error": ...}` with 404, 400, 409 or 403), and the audit log. `POST
//! /api/workflows/{name}/runs` is also the trigger for webhooks (helpdesk, CRM).
//!
//! Every POST needs `Content-Type: application/json` (an empty body is `{}`): a page on another
//! site can send a form or `text/plain` to a loopback server without asking, but not JSON.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::store::{ActionFilter, Resolution};
use crate::web::auth::{Caller, Role};
use crate::web::pages::actions::control_error;
use crate::web::{ApiError, App, WebError};

/// The paths below, for the main document to nest.
#[derive(OpenApi)]
#[openapi(paths(run, resume, cancel, resolve, pause, unpause, list), tags((name = "actions", description = "Start, resume, cancel, pause, unpause, resolve; the audit log")))]
pub(crate) struct ActionsApi;

pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/api/workflows/{name}/runs", post(run))
        .route("/api/workflows/{name}/pause", post(pause))
        .route("/api/workflows/{name}/unpause", post(unpause))
        .route("/api/runs/{id}/resume", post(resume))
        .route("/api/runs/{id}/cancel", post(cancel))
        .route("/api/runs/{id}/resolve", post(resolve))
        .route("/api/actions", get(list))
}

/// Every failed request.
#[derive(Serialize, ToSchema)]
pub(crate) struct ActionError {
    #[schema(examples("no workflow named `nightly` in the workflows folder; `cxflow validate` lists them"))]
    pub error: String,
}

/// The request body as `T`; a missing body is `{}`. Refuses anything not declared JSON.
fn body<T: DeserializeOwned>(headers: &HeaderMap, bytes: &Bytes) -> Result<T, ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError(WebError::BadRequest(
            "send the body as JSON with `Content-Type: application/json` (an empty body stands for `{}`)".into(),
        )));
    }
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    serde_json::from_slice(text).map_err(|e| {
        ApiError(WebError::BadRequest(format!("the request body does not fit this endpoint: {e}; `/api/openapi.json` describes it")))
    })
}

fn operator(caller: Result<Caller, WebError>) -> Result<Caller, ApiError> {
    let caller = caller.map_err(ApiError)?;
    caller.require(Role::Operator).map_err(ApiError)?;
    Ok(caller)
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RunRequest {
    /// Values for the workflow's `params:`; those left out take their defaults.
    #[schema(value_type = Object, examples(json!({"ticket_id": "T-1042", "region": "eu"})))]
    pub params: Map<String, Value>,
}

/// A run started or resumed; it goes on in the background: poll `GET /api/runs/{run_id}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct RunStarted {
    pub run_id: i64,
    /// The run's page in the dashboard.
    #[schema(examples("/runs/42"))]
    pub url: String,
}

impl RunStarted {
    fn new(run_id: i64) -> RunStarted {
        RunStarted { run_id, url: format!("/runs/{run_id}") }
    }
}

/// Start workflow `name` now (also the webhook trigger).
///
/// Plans the workflow named by its `name:`, checks the parameters against its `params:` (an
/// unknown one, or a required one missing, is a 400), and answers as soon as the run is in the
/// run log. The run's trigger is `manual`; the audit log records who started it.
#[utoipa::path(post, path = "/api/workflows/{name}/runs", tag = "actions",
    params(("name" = String, Path, description = "the workflow's `name:`")),
    request_body = RunRequest,
    responses(
        (status = 201, description = "started", body = RunStarted),
        (status = 400, description = "bad parameters, or the workflow does not validate", body = ActionError),
        (status = 403, description = "the caller is not an operator", body = ActionError),
        (status = 404, description = "no workflow of that name", body = ActionError),
    ))]
pub(crate) async fn run(
    State(app): State<App>,
    caller: Result<Caller, WebError>,
    Path(name): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<(StatusCode, Json<RunStarted>), ApiError> {
    let caller = operator(caller)?;
    let req: RunRequest = body(&headers, &bytes)?;
    let id = app.control.start_run(&caller.actor(), &name, req.params).await.map_err(control_error)?;
    Ok((StatusCode::CREATED, Json(RunStarted::new(id))))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ResumeRequest {
    /// Run this step and the ones after it again, every item; without it, what did not succeed.
    pub from: Option<String>,
}

/// Resume run `id` (from a step), as `cxflow resume` would, in the background.
#[utoipa::path(post, path = "/api/runs/{id}/resume", tag = "actions",
    params(("id" = i64, Path, description = "run id")),
    request_body = ResumeRequest,
    responses(
        (status = 200, description = "resumed", body = RunStarted),
        (status = 400, description = "an unknown step, a dry run, or already succeeded", body = ActionError),
        (status = 403, body = ActionError), (status = 404, body = ActionError),
        (status = 409, description = "still running in some process", body = ActionError),
    ))]
pub(crate) async fn resume(
    State(app): State<App>,
    caller: Result<Caller, WebError>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Json<RunStarted>, ApiError> {
    let caller = operator(caller)?;
    let req: ResumeRequest = body(&headers, &bytes)?;
    let from = req.from.filter(|f| !f.is_empty());
    let id = app.control.resume(&caller.actor(), id, from).await.map_err(control_error)?;
    Ok(Json(RunStarted::new(id)))
}

/// No fields: the body of cancel and unpause, which need nothing.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Empty {}

#[derive(Serialize, ToSchema)]
pub(crate) struct Cancelled {
    pub run_id: i64,
    pub requested_by: String,
    /// RFC 3339, UTC.
    pub requested_at: String,
}

/// Ask run `id` to stop: it ends `interrupted` (resumable) with `cancelled by <who> at <time>`.
#[utoipa::path(post, path = "/api/runs/{id}/cancel", tag = "actions",
    params(("id" = i64, Path, description = "run id")),
    request_body(content = Empty, description = "nothing, or `{}`"),
    responses(
        (status = 200, description = "requested; the first request stands", body = Cancelled),
        (status = 403, body = ActionError), (status = 404, body = ActionError),
        (status = 409, description = "the run is not running", body = ActionError),
    ))]
pub(crate) async fn cancel(
    State(app): State<App>,
    caller: Result<Caller, WebError>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Json<Cancelled>, ApiError> {
    let caller = operator(caller)?;
    let _: Empty = body(&headers, &bytes)?;
    let req = app.control.cancel(&caller.actor(), id).await.map_err(control_error)?;
    Ok(Json(Cancelled { run_id: id, requested_by: req.by, requested_at: req.at }))
}

#[derive(Deserialize, Serialize, Clone, Copy, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Decision {
    /// It arrived: never send it again.
    Sent,
    /// It did not: the next resume sends it.
    NotSent,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResolveRequest {
    /// Item keys of uncertain deliveries of the run.
    #[serde(default)]
    pub items: Vec<String>,
    /// Every uncertain delivery of the run (then `items` must be empty).
    #[serde(default)]
    pub all: bool,
    #[serde(rename = "as")]
    pub decision: Decision,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Resolved {
    pub run_id: i64,
    pub resolved: Vec<ResolvedItem>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ResolvedItem {
    /// The ledger key.
    pub key: String,
    pub step_id: String,
    pub item_key: String,
    /// `sent` or `not-sent`.
    pub state: String,
}

/// Record the decision about uncertain deliveries of run `id`.
#[utoipa::path(post, path = "/api/runs/{id}/resolve", tag = "actions",
    params(("id" = i64, Path, description = "run id")),
    request_body = ResolveRequest,
    responses(
        (status = 200, description = "recorded", body = Resolved),
        (status = 400, description = "an item that is not uncertain, or neither items nor all", body = ActionError),
        (status = 403, body = ActionError), (status = 404, body = ActionError),
        (status = 409, description = "a live run still holds the key", body = ActionError),
    ))]
pub(crate) async fn resolve(
    State(app): State<App>,
    caller: Result<Caller, WebError>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Json<Resolved>, ApiError> {
    let caller = operator(caller)?;
    let req: ResolveRequest = body(&headers, &bytes)?;
    if req.all != req.items.is_empty() {
        let msg =
            if req.all { "give `items` or `all: true`, not both" } else { "name the uncertain `items` to resolve, or set `all: true`" };
        return Err(ApiError(WebError::BadRequest(msg.into())));
    }
    let decision = match req.decision {
        Decision::Sent => Resolution::Sent,
        Decision::NotSent => Resolution::NotSent,
    };
    let rows = app.control.resolve(&caller.actor(), id, &req.items, decision).await.map_err(control_error)?;
    let resolved =
        rows.into_iter().map(|r| ResolvedItem { key: r.key, step_id: r.step_id, item_key: r.item_key, state: r.state }).collect();
    Ok(Json(Resolved { run_id: id, resolved }))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct PauseRequest {
    /// Shown with every skipped fire and by `cxflow next`.
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct PauseState {
    pub workflow: String,
    /// Whether the schedule is paused now (false after an unpause; the rest describes the pause lifted).
    pub paused: bool,
    pub paused_by: String,
    /// RFC 3339, UTC.
    pub paused_at: String,
    pub reason: Option<String>,
}

impl PauseState {
    fn new(p: crate::store::Pause, paused: bool) -> PauseState {
        PauseState { workflow: p.workflow, paused, paused_by: p.paused_by, paused_at: p.paused_at, reason: p.reason }
    }
}

/// Pause workflow `name`'s schedule: its fires are recorded as skipped until unpaused.
#[utoipa::path(post, path = "/api/workflows/{name}/pause", tag = "actions",
    params(("name" = String, Path, description = "the workflow's `name:`")),
    request_body = PauseRequest,
    responses(
        (status = 200, description = "paused (a paused workflow keeps its first pause)", body = PauseState),
        (status = 403, body = ActionError), (status = 404, body = ActionError),
    ))]
pub(crate) async fn pause(
    State(app): State<App>,
    caller: Result<Caller, WebError>,
    Path(name): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Json<PauseState>, ApiError> {
    let caller = operator(caller)?;
    let req: PauseRequest = body(&headers, &bytes)?;
    let reason = req.reason.map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
    let p = app.control.pause(&caller.actor(), &name, reason).await.map_err(control_error)?;
    Ok(Json(PauseState::new(p, true)))
}

/// Lift the pause of workflow `name`; its next fire runs.
#[utoipa::path(post, path = "/api/workflows/{name}/unpause", tag = "actions",
    params(("name" = String, Path, description = "the workflow's `name:`")),
    request_body(content = Empty, description = "nothing, or `{}`"),
    responses(
        (status = 200, description = "the pause lifted", body = PauseState),
        (status = 400, description = "not paused", body = ActionError),
        (status = 403, body = ActionError),
    ))]
pub(crate) async fn unpause(
    State(app): State<App>,
    caller: Result<Caller, WebError>,
    Path(name): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Json<PauseState>, ApiError> {
    let caller = operator(caller)?;
    let _: Empty = body(&headers, &bytes)?;
    let p = app.control.unpause(&caller.actor(), &name).await.map_err(control_error)?;
    Ok(Json(PauseState::new(p, false)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ActionsQuery {
    pub workflow: Option<String>,
    pub actor: Option<String>,
    /// run, resume, cancel, pause, unpause or resolve.
    pub action: Option<String>,
    pub run_id: Option<i64>,
    /// Actions older than this id: a page's `next`.
    pub before: Option<i64>,
    /// At most this many (default 50, at most 500).
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Action {
    pub id: i64,
    /// RFC 3339, UTC.
    pub at: String,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub workflow: Option<String>,
    pub run_id: Option<i64>,
    /// What the action was given: parameters, items, reason, step.
    #[schema(value_type = Option<Object>)]
    pub detail: Option<Value>,
    /// `ok`, or `refused: <why>`.
    pub outcome: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ActionsPage {
    /// Newest first.
    pub actions: Vec<Action>,
    /// Pass as `before` for the next (older) page; absent on the last.
    pub next: Option<i64>,
}

/// The audit log: every action, done or refused, with who asked; newest first.
#[utoipa::path(get, path = "/api/actions", tag = "actions", params(ActionsQuery),
    responses((status = 200, body = ActionsPage), (status = 403, body = ActionError)))]
pub(crate) async fn list(
    State(app): State<App>,
    caller: Result<Caller, WebError>,
    Query(q): Query<ActionsQuery>,
) -> Result<Json<ActionsPage>, ApiError> {
    let caller = caller.map_err(ApiError)?;
    caller.require(Role::Viewer).map_err(ApiError)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let filter = ActionFilter { workflow: q.workflow, run_id: q.run_id, actor: q.actor, action: q.action };
    let mut rows = app.store.actions(&filter, q.before, limit + 1).await.map_err(ApiError::from)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(|r| r.id) } else { None };
    let actions = rows
        .into_iter()
        .map(|r| Action {
            id: r.id,
            at: r.at,
            actor: r.actor,
            role: r.role,
            action: r.action,
            workflow: r.workflow,
            run_id: r.run_id,
            detail: r.detail.and_then(|d| serde_json::from_str(&d).ok()),
            outcome: r.outcome,
        })
        .collect();
    Ok(Json(ActionsPage { actions, next }))
}

#[cfg(test)]
#[path = "actions_tests.rs"]
mod tests;
