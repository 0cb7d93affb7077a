//! The dashboard's actions: the forms other pages place (`forms.rs`), the POST handlers behind
//! them (`handlers.rs`: each answers `303 See Other` to the affected page with `?done=...`), the
//! workflow page and the audit log (`/actions`). What an action does and refuses is
//! `crate::control`'s; this only turns forms into calls and refusals into statuses.

mod audit;
mod forms;
mod handlers;
#[cfg(test)]
mod tests;
mod workflow;

use axum::routing::{get, post};
use axum::Router;

use crate::control::ControlError;
use crate::web::{App, WebError};

pub(crate) use forms::{flash, form_params, pause_toggle, resolve_form, run_actions, run_now_form};

pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/workflows/{name}", get(workflow::page))
        .route("/workflows/{name}/runs", post(handlers::run_now))
        .route("/workflows/{name}/pause", post(handlers::pause))
        .route("/workflows/{name}/unpause", post(handlers::unpause))
        .route("/runs/{id}/resume", post(handlers::resume))
        .route("/runs/{id}/cancel", post(handlers::cancel))
        .route("/runs/{id}/resolve", post(handlers::resolve))
        .route("/actions", get(audit::page))
}

/// A refusal as the status that says what kind it is; the message is control's, which says
/// what to do.
pub(crate) fn control_error(e: ControlError) -> WebError {
    match e {
        ControlError::NoSuchWorkflow(_) | ControlError::NoSuchRun(_) => WebError::NotFound(e.to_string()),
        ControlError::Invalid(m) => WebError::BadRequest(m),
        ControlError::StillRunning(m) | ControlError::NotRunning(m) => WebError::Conflict(m),
        ControlError::Forbidden(m) => WebError::Forbidden(m),
        ControlError::Other(e) => WebError::Internal(e),
    }
}

/// `/workflows/NAME[/suffix]` with the name percent-encoded as one path segment: a name is
/// whatever the YAML says, slashes and spaces included.
pub(crate) fn workflow_url(name: &str, suffix: &str) -> String {
    let mut u = url::Url::parse("http://x/").expect("a constant base URL");
    {
        let mut segs = u.path_segments_mut().expect("an http URL has path segments");
        segs.push("workflows").push(name);
        if !suffix.is_empty() {
            segs.push(suffix);
        }
    }
    u.path().to_string()
}

pub(crate) fn run_url(id: i64, suffix: &str) -> String {
    if suffix.is_empty() {
        format!("/runs/{id}")
    } else {
        format!("/runs/{id}/{suffix}")
    }
}

/// `path?done=MESSAGE`, the message form-encoded.
pub(crate) fn with_done(path: &str, message: &str) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new()).append_pair("done", message).finish();
    format!("{path}?{q}")
}
