//! Pausing schedules and resolving uncertain deliveries.

use serde_json::json;

use super::{Actor, Control, ControlError, On, Result};
use crate::store::{LedgerRow, Pause, Resolution};

impl Control {
    /// Pause `workflow`'s schedule: until `unpause`, each of its fires is recorded as skipped
    /// (`paused by <who> since <when>`) instead of run, by whichever process schedules it. Fires
    /// during the pause are not caught up afterwards. Pausing a paused workflow keeps the first
    /// pause and returns it.
    pub async fn pause(&self, actor: &Actor, workflow: &str, reason: Option<String>) -> Result<Pause> {
        let detail = json!({"reason": reason});
        let r = self.try_pause(actor, workflow, reason.as_deref()).await;
        self.record(actor, "pause", On { workflow: Some(workflow), run_id: None }, Some(&detail), &r).await;
        r
    }

    async fn try_pause(&self, actor: &Actor, workflow: &str, reason: Option<&str>) -> Result<Pause> {
        self.forbid_viewer(actor, "pause schedules")?;
        crate::cli::workflow_by_name(self.project(), workflow)?.ok_or_else(|| ControlError::NoSuchWorkflow(workflow.into()))?;
        Ok(self.store().pause_schedule(workflow, &actor.name, reason).await?)
    }

    /// Lift the pause of `workflow`; its next fire runs. Works for a workflow whose file is gone
    /// too, so no pause is left behind. Returns the pause that was lifted.
    pub async fn unpause(&self, actor: &Actor, workflow: &str) -> Result<Pause> {
        let r = self.try_unpause(actor, workflow).await;
        self.record(actor, "unpause", On { workflow: Some(workflow), run_id: None }, None, &r).await;
        r
    }

    async fn try_unpause(&self, actor: &Actor, workflow: &str) -> Result<Pause> {
        self.forbid_viewer(actor, "unpause schedules")?;
        self.store()
            .unpause_schedule(workflow)
            .await?
            .ok_or_else(|| ControlError::Invalid(format!("workflow `{workflow}` is not paused; nothing to unpause")))
    }

    /// Record `actor`'s decision about the uncertain deliveries of run `run_id`: those of
    /// `items`, or all of them when `items` is empty. `Sent`: never sent again; `NotSent`: the
    /// next resume sends them.
    pub async fn resolve(&self, actor: &Actor, run_id: i64, items: &[String], decision: Resolution) -> Result<Vec<LedgerRow>> {
        let detail = json!({"items": items, "as": decision.as_str()});
        let r = self.try_resolve(actor, run_id, items, decision).await;
        let workflow = self.store().run(run_id).await.ok().map(|r| r.workflow);
        self.record(actor, "resolve", On { workflow: workflow.as_deref(), run_id: Some(run_id) }, Some(&detail), &r).await;
        r
    }

    async fn try_resolve(&self, actor: &Actor, run_id: i64, items: &[String], decision: Resolution) -> Result<Vec<LedgerRow>> {
        self.forbid_viewer(actor, "resolve deliveries")?;
        self.store().interrupt_orphans().await?;
        Ok(self.store().resolve(run_id, items, decision, &actor.name).await?)
    }
}
