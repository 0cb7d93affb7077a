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
use crate::schedule::policy::Overlap;
use crate::secrets::Secrets;
use crate::store::{FireClaim, FireOutcome, NewFire, Store, TakenFire};

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
    /// Where `/metrics` counts fires claimed elsewhere from a different workflow file.
    pub live: Option<crate::metrics::Live>,
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
        let live = self.live.clone();
        Box::pin(async move {
            let Some(plan) = plan else {
                let fire = Fire { store: &store, workflow: &req.workflow, file: "", fire: req.fire, hash: String::new(), live: &live };
                return match fire.claim(FireOutcome::Skipped("the workflow is no longer loaded")).await {
                    Some(_) => RunStatus::Failed,
                    None => RunStatus::Skipped,
                };
            };
            // Read at each fire, so a pause made by another process (`cxflow pause`, the
            // dashboard) holds from the next fire on.
            match store.schedule_pause(&req.workflow).await {
                Ok(Some(p)) => return paused(&store, &plan, &req, &p, &live).await,
                Ok(None) => {}
                Err(e) => tracing::error!(workflow = %req.workflow, "cannot read whether the workflow is paused; running it: {e}"),
            }
            let (status, run_id, message) = run_plan(&plan, &store, config, grace, &req, &live).await;
            if matches!(status, RunStatus::Failed | RunStatus::Partial) {
                notify(&plan, &config2, &http, &req, status, run_id, message).await;
            }
            status
        })
    }

    fn skipped(&self, workflow: &str, fire: DateTime<Utc>, reason: &str) -> BoxFuture<'static, ()> {
        let store = self.store.clone();
        let plan = self.plan(workflow);
        let live = self.live.clone();
        let (workflow, reason) = (workflow.to_string(), reason.to_string());
        Box::pin(async move {
            let (file, hash) = match &plan {
                Some(p) => (p.file.display().to_string(), p.source_hash.clone()),
                None => (String::new(), String::new()),
            };
            let fire = Fire { store: &store, workflow: &workflow, file: &file, fire, hash, live: &live };
            fire.claim(FireOutcome::Skipped(&reason)).await;
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
async fn paused(store: &Store, plan: &Plan, req: &StartRequest, p: &crate::store::Pause, live: &Option<crate::metrics::Live>) -> RunStatus {
    let reason = p.skip_reason();
    if let Some(run_id) = req.resume_run {
        tracing::info!(workflow = %req.workflow, run_id, %reason, "not resuming the interrupted run: the workflow is paused");
        return RunStatus::Interrupted;
    }
    let file = plan.file.display().to_string();
    let fire = Fire { store, workflow: &req.workflow, file: &file, fire: req.fire, hash: plan.source_hash.clone(), live };
    if fire.claim(FireOutcome::Skipped(&reason)).await.is_some() {
        tracing::info!(workflow = %req.workflow, fire = %req.fire, %reason, "skipped scheduled run");
    }
    RunStatus::Skipped
}

/// One fire being claimed by this node.
struct Fire<'a> {
    store: &'a Store,
    workflow: &'a str,
    file: &'a str,
    fire: DateTime<Utc>,
    hash: String,
    live: &'a Option<crate::metrics::Live>,
}

impl Fire<'_> {
    /// Claims the fire with its outcome: its run row's id, or None when another node (or this
    /// one before a restart) has it, or the claim could not be written (both logged).
    async fn claim(&self, outcome: FireOutcome<'_>) -> Option<i64> {
        let new = NewFire { workflow: self.workflow, file: self.file, fire: self.fire, spec_hash: &self.hash, outcome };
        match self.store.claim_fire(new).await {
            Ok(FireClaim::Claimed(id)) => Some(id),
            Ok(FireClaim::Taken(t)) => {
                self.taken(&t);
                None
            }
            Err(e) => {
                tracing::error!(workflow = %self.workflow, fire = %self.fire, "cannot record the scheduled fire in the run log; not running it: {e}");
                None
            }
        }
    }

    fn taken(&self, t: &TakenFire) {
        let theirs = t.spec_hash.as_deref().unwrap_or("");
        let host = t.host.as_deref().unwrap_or("an unknown host");
        if !theirs.is_empty() && !self.hash.is_empty() && theirs != self.hash {
            tracing::error!(
                workflow = %self.workflow,
                fire = %self.fire,
                run_id = t.run_id,
                this_host = %super::alerts::host_name(),
                other_host = %host,
                file = %self.file,
                "the workflow file `{}` differs between this node ({}) and the node on {host} that claimed this fire (run {}); the fire runs once, as that node planned it: deploy the same file to every node",
                self.file,
                super::alerts::host_name(),
                t.run_id,
            );
            if let Some(m) = self.live {
                m.spec_mismatch(self.workflow);
            }
        } else {
            tracing::info!(workflow = %self.workflow, fire = %self.fire, run_id = t.run_id, other_host = %host, status = %t.status, "fire already claimed by another node; nothing to do here");
        }
    }
}

