//! The HTTP API: JSON for everything the pages show and do, described at `/api/openapi.json`.

pub(crate) mod actions;

use axum::Router;

use super::App;

pub(crate) fn routes() -> Router<App> {
    Router::new().merge(actions::routes())
}
