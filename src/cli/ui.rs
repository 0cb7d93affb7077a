//! `cxflow ui`, and the dashboard `cxflow serve` starts beside its scheduler.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{exit, signals, CliError, Project, Result};
use crate::control::Control;
use crate::scheduler::launch::Plans;
use crate::store::Store;
use crate::web::{self, App};

/// The dashboard's server task, and the actions library whose background runs the caller waits
/// for when shutting down.
pub(crate) struct Web {
    pub task: tokio::task::JoinHandle<()>,
    pub control: Control,
}

/// What `serve` hands the dashboard: the plans it schedules, its figures, and every valid
/// workflow file as it planned them at start.
type Scheduled = (Plans, crate::metrics::Live, Vec<(std::path::PathBuf, Arc<crate::engine::Plan>)>);

/// Starts the dashboard on `http_addr` unless it is `off`; None then. It stops with `shutdown`.
pub(crate) async fn start_web(
    project: &Project,
    store: &Store,
    scheduled: Option<Scheduled>,
    shutdown: CancellationToken,
) -> Result<Option<Web>> {
    let Some(addr) = project.config.http_addr else { return Ok(None) };
    let project = Arc::new(super::clone_project(project));
    let (app, live) = match scheduled {
        Some((plans, live, good)) => {
            let workflows = web::workflows::Workflows::from_loaded(project.clone(), &good);
            (App::with_workflows(project, store.clone(), Some(plans), shutdown.clone(), workflows), Some(live))
        }
        None => (App::for_project(project, store.clone(), None, shutdown.clone()), None),
    };
    if let Some(live) = live {
        let _ = app.live_metrics.set(live);
    }
    app.workflows.watch(shutdown);
    let control = app.control.clone();
    let (bound, task) = web::start(app, addr).await.map_err(|e| CliError::Invalid(format!("error: {e:#}")))?;
    // Tests and scripts with `http_addr: 127.0.0.1:0` read the port from here.
    errln!("dashboard: http://{bound}/");
    Ok(Some(Web { task, control }))
}

/// `cxflow ui`: the dashboard and API over the run log, without scheduling, until SIGTERM.
pub async fn ui(project: &Project) -> Result<i32> {
    if project.config.http_addr.is_none() {
        return Err(CliError::Invalid("`http_addr` is `off`; set it (e.g. `http_addr: 127.0.0.1:8080`) to serve the dashboard".into()));
    }
    let store = project.store().await?;
    let shutdown = signals::on_shutdown();
    if let Some(web) = start_web(project, &store, None, shutdown.clone()).await? {
        let _ = web.task.await;
        // Runs started from the dashboard end `interrupted`, resumable, before the process does.
        web.control.wait_for_runs().await;
    }
    Ok(exit::OK)
}
