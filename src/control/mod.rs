//! The actions a person (or an API token) takes on workflows and runs: start a run now, resume
//! (from a step), cancel a running run, pause and unpause a schedule, resolve uncertain
//! deliveries. The CLI and the web server both call these, so both refuse the same things with
//! the same words, and every call, refusals too, is recorded in the run log (`actions`) with
//! who made it.

mod errors;
mod resume;
mod runs;
mod schedule;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::Project;
use crate::store::{NewAction, Store};
pub use errors::ControlError;
pub(crate) use resume::secrets_for;
pub use resume::{prepare_resume, Resumable, ResumePlan};

pub type Result<T> = std::result::Result<T, ControlError>;

/// Roles are part of the settings (`users:`, `api_tokens:` in cxflow.yaml).
pub use crate::config::Role;

/// Who is acting: a person's login, an API token's name, or the CLI's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub role: Role,
}

impl Actor {
    pub fn new(name: impl Into<String>, role: Role) -> Actor {
        Actor { name: name.into(), role }
    }

    /// The person at the command line: `by`, else $USER (or $LOGNAME), as admin: whoever can run
    /// the CLI on the machine can already do everything it does.
    pub fn cli(by: Option<String>) -> Actor {
        let name = by.or_else(|| std::env::var("USER").ok()).or_else(|| std::env::var("LOGNAME").ok()).unwrap_or_else(|| "unknown".into());
        Actor { name, role: Role::Admin }
    }
}

/// The actions, over one project and its run log. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct Control {
    inner: Arc<Inner>,
}

struct Inner {
    project: Project,
    store: Store,
    /// Fired by the server's SIGTERM: every run started here stops as on Ctrl-C.
    shutdown: CancellationToken,
    /// Runs started here and still going, so a cancel stops them at once instead of at the
    /// next poll of the run log.
    running: Mutex<HashMap<i64, CancellationToken>>,
    tasks: TaskTracker,
}

impl Control {
    pub fn new(project: &Project, store: Store, shutdown: CancellationToken) -> Control {
        let project = Project { dir: project.dir.clone(), config: project.config.clone() };
        let inner = Inner { project, store, shutdown, running: Mutex::default(), tasks: TaskTracker::new() };
        Control { inner: Arc::new(inner) }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn project(&self) -> &Project {
        &self.inner.project
    }

    /// Waits until every run started here has ended (after the shutdown token fired, they end
    /// `interrupted` within the configured grace).
    pub async fn wait_for_runs(&self) {
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        self.inner.tasks.reopen();
    }

    /// Ids of the runs started by this `Control` that are still going.
    pub fn runs_in_progress(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.inner.running.lock().unwrap_or_else(|p| p.into_inner()).keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    fn forbid_viewer(&self, actor: &Actor, action: &str) -> Result<()> {
        if actor.role.may_act() {
            return Ok(());
        }
        Err(ControlError::Forbidden(format!(
            "`{}` has role {} and may not {action}; an operator or admin may",
            actor.name,
            actor.role.as_str()
        )))
    }

    /// Records what `actor` did (or tried): `ok`, or `refused: <the error>`. A failure to record
    /// is logged, not returned: the action itself already happened or was refused.
    async fn record<T>(&self, actor: &Actor, action: &str, on: On<'_>, detail: Option<&Value>, result: &Result<T>) {
        let outcome = match result {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("refused: {e}"),
        };
        let a = NewAction {
            actor: &actor.name,
            role: actor.role.as_str(),
            action,
            workflow: on.workflow,
            run_id: on.run_id,
            detail,
            outcome: &outcome,
        };
        if let Err(e) = self.inner.store.record_action(a).await {
            tracing::error!(action, actor = %actor.name, "cannot record the action in the run log: {e}");
        }
    }
}

/// What an action was about.
#[derive(Default, Clone, Copy)]
struct On<'a> {
    workflow: Option<&'a str>,
    run_id: Option<i64>,
}

#[cfg(test)]
mod tests;
