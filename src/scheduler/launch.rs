//! The real `Launcher`: scheduled runs go through the engine and the run log, failures are
//! announced per `on_failure`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::Map;

use super::alerts::{host_name, post_webhook, send_email, FailureNotice};
use super::runner::{Launcher, RunStatus, StartRequest, StopReason};
use crate::config::Config;
use crate::engine::Plan;
use crate::engine::{self, RunOptions, Trigger};
use crate::secrets::Secrets;
use crate::store::{NewRun, Store};

/// The workflows currently scheduled: the last version of each that validated.
pub type Plans = Arc<RwLock<HashMap<String, Arc<Plan>>>>;

pub type PruneFn = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

pub struct EngineLauncher {
    pub store: Store,
    pub config: Arc<Config>,
    pub plans: Plans,
    /// How long in-flight items may go on once a run is told to stop.
    pub grace: Duration,
    pub http: reqwest::Client,
    pub prune: PruneFn,
}

impl EngineLauncher {
    fn plan(&self, workflow: &str) -> Option<Arc<Plan>> {
        self.plans.read().unwrap().get(workflow).cloned()
    }
}

impl Launcher for EngineLauncher {
    fn run(&self, req: StartRequest) -> BoxFuture<'static, RunStatus> {
        let plan = self.plan(&req.workflow);
        let store = self.store.clone();
        let config = self.config.clone();
        let config2 = self.config.clone();
        let grace = self.grace;
        let http = self.http.clone();
        Box::pin(async move {
            let Some(plan) = plan else {
                let _ = store.record_skipped(&req.workflow, "", Some(req.fire), "the workflow is no longer loaded").await;
                return RunStatus::Failed;
            };
            // Read at each fire, so a pause made by another process (`cxflow pause`, the
            // dashboard) holds from the next fire on.
            match store.schedule_pause(&req.workflow).await {
                Ok(Some(p)) => return paused(&store, &plan, &req, &p).await,
                Ok(None) => {}
                Err(e) => tracing::error!(workflow = %req.workflow, "cannot read whether the workflow is paused; running it: {e}"),
            }
            let (status, run_id, message) = run_plan(&plan, &store, config, grace, &req).await;
            if matches!(status, RunStatus::Failed | RunStatus::Partial) {
                notify(&plan, &config2, &http, &req, status, run_id, message).await;
            }
            status
        })
    }

    fn skipped(&self, workflow: &str, fire: DateTime<Utc>, reason: &str) -> BoxFuture<'static, ()> {
        let store = self.store.clone();
        let file = self.plan(workflow).map(|p| p.file.display().to_string()).unwrap_or_default();
        let (workflow, reason) = (workflow.to_string(), reason.to_string());
        Box::pin(async move {
            if let Err(e) = store.record_skipped(&workflow, &file, Some(fire), &reason).await {
                tracing::error!(%workflow, "cannot record a skipped run: {e}");
            }
        })
    }

    fn abandoned(&self, req: &StartRequest) -> BoxFuture<'static, ()> {
        let store = self.store.clone();
        let workflow = req.workflow.clone();
        Box::pin(async move {
            let reason = "the scheduler shut down and the run did not finish within the shutdown deadline";
            match store.interrupt_own_runs(&workflow, reason).await {
                Ok(ids) => {
                    for id in ids {
                        tracing::warn!(%workflow, run_id = id, "run marked interrupted at shutdown");
                    }
                }
                Err(e) => tracing::error!(%workflow, "cannot mark the run interrupted: {e}"),
            }
        })
    }

    fn prune(&self) -> BoxFuture<'static, ()> {
        (self.prune)()
    }
}

