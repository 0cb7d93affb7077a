//! The actions as JSON: the same `control` calls as the dashboard's forms, the same refusals
//! (`{"error": ...}` with 404, 400, 409 or 403), and the audit log. `POST
//! /api/workflows/{name}/runs` is also the trigger for webhooks (helpdesk, CRM).
//!
//! Every POST needs `Content-Type: application/json` (an empty body is `{}`): a page on another
//! site can send a form or `text/plain` to a loopback server without asking, but not JSON.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use utoipa::OpenApi;

use crate::control::Actor;
use crate::store::{ActionFilter, Resolution};
use crate::web::auth::{Caller, Role};
use crate::web::pages::actions::control_error;
use crate::web::{ApiError, App, WebError};
pub(crate) use types::*;

mod types;

/// The paths below, for the main document to nest.
#[derive(OpenApi)]
#[openapi(paths(run, resume, cancel, resolve, pause, unpause, list), components(schemas(ActionError)), tags((name = "actions", description = "Start, resume, cancel, pause, unpause, resolve; the audit log")))]
pub(crate) struct ActionsApi;

/// What any action may answer instead of its result, each with `{"error": ...}` saying why.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum ActionErrors {
    /// A malformed path or body, or what the action refuses (an unknown parameter or step, a dry run, an item that is not uncertain, a workflow not paused).
    #[response(status = 400)]
    BadRequest(ActionError),
    /// Not authenticated: no token, or an unknown one.
    #[response(status = 401)]
    Unauthorized(ActionError),
    /// The caller is not an operator or admin.
    #[response(status = 403)]
    Forbidden(ActionError),
    /// No such run or workflow.
    #[response(status = 404)]
    NotFound(ActionError),
    /// The run is still running in some process, is not running (cancel), or a live run holds the key (resolve).
    #[response(status = 409)]
    Conflict(ActionError),
    /// The server failed; its log has the details.
    #[response(status = 500)]
    Internal(ActionError),
}

impl super::ApiRouter {
    /// The action endpoints, recorded like the read ones so the document test sees them.
    pub(super) fn actions(self) -> super::ApiRouter {
        self.post("/api/workflows/{name}/runs", post(run))
            .post("/api/workflows/{name}/pause", post(pause))
            .post("/api/workflows/{name}/unpause", post(unpause))
            .post("/api/runs/{id}/resume", post(resume))
            .post("/api/runs/{id}/cancel", post(cancel))
            .post("/api/runs/{id}/resolve", post(resolve))
            .get("/api/actions", get(list))
    }
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

/// An operator's request to act: who asks (refused unless operator or admin), and the JSON
/// body as `T`. Taken last by every action handler, after its path.
pub(crate) struct Act<T>(Actor, T);

/// Larger than any parameters a form or webhook sends.
const MAX_BODY: usize = 1 << 20;

impl<T: DeserializeOwned> FromRequest<App> for Act<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &App) -> Result<Act<T>, ApiError> {
        let (mut parts, raw) = req.into_parts();
        let caller = operator(Caller::from_request_parts(&mut parts, app).await)?;
        let bytes = axum::body::to_bytes(raw, MAX_BODY)
            .await
            .map_err(|_| ApiError(WebError::BadRequest(format!("the request body is larger than {MAX_BODY} bytes, or was cut off"))))?;
        Ok(Act(caller.actor(), body(&parts.headers, &bytes)?))
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
        ActionErrors,
    ))]
pub(crate) async fn run(
    State(app): State<App>,
    Path(name): Path<String>,
    Act(actor, req): Act<RunRequest>,
) -> Result<(StatusCode, Json<RunStarted>), ApiError> {
    let id = app.control.start_run(&actor, &name, req.params).await.map_err(control_error)?;
    Ok((StatusCode::CREATED, Json(RunStarted::new(id))))
}

/// Resume run `id` (from a step), as `cxflow resume` would, in the background.
#[utoipa::path(post, path = "/api/runs/{id}/resume", tag = "actions",
    params(("id" = i64, Path, description = "run id")),
    request_body = ResumeRequest,
    responses(
        (status = 200, description = "resumed", body = RunStarted),
        ActionErrors,
    ))]
