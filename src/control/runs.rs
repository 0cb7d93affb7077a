//! Starting and resuming runs in the background, and cancelling them.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::resume::{prepare_resume, secrets_for, ResumePlan};
use super::{Actor, Control, ControlError, On, Result};
use crate::engine::{self, CancelRequest, Plan, RunOptions, RunStatus, Trigger};
use crate::secrets::Secrets;

impl Control {
    /// Start workflow `workflow` (its `name:`) now with `params`, as `cxflow run` would; returns
    /// the new run's id as soon as the run is in the run log. The run goes on in the background.
    pub async fn start_run(&self, actor: &Actor, workflow: &str, params: Map<String, Value>) -> Result<i64> {
        let detail = json!({"params": params});
        let r = self.try_start(actor, workflow, params).await;
        let on = On { workflow: Some(workflow), run_id: r.as_ref().ok().copied() };
        self.record(actor, "run", on, Some(&detail), &r).await;
        r
    }

    async fn try_start(&self, actor: &Actor, workflow: &str, given: Map<String, Value>) -> Result<i64> {
        self.forbid_viewer(actor, "start runs")?;
        let project = self.project();
        // By `name:` only: a name from a form or a webhook must never reach the file system as a path.
        let spec = crate::cli::workflow_spec_by_name(project, workflow)?.ok_or_else(|| ControlError::NoSuchWorkflow(workflow.into()))?;
        let plan = project.plan_unique(spec)?;
        let params = engine::resolve_params(&plan, &given).map_err(ControlError::Invalid)?;
        let secrets = secrets_for(&plan)?;
        self.spawn(plan, Trigger::Manual, params, secrets).await
    }

    /// Resume run `run_id` (from step `from`: it and the steps after it run every item again),
    /// as `cxflow resume` would, in the background; returns the run's id once it is running.
    pub async fn resume(&self, actor: &Actor, run_id: i64, from: Option<String>) -> Result<i64> {
        let detail = json!({"from": from});
        let r = self.try_resume(actor, run_id, from).await;
        let workflow = self.store().run(run_id).await.ok().map(|r| r.workflow);
        self.record(actor, "resume", On { workflow: workflow.as_deref(), run_id: Some(run_id) }, Some(&detail), &r).await;
        r
    }

    async fn try_resume(&self, actor: &Actor, run_id: i64, from: Option<String>) -> Result<i64> {
        self.forbid_viewer(actor, "resume runs")?;
        match prepare_resume(self.project(), self.store(), run_id, from.as_deref()).await? {
            ResumePlan::AlreadySucceeded => Err(ControlError::Invalid(format!(
                "run {run_id} already succeeded; nothing to resume (name a step to redo it and the steps after it)"
            ))),
            ResumePlan::Ready(r) => self.spawn(r.plan, Trigger::Resume { run_id, from }, r.params, r.secrets).await,
        }
    }

    /// Ask run `run_id` to stop: items in flight get the grace, nothing new starts, and the run
    /// ends `interrupted` (resumable) with `cancelled by <who> at <time>`. A run started by this
    /// `Control` stops at once; one in another process within about a second.
    pub async fn cancel(&self, actor: &Actor, run_id: i64) -> Result<CancelRequest> {
        let r = self.try_cancel(actor, run_id).await;
        let workflow = self.store().run(run_id).await.ok().map(|r| r.workflow);
        self.record(actor, "cancel", On { workflow: workflow.as_deref(), run_id: Some(run_id) }, None, &r).await;
        r
    }

    async fn try_cancel(&self, actor: &Actor, run_id: i64) -> Result<CancelRequest> {
        self.forbid_viewer(actor, "cancel runs")?;
        let store = self.store();
        let mut row = store.run(run_id).await?;
        if row.status == RunStatus::Running {
            // Nobody would see the request of a run whose process is gone.
            store.interrupt_orphans().await?;
            row = store.run(run_id).await?;
        }
        if row.status != RunStatus::Running {
            return Err(ControlError::NotRunning(format!(
                "run {run_id} is not running (it is {}); there is nothing to cancel{}",
                row.status,
                if row.status == RunStatus::Interrupted { format!("; `cxflow resume {run_id}` continues it") } else { String::new() }
            )));
        }
        let req = store.request_cancel(run_id, &actor.name).await?;
        if let Some(t) = self.inner.running.lock().unwrap_or_else(|p| p.into_inner()).get(&run_id) {
            t.cancel();
        }
        Ok(req)
    }

    /// Runs `plan` on a task of its own; returns its id once the run log has it.
    async fn spawn(&self, plan: Plan, trigger: Trigger, params: Map<String, Value>, secrets: Secrets) -> Result<i64> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let stop = self.inner.shutdown.child_token();
        let opts = RunOptions {
            trigger,
            params,
            dry_run: false,
            shutdown: stop.clone(),
            grace: self.project().config.shutdown_grace,
            progress_bars: false,
            on_start: Some(started_tx),
        };
        let (store, config, this) = (self.store().clone(), self.project().config.clone(), self.clone());
        let task = self.inner.tasks.spawn(async move {
            // Kept among the running before anyone hears the id, and dropped only after the run
            // ended: in the same task, so the two cannot cross.
            let keep = async {
                let id = started_rx.await.ok()?;
                this.inner.running.lock().unwrap_or_else(|p| p.into_inner()).insert(id, stop.clone());
                let _ = tx.send(id);
                Some(id)
            };
            let (r, id) = tokio::join!(engine::run(&plan, Arc::new(store), config, secrets, opts), keep);
            if let Some(id) = id {
                this.inner.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            }
            match &r {
                Ok(s) => tracing::info!(workflow = %plan.name, run_id = s.run_id, status = %s.status, "run ended"),
                Err(e) => tracing::error!(workflow = %plan.name, "run failed to run: {e:#}"),
            }
            r
        });
        match rx.await {
            Ok(run_id) => Ok(run_id),
            // The run never got an id: its error says why (the run log, a resume race).
            Err(_) => match task.await {
                Ok(Err(e)) => Err(match e.downcast::<crate::store::StoreError>() {
                    Ok(s) => s.into(),
                    Err(e) => ControlError::Other(e),
                }),
                Ok(Ok(s)) => Ok(s.run_id),
                Err(e) => Err(ControlError::Other(anyhow::anyhow!("the run's task ended abnormally: {e}"))),
            },
        }
    }
}
