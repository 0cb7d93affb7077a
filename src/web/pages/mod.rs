//! The dashboard's pages, rendered on the server (maud).

pub(crate) mod actions;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};

use super::auth::Caller;
use super::{layout, App, WebError};

pub(crate) fn routes() -> Router<App> {
    Router::new().route("/", get(overview)).merge(actions::routes())
}

/// Placeholder until the overview page lands: the workflows by name.
async fn overview(State(app): State<App>, caller: Caller) -> Result<Markup, WebError> {
    let snap = app.workflows.snapshot();
    Ok(layout::page(
        "Overview",
        &caller,
        html! {
            h1 { "Workflows" }
            ul { @for w in &snap.good { li { (w.name) } } }
        },
    ))
}