/// A fire of a paused workflow: recorded as skipped with who paused it. A run the scheduler
/// would resume after a crash is left `interrupted` (a person resumes it, or the unpaused
/// scheduler at its next start).
async fn paused(store: &Store, plan: &Plan, req: &StartRequest, p: &crate::store::Pause) -> RunStatus {
    let reason = p.skip_reason();
    if let Some(run_id) = req.resume_run {
        tracing::info!(workflow = %req.workflow, run_id, %reason, "not resuming the interrupted run: the workflow is paused");
        return RunStatus::Interrupted;
    }
    tracing::info!(workflow = %req.workflow, fire = %req.fire, %reason, "skipped scheduled run");
    if let Err(e) = store.record_skipped(&req.workflow, &plan.file.display().to_string(), Some(req.fire), &reason).await {
        tracing::error!(workflow = %req.workflow, "cannot record a skipped run: {e}");
    }
    RunStatus::Skipped
}

/// Runs one scheduled (or resumed) run; returns its final status, run id and error message.
async fn run_plan(
    plan: &Plan,
    store: &Store,
    config: Arc<Config>,
    grace: Duration,
    req: &StartRequest,
) -> (RunStatus, Option<i64>, String) {
    let prepared = engine::resolve_params(plan, &Map::new()).and_then(|params| {
        Secrets::from_env(&plan.secret_names, |k| std::env::var(k).ok()).map(|s| (params, s)).map_err(|e| e.to_string())
    });
    let (params, secrets) = match prepared {
        Ok(p) => p,
        Err(msg) => {
            // Record the attempt so the failure is visible in `cxflow runs`.
            let file = plan.file.display().to_string();
            let p = serde_json::json!({});
            let id = store
                .start_run(NewRun {
                    workflow: &plan.name,
                    file: &file,
                    trigger: crate::store::TriggerKind::Schedule,
                    params: &p,
                    scheduled_for: Some(req.fire),
                })
                .await
                .ok();
            if let Some(id) = id {
                let _ = store.finish_run(id, RunStatus::Failed, Some(&msg)).await;
            }
            return (RunStatus::Failed, id, msg);
        }
    };
    let trigger = match req.resume_run {
        Some(run_id) => Trigger::Resume { run_id, from: None },
        None => Trigger::Schedule { at: req.fire },
    };
    let opts = RunOptions { trigger, params, dry_run: false, shutdown: req.stop.clone(), grace, progress_bars: false, on_start: None };
    match engine::run(plan, Arc::new(store.clone()), config, secrets, opts).await {
        Ok(summary) => {
            let _ = req.run_id.set(summary.run_id);
            if let Some(StopReason::MaxRuntime(msg)) = req.stop_reason() {
                let _ = store.finish_run(summary.run_id, RunStatus::Failed, Some(&msg)).await;
                return (RunStatus::Failed, Some(summary.run_id), msg);
            }
            let status = summary.status;
            let message = summary.steps.iter().find_map(|s| s.error.clone().map(|e| format!("step `{}`: {e}", s.id))).unwrap_or_default();
            (status, Some(summary.run_id), message)
        }
        Err(e) => {
            tracing::error!(workflow = %plan.name, "scheduled run failed to run: {e:#}");
            (RunStatus::Failed, req.run_id.get().copied(), format!("{e:#}"))
        }
    }
}

async fn notify(
    plan: &Plan,
    config: &Config,
    http: &reqwest::Client,
    req: &StartRequest,
    status: RunStatus,
    run_id: Option<i64>,
    message: String,
) {
    let Some(of) = plan.schedule.as_ref().and_then(|s| s.on_failure.clone()) else { return };
    let notice = FailureNotice {
        workflow: plan.name.clone(),
        run_id,
        status: if status == RunStatus::Partial { "partial" } else { "failed" }.into(),
        fire_time: req.fire,
        message,
        host: host_name(),
    };
    if let Some(url) = &of.webhook {
        match post_webhook(http, url, &notice).await {
            Ok(()) => tracing::info!(workflow = %plan.name, "on_failure webhook delivered"),
            Err(e) => tracing::error!(workflow = %plan.name, "on_failure webhook not delivered: {e}"),
        }
    }
    if !of.email.is_empty() {
        match send_email(config, &plan.project, &of.email, &notice).await {
            Ok(to) => tracing::info!(workflow = %plan.name, %to, "on_failure email sent"),
            Err(e) => tracing::error!(workflow = %plan.name, "on_failure email not sent: {e:#}"),
        }
    }
}