pub(crate) async fn resume(
    State(app): State<App>,
    Path(id): Path<i64>,
    Act(actor, req): Act<ResumeRequest>,
) -> Result<Json<RunStarted>, ApiError> {
    let from = req.from.filter(|f| !f.is_empty());
    let id = app.control.resume(&actor, id, from).await.map_err(control_error)?;
    Ok(Json(RunStarted::new(id)))
}

/// Ask run `id` to stop: it ends `interrupted` (resumable) with `cancelled by <who> at <time>`.
#[utoipa::path(post, path = "/api/runs/{id}/cancel", tag = "actions",
    params(("id" = i64, Path, description = "run id")),
    request_body(content = Empty, description = "nothing, or `{}`"),
    responses(
        (status = 200, description = "requested; the first request stands", body = Cancelled),
        ActionErrors,
    ))]
pub(crate) async fn cancel(State(app): State<App>, Path(id): Path<i64>, Act(actor, _): Act<Empty>) -> Result<Json<Cancelled>, ApiError> {
    let req = app.control.cancel(&actor, id).await.map_err(control_error)?;
    Ok(Json(Cancelled { run_id: id, requested_by: req.by, requested_at: req.at }))
}

/// Record the decision about uncertain deliveries of run `id`.
#[utoipa::path(post, path = "/api/runs/{id}/resolve", tag = "actions",
    params(("id" = i64, Path, description = "run id")),
    request_body = ResolveRequest,
    responses(
        (status = 200, description = "recorded", body = Resolved),
        ActionErrors,
    ))]
pub(crate) async fn resolve(
    State(app): State<App>,
    Path(id): Path<i64>,
    Act(actor, req): Act<ResolveRequest>,
) -> Result<Json<Resolved>, ApiError> {
    if req.all != req.items.is_empty() {
        let msg =
            if req.all { "give `items` or `all: true`, not both" } else { "name the uncertain `items` to resolve, or set `all: true`" };
        return Err(ApiError(WebError::BadRequest(msg.into())));
    }
    let decision = match req.decision {
        Decision::Sent => Resolution::Sent,
        Decision::NotSent => Resolution::NotSent,
    };
    let rows = app.control.resolve(&actor, id, &req.items, decision).await.map_err(control_error)?;
    let resolved =
        rows.into_iter().map(|r| ResolvedItem { key: r.key, step_id: r.step_id, item_key: r.item_key, state: r.state }).collect();
    Ok(Json(Resolved { run_id: id, resolved }))
}

/// Pause workflow `name`'s schedule: its fires are recorded as skipped until unpaused.
#[utoipa::path(post, path = "/api/workflows/{name}/pause", tag = "actions",
    params(("name" = String, Path, description = "the workflow's `name:`")),
    request_body = PauseRequest,
    responses(
        (status = 200, description = "paused (a paused workflow keeps its first pause)", body = PauseState),
        ActionErrors,
    ))]
pub(crate) async fn pause(
    State(app): State<App>,
    Path(name): Path<String>,
    Act(actor, req): Act<PauseRequest>,
) -> Result<Json<PauseState>, ApiError> {
    let reason = req.reason.map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
    let p = app.control.pause(&actor, &name, reason).await.map_err(control_error)?;
    Ok(Json(PauseState::new(p, true)))
}

/// Lift the pause of workflow `name`; its next fire runs.
#[utoipa::path(post, path = "/api/workflows/{name}/unpause", tag = "actions",
    params(("name" = String, Path, description = "the workflow's `name:`")),
    request_body(content = Empty, description = "nothing, or `{}`"),
    responses(
        (status = 200, description = "the pause lifted", body = PauseState),
        ActionErrors,
    ))]
pub(crate) async fn unpause(
    State(app): State<App>,
    Path(name): Path<String>,
    Act(actor, _): Act<Empty>,
) -> Result<Json<PauseState>, ApiError> {
    let p = app.control.unpause(&actor, &name).await.map_err(control_error)?;
    Ok(Json(PauseState::new(p, false)))
}

/// The audit log: every action, done or refused, with who asked; newest first.
#[utoipa::path(get, path = "/api/actions", tag = "actions", params(ActionsQuery),
    responses((status = 200, body = ActionsPage), ActionErrors))]
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
mod tests;