/// Runs one scheduled (or resumed) run; returns its final status, run id and error message.
async fn run_plan(
    plan: &Plan,
    store: &Store,
    config: Arc<Config>,
    grace: Duration,
    req: &StartRequest,
    live: &Option<crate::metrics::Live>,
) -> (RunStatus, Option<i64>, String) {
    let file = plan.file.display().to_string();
    let fire = Fire { store, workflow: &plan.name, file: &file, fire: req.fire, hash: plan.source_hash.clone(), live };
    let prepared = engine::resolve_params(plan, &Map::new()).and_then(|params| {
        Secrets::from_env(&plan.secret_names, |k| std::env::var(k).ok()).map(|s| (params, s)).map_err(|e| e.to_string())
    });
    let (params, secrets) = match prepared {
        Ok(p) => p,
        Err(msg) => {
            // The attempt is the fire's claim, failed, so the failure is visible in `cxflow runs`.
            return match fire.claim(FireOutcome::Failed(&msg)).await {
                Some(id) => (RunStatus::Failed, Some(id), msg),
                // Another node has the fire: its failure (or run) is its to announce.
                None => (RunStatus::Skipped, None, String::new()),
            };
        }
    };
    let trigger = match req.resume_run {
        Some(run_id) => Trigger::Resume { run_id, from: None },
        None => {
            let Some(run_id) = fire.claim(FireOutcome::Run).await else { return (RunStatus::Skipped, None, String::new()) };
            let _ = req.run_id.set(run_id);
            if let Some(ended) = overlap_elsewhere(plan, store, req, run_id).await {
                return ended;
            }
            Trigger::Claimed { run_id, at: req.fire }
        }
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

/// How often a fire waiting behind another node's run (`overlap: queue`) looks again.
const QUEUE_POLL: Duration = Duration::from_millis(250);

/// The overlap policy across nodes, for a fire this node has claimed (`run_id`): this node's
/// scheduler already kept its own runs apart; here a scheduled run of the workflow for an
/// earlier instant, still running on another live node, makes `overlap: skip` skip the fire
/// and `overlap: queue` (and a catch-up fire, which always queues) wait for it. `overlap:
/// allow` runs at once. Returns the fire's end when it does not run.
async fn overlap_elsewhere(plan: &Plan, store: &Store, req: &StartRequest, run_id: i64) -> Option<(RunStatus, Option<i64>, String)> {
    let overlap = plan.schedule.as_ref().map(|s| s.compiled.overlap).unwrap_or_default();
    if overlap == Overlap::Allow {
        return None;
    }
    loop {
        let other = match store.running_elsewhere(&plan.name, req.fire).await {
            Ok(o) => o?,
            Err(e) => {
                tracing::error!(workflow = %plan.name, "cannot read whether another node runs this workflow; running it: {e}");
                return None;
            }
        };
        if overlap == Overlap::Skip && !req.catch_up {
            let reason =
                format!("the run for {} is still running on {} (run {}, overlap: skip)", other.scheduled_for, other.host, other.run_id);
            tracing::info!(workflow = %plan.name, fire = %req.fire, %reason, "skipped scheduled run");
            if let Err(e) = store.finish_run(run_id, RunStatus::Skipped, Some(&reason)).await {
                tracing::error!(workflow = %plan.name, "cannot record a skipped run: {e}");
            }
            return Some((RunStatus::Skipped, Some(run_id), String::new()));
        }
        tokio::select! {
            _ = req.stop.cancelled() => {
                let (status, reason) = match req.stop_reason() {
                    Some(StopReason::MaxRuntime(msg)) => (RunStatus::Failed, msg),
                    _ => (RunStatus::Skipped, "the scheduler shut down before this queued run could start".to_string()),
                };
                let _ = store.finish_run(run_id, status, Some(&reason)).await;
                return Some((status, Some(run_id), reason));
            }
            _ = tokio::time::sleep(QUEUE_POLL) => {}
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
