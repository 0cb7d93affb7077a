//! The dashboard, the HTTP API and `/metrics`, served by `cxflow serve` (beside the scheduler)
//! and `cxflow ui` (over a run log, without scheduling) on `http_addr`.
//!
//! ```text
//! request ─▶ auth::Caller (token, session cookie, or `local` when no auth is configured)
//!         ─▶ pages::* (HTML, maud)  │  api::* (JSON, OpenAPI)  │  /metrics
//!         ─▶ store (reads), control (actions, recorded with who did them)
//! ```
//!
//! Pages are rendered on the server and work without JavaScript; `layout.rs` adds a small
//! script that refreshes the parts a person waits on. Nothing here writes SQL.

// Parts of the shell are used by the pages and the API as they land.
#![allow(dead_code, unused_imports)]

pub(crate) mod api;
pub(crate) mod auth;
mod error;
pub(crate) mod layout;
mod metrics;
pub(crate) mod pages;
pub(crate) mod workflows;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub(crate) use error::{ApiError, WebError};

use crate::cli::Project;
use crate::scheduler::launch::Plans;
use crate::store::Store;

/// What every handler can reach; cheap to clone.
#[derive(Clone)]
pub struct App(Arc<AppInner>);

pub struct AppInner {
    pub store: Store,
    pub project: Arc<Project>,
    /// Every workflow file of the project, planned, reloaded when the folder changes.
    pub workflows: workflows::Workflows,
    /// The plans `serve` schedules (None in `cxflow ui`): a broken file whose last good version
    /// still runs is shown as such.
    pub scheduled: Option<Plans>,
    /// Runs, resumes, cancels, pauses and resolutions, recorded with who asked.
    pub control: crate::control::Control,
    /// Stops the server, and the runs the dashboard started, with the process.
    pub shutdown: CancellationToken,
    /// The scheduler's own figures for `/metrics` (fire lateness, scheduler up): set by `serve`.
    pub live_metrics: std::sync::OnceLock<crate::metrics::Live>,
}

impl std::ops::Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl App {
    pub fn new(inner: AppInner) -> App {
        App(Arc::new(inner))
    }

    /// The dashboard of `project`: its workflows planned (not watched: `Workflows::watch`), and
    /// an actions library whose runs stop with `shutdown`.
    pub fn for_project(project: Arc<Project>, store: Store, scheduled: Option<Plans>, shutdown: CancellationToken) -> App {
        let workflows = workflows::Workflows::load(project.clone());
        App::with_workflows(project, store, scheduled, shutdown, workflows)
    }

    /// The same, over workflows already planned.
    pub(crate) fn with_workflows(
        project: Arc<Project>,
        store: Store,
        scheduled: Option<Plans>,
        shutdown: CancellationToken,
        workflows: workflows::Workflows,
    ) -> App {
        let control = crate::control::Control::new(&project, store.clone(), shutdown.clone());
        App::new(AppInner { store, project, workflows, scheduled, control, shutdown, live_metrics: Default::default() })
    }
}

/// Every route: pages, API, auth; each request passes the auth guard first.
pub fn router(app: App) -> Router {
    let routes = Router::new().merge(pages::routes()).merge(api::routes()).merge(auth::routes()).merge(metrics::routes());
    // A page of 10,000 workflows is a burst the dashboard then idles after.
    let routes = routes.layer(axum::middleware::map_response(|r: axum::response::Response| async {
        crate::process::trim_soon();
        r
    }));
    auth::guarded(routes, &app).with_state(app)
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on `{addr}` (http_addr): {reason}; set another `http_addr` in cxflow.yaml or CXFLOW_HTTP_ADDR (port 0 picks a free one), or `off`")]
    Bind { addr: SocketAddr, reason: std::io::Error },
}

/// Binds `addr` (refusing what auth forbids) and serves until `shutdown`; returns the address
/// actually bound (port 0 picks one) and the server's task.
pub async fn start(app: App, addr: SocketAddr) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    auth::check_listen(&app, addr)?;
    let listener = TcpListener::bind(addr).await.map_err(|reason| ServeError::Bind { addr, reason })?;
    let bound = listener.local_addr()?;
    let shutdown = app.shutdown.clone();
    let service = router(app).into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, service).with_graceful_shutdown(async move { shutdown.cancelled().await });
        if let Err(e) = served.await {
            tracing::error!("the dashboard stopped: {e}");
        }
    });
    tracing::info!(url = %format!("http://{bound}/"), "dashboard and API listening");
    Ok((bound, task))
}
