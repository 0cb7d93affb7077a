//! What a handler can fail with, shown as a page (`WebError`) or as JSON (`ApiError`). An
//! internal error is logged in full and shown only as a short message: it may hold paths or
//! database text a viewer has no business seeing.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum WebError {
    #[error("{0}")]
    NotFound(String),
    /// Not logged in (pages send the person to the login page).
    #[error("log in first")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("too many attempts; try again in {0} s")]
    TooMany(u64),
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl WebError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::Unauthorized => StatusCode::UNAUTHORIZED,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Conflict(_) => StatusCode::CONFLICT,
            WebError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The text shown to the caller.
    pub(crate) fn public_message(&self) -> String {
        match self {
            WebError::Internal(e) => {
                tracing::error!("dashboard request failed: {e:#}");
                "something went wrong on the server; its log has the details".into()
            }
            other => other.to_string(),
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            WebError::TooMany(s) => Some(*s),
            _ => None,
        }
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchRun(_) => WebError::NotFound(e.to_string()),
            StoreError::StillRunning { .. } => WebError::Conflict(e.to_string()),
            other => WebError::Internal(other.into()),
        }
    }
}

impl From<anyhow::Error> for WebError {
    fn from(e: anyhow::Error) -> Self {
        WebError::Internal(e)
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        if matches!(self, WebError::Unauthorized) {
            return axum::response::Redirect::to("/login").into_response();
        }
        let status = self.status();
        let retry = self.retry_after();
        let msg = self.public_message();
        let body = super::layout::bare(
            status.canonical_reason().unwrap_or("error"),
            html! { h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) } p.error { (msg) } p { a href="/" { "Back to the overview" } } },
        );
        let mut r = (status, body).into_response();
        if let Some(s) = retry {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, s.into());
        }
        r
    }
}

/// A `WebError` answered as `{"error": "..."}` with its status, for `/api/...`.
#[derive(Debug)]
pub(crate) struct ApiError(pub WebError);

impl<E: Into<WebError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let retry = self.0.retry_after();
        let mut r = (status, axum::Json(serde_json::json!({ "error": self.0.public_message() }))).into_response();
        if let Some(s) = retry {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, s.into());
        }
        r
    }
}
