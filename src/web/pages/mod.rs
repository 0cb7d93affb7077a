//! The dashboard's read pages, rendered on the server (maud): the overview, the runs list, one
//! run, a run's artifact files, and the teams' digests. Each page reads the store in one `load`
//! function, so what it reads is in one place; rendering is separate and pure.

pub(crate) mod actions;
mod artifacts;
mod digests;
mod fmt;
mod items;
mod overview;
mod run;
mod runs;
mod sparkline;
#[cfg(test)]
mod tests;

use axum::routing::get;
use axum::Router;

use super::App;

pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/", get(overview::page))
        .route("/runs", get(runs::page))
        .route("/runs/{id}", get(run::page))
        .route("/runs/{id}/artifacts/{artifact_id}", get(artifacts::file))
        .merge(digests::routes())
        .merge(actions::routes())
}
