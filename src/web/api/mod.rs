//! The HTTP API: JSON for everything the pages show and do, described at `/api/openapi.json`.

use axum::Router;

use super::App;

pub(crate) fn routes() -> Router<App> {
    Router::new()
}
