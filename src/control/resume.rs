//! What `cxflow resume` and the dashboard's resume both check before a run goes on: one
//! implementation, so they refuse the same runs with the same words.

use std::path::Path;

use serde_json::{Map, Value};

use super::{ControlError, Result};
use crate::cli::Project;
use crate::engine::{Plan, RunStatus};
use crate::secrets::Secrets;
use crate::store::{Store, TriggerKind};

pub enum ResumePlan {
    /// The run succeeded and no step to redo was named: nothing to do.
    AlreadySucceeded,
    Ready(Box<Resumable>),
}

/// A run that may go on: its workflow planned again, its parameters, the secrets it needs.
pub struct Resumable {
    pub plan: Plan,
    pub params: Map<String, Value>,
    pub secrets: Secrets,
}

/// The secrets `plan` declares, from the environment. A dry run renders every template with
/// the real values, as a real run would, so it needs them too (its output is masked likewise).
pub(crate) fn secrets_for(plan: &Plan) -> Result<Secrets> {
    Secrets::from_env(&plan.secret_names, |k| std::env::var(k).ok()).map_err(|e| ControlError::Invalid(e.to_string()))
}

/// Checks that run `run_id` can be resumed (from step `from`), and plans it.
pub async fn prepare_resume(project: &Project, store: &Store, run_id: i64, from: Option<&str>) -> Result<ResumePlan> {
    let row = store.run(run_id).await?;
    if row.status == RunStatus::Running {
        store.interrupt_orphans().await?;
        if store.run(run_id).await?.status == RunStatus::Running {
            return Err(ControlError::StillRunning(format!(
                "run {run_id} is still running in another process; wait for it or stop it first"
            )));
        }
    }
    if row.trigger == TriggerKind::DryRun {
        return Err(ControlError::Invalid(format!("run {run_id} was a dry run; start a real one with `cxflow run {}`", row.workflow)));
    }
    if row.status == RunStatus::Succeeded && from.is_none() {
        return Ok(ResumePlan::AlreadySucceeded);
    }
    let file = Path::new(&row.file);
    let plan = project.plan_file_unique(file)?;
    if let Some(f) = from {
        if plan.step(f).is_none() {
            let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
            return Err(ControlError::Invalid(format!("workflow `{}` has no step `{f}`; its steps are: {}", plan.name, ids.join(", "))));
        }
    }
    // Parameters that do not read back would resume on the defaults, a different run than the one
    // that stopped: refuse instead.
    let mut params: Map<String, Value> = serde_json::from_str(&row.params).map_err(|e| {
        ControlError::Other(anyhow::anyhow!(
            "run {run_id} cannot resume: its parameters in the run log are not a JSON object ({e}); start a new run with `cxflow run {}`",
            row.workflow
        ))
    })?;
    // The workflow may have changed since the run started: a parameter added since would be
    // missing from every item's templates. One with a default takes it; a required one stops here.
    for (k, default) in &plan.params {
        if !params.contains_key(k) {
            if default.is_null() {
                return Err(ControlError::Invalid(format!(
                    "run {run_id} cannot resume: workflow `{}` now requires parameter `{k}`, which the run was started without; start a new run with `cxflow run {} --var {k}=...`",
                    plan.name, row.workflow
                )));
            }
            params.insert(k.clone(), default.clone());
        }
    }
    let secrets = secrets_for(&plan)?;
    Ok(ResumePlan::Ready(Box::new(Resumable { plan, params, secrets })))
}
