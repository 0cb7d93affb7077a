//! `cxflow worker`: a node that runs other nodes' shared items only (`spread_items`), with no
//! schedule and no dashboard.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::serve::{clone_project, load_all};
use super::{exit, signals, CliError, Project, Result};
use crate::engine::worker::{self, PlanLookup};
use crate::engine::{Plan, RunLog};
use crate::store::{redact_url, Store};

/// How often a lookup may read the workflow files again: a file deployed after the worker
/// started (or changed) is seen at most this late.
const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// The node's plans, read again when a workflow is asked for and the last read is old: a
/// worker has no schedule to keep, so it reads its files only when a run needs one.
pub(crate) fn plan_lookup(project: &Project) -> PlanLookup {
    let project = clone_project(project);
    type Cache = (Option<Instant>, HashMap<String, Arc<Plan>>);
    let cache: Mutex<Cache> = Mutex::new((None, HashMap::new()));
    Arc::new(move |name: &str| {
        let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
        if c.0.is_none_or(|t| t.elapsed() >= RELOAD_EVERY) {
            match load_all(&project) {
                Ok((good, bad)) => {
                    for (f, msg) in bad {
                        tracing::warn!("workflow file `{}` is not valid; no items of it run here:\n{msg}", f.display());
                    }
                    c.1 = good.into_iter().map(|(_, p)| (p.name.clone(), p)).collect();
                }
                Err(e) => tracing::warn!("cannot read the workflow files: {e}"),
            }
            c.0 = Some(Instant::now());
        }
        c.1.get(name).cloned()
    })
}

/// Refuses to start without `spread_items`: such a worker would never be given anything.
fn check(project: &Project) -> Result<()> {
    if project.config.spread_items {
        return Ok(());
    }
    Err(CliError::Invalid(
        "error: `cxflow worker` runs items other nodes share, and nothing is shared without `spread_items: true`\n  \
         = help: set `spread_items: true` in cxflow.yaml (or CXFLOW_SPREAD_ITEMS=true) with a PostgreSQL `database_url` (docs/scaling.md)\n"
            .into(),
    ))
}

/// `cxflow worker`.
pub async fn worker(project: &Project) -> Result<i32> {
    check(project)?;
    let store: Store = project.store().await?;
    // Listed by `cxflow nodes` from the start, not only once it claims something.
    store.register_owner().await.map_err(|e| CliError::Other(e.into()))?;
    let shutdown = signals::on_shutdown();
    tracing::info!(run_log = %redact_url(&project.database_url()), "cxflow worker started");
    let log: Arc<dyn RunLog> = Arc::new(store);
    worker::work(log, project.config.clone(), plan_lookup(project), shutdown, project.config.shutdown_grace).await;
    tracing::info!("cxflow worker stopped");
    Ok(exit::OK)
}
