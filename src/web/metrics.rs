//! `/metrics`: Prometheus text from the run log, plus the scheduler's own figures under `serve`
//! (docs/dashboard.md, "Metrics"). Needs a viewer (a Prometheus scrape sends an API token).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::auth::{Caller, Role};
use super::{ApiError, App};

pub(super) fn routes() -> Router<App> {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(app): State<App>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.require(Role::Viewer)?;
    let text = crate::metrics::render(&app.store, app.live_metrics.get()).await?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text))
}
