//! The HTTP API: JSON for everything the pages show, described at `/api/openapi.json`
//! (OpenAPI 3.1, generated from the handlers and types here; docs/dashboard.md, "HTTP API").
//!
//! Every handler takes an `ApiCaller` (the dashboard's `Caller`, refused as JSON) and checks
//! its role; every failure is `{"error": ...}` with its status (`ApiError`). Data access is one
//! small function per endpoint in `data.rs`.

pub(crate) mod actions;
mod data;
mod digests;
mod runs;
#[cfg(test)]
mod tests;
mod types;
mod workflows;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::Method;
use axum::routing::{any, get, MethodRouter};
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, OpenApi};

use super::auth::{Caller, Role};
use super::{ApiError, App, WebError};
use types::ErrorBody;

/// The API's routes, each registered with its method and path so the test can compare them with
/// the document (axum cannot list a router's routes).
struct ApiRouter {
    router: Router<App>,
    paths: Vec<(Method, &'static str)>,
}

impl ApiRouter {
    fn get(self, path: &'static str, handler: MethodRouter<App>) -> ApiRouter {
        self.route(Method::GET, path, handler)
    }

    fn post(self, path: &'static str, handler: MethodRouter<App>) -> ApiRouter {
        self.route(Method::POST, path, handler)
    }

    fn route(mut self, method: Method, path: &'static str, handler: MethodRouter<App>) -> ApiRouter {
        self.paths.push((method, path));
        self.router = self.router.route(path, handler);
        self
    }
}

fn api() -> ApiRouter {
    ApiRouter { router: Router::new(), paths: Vec::new() }
        .get("/api/openapi.json", get(openapi_json))
        .get("/api/workflows", get(workflows::list))
        .get("/api/workflows/{name}", get(workflows::one))
        .get("/api/runs", get(runs::list))
        .get("/api/runs/{id}", get(runs::one))
        .get("/api/runs/{id}/items", get(runs::items))
        .get("/api/runs/{id}/artifacts", get(runs::artifacts))
        .get("/api/digests", get(digests::teams))
        .get("/api/digests/{scope}/{team}", get(digests::history))
        .actions()
}

/// The whole document: the read paths here and the actions' paths.
pub(crate) fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(actions::ActionsApi::openapi());
    doc
}

pub(crate) fn routes() -> Router<App> {
    // An unknown API path answers JSON too, not the HTML 404 page.
    api().router.route("/api", any(no_such_path)).route("/api/{*rest}", any(no_such_path))
}

async fn no_such_path(method: Method, uri: axum::http::Uri) -> ApiError {
    let path: String = uri.path().chars().take(200).collect();
    ApiError(WebError::NotFound(format!("no API endpoint `{method} {path}`; `/api/openapi.json` lists them")))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cxflow",
        description = "The cxflow dashboard's JSON API: workflows, runs, items, artifacts and digests from the run log. \
                       Send `Authorization: Bearer <token>` (an API token from cxflow.yaml); without configured \
                       authentication the server listens on loopback only and needs no header. Lists are paged \
                       with keyset cursors: pass a page's `next` back as `before` (runs) or `after` (items, artifacts)."
    ),
    paths(
        openapi_json,
        workflows::list, workflows::one,
        runs::list, runs::one, runs::items, runs::artifacts,
        digests::teams, digests::history,
    ),
    // Schemas the paths name are collected by utoipa; the error responses' body is not.
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags((name = "cxflow", description = "The run log, read-only"))
)]
pub(crate) struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("An API token from cxflow.yaml; a person's session cookie works as well"))
            .build();
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The failures of a read of one thing (a run, a workflow, a team).
#[derive(IntoResponses)]
#[allow(dead_code)] // only describes responses; `ApiError` makes them
enum OneErrors {
    /// A parameter is malformed (a run id that is not a number, an unknown status).
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// Not authenticated: no token, or an unknown one.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The caller's role does not allow this.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such thing in the run log or the project.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The server failed; its log has the details.
    #[response(status = 500)]
    Internal(ErrorBody),
}

/// The failures of a list.
#[derive(IntoResponses)]
#[allow(dead_code)]
enum ListErrors {
    /// A filter or cursor is malformed.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// Not authenticated: no token, or an unknown one.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The caller's role does not allow this.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// The server failed; its log has the details.
    #[response(status = 500)]
    Internal(ErrorBody),
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "cxflow",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json", body = Object), ListErrors))]
async fn openapi_json(caller: ApiCaller) -> Result<Json<utoipa::openapi::OpenApi>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(document()))
}

/// The dashboard's `Caller`, its refusals answered as JSON (the page extractor redirects to
/// the login page).
pub(crate) struct ApiCaller(pub Caller);

impl ApiCaller {
    fn require(&self, role: Role) -> Result<(), ApiError> {
        Ok(self.0.require(role)?)
    }
}

impl FromRequestParts<App> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<ApiCaller, ApiError> {
        Ok(ApiCaller(Caller::from_request_parts(parts, app).await?))
    }
}

/// A query string axum could not read, as a JSON 400 (axum's own is plain text).
fn bad_query(e: QueryRejection) -> ApiError {
    ApiError(WebError::BadRequest(format!("bad query string: {}", e.body_text())))
}

fn bad_path(e: PathRejection) -> ApiError {
    ApiError(WebError::BadRequest(format!("bad path: {}", e.body_text())))
}

fn bad(msg: String) -> ApiError {
    ApiError(WebError::BadRequest(msg))
}

fn not_found(msg: String) -> ApiError {
    ApiError(WebError::NotFound(msg))
}
