//! A node's share of other nodes' runs (`spread_items`): it looks for shared steps with items
//! to claim, and works on each with its own copy of the workflow, its own secrets and its own
//! `concurrency`. `cxflow worker` runs only this; `cxflow serve` runs it beside the scheduler.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::contract::{RunEnv, Step, StepCx};
use super::log::{RunLog, SharedStep};
use super::spread::{self, Share};
use super::Plan;
use crate::config::Config;
use crate::secrets::Secrets;

/// This node's plan of a workflow, by name (`None`: it has no valid file of that name).
pub type PlanLookup = Arc<dyn Fn(&str) -> Option<Arc<Plan>> + Send + Sync>;

/// How often a node with nothing to do looks for shared steps.
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// Works on other nodes' shared steps until `shutdown`; items in flight then get `grace`.
pub async fn work(log: Arc<dyn RunLog>, config: Arc<Config>, plans: PlanLookup, shutdown: CancellationToken, grace: Duration) {
    let active: Arc<Mutex<HashSet<(i64, String)>>> = Arc::default();
    // Reported once per shared step: a file that differs, a secret that is missing.
    let mut refused: HashSet<(i64, String)> = HashSet::new();
    let tasks = tokio_util::task::TaskTracker::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(LOOK_EVERY) => {}
        }
        let steps = match log.shared_steps().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot look for shared items: {e:#}");
                continue;
            }
        };
        for s in steps {
            let id = (s.run_id, s.step_id.clone());
            if refused.contains(&id) || active.lock().unwrap_or_else(|p| p.into_inner()).contains(&id) {
                continue;
            }
            let plan = match plans(&s.workflow) {
                Some(p) if p.source_hash == s.spec_hash => p,
                other => {
                    let why = match other {
                        Some(_) => "this node's copy of the workflow file differs from the one the run started with",
                        None => "this node has no valid workflow file of that name",
                    };
                    tracing::warn!(
                        run_id = s.run_id,
                        "not taking items of step `{}` of workflow `{}`: {why}; deploy the same file on every node",
                        s.step_id,
                        s.workflow
                    );
                    refused.insert(id);
                    continue;
                }
            };
            let secrets = match Secrets::from_env(&plan.secret_names, |k| std::env::var(k).ok()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(run_id = s.run_id, "not taking items of workflow `{}`: {e}", s.workflow);
                    refused.insert(id);
                    continue;
                }
            };
            active.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone());
            let (log, config, active, stop) = (log.clone(), config.clone(), active.clone(), shutdown.clone());
            tasks.spawn(async move {
                if let Err(e) = work_on(&s, &plan, log, config, secrets, stop).await {
                    tracing::warn!(run_id = s.run_id, "stopped working on step `{}`: {e:#}", s.step_id);
                }
                active.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            });
        }
    }
    tasks.close();
    if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
        tracing::warn!(
            "shared items still running after the shutdown grace period were abandoned; their leases lapse and other nodes redo them"
        );
    }
}

/// Claims and runs items of one shared step until there are none to claim.
async fn work_on(
    s: &SharedStep,
    plan: &Plan,
    log: Arc<dyn RunLog>,
    config: Arc<Config>,
    secrets: Secrets,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Some(step) = plan.step(&s.step_id) else { anyhow::bail!("the workflow has no step `{}`", s.step_id) };
    let Step::Item(kind) = &step.kind else { anyhow::bail!("step `{}` is not a per-item step", s.step_id) };
    let mut secrets = secrets;
    secrets.mask_config_secrets(&config, |k| std::env::var(k).ok());
    let secrets = Arc::new(secrets);
    let _masked = secrets.register();
    let stop = shutdown.child_token();
    let _watch = super::cancel::watch(log.clone(), s.run_id, stop.clone());
    let artifacts_root = config.path(&plan.project, &config.artifacts_dir);
    let env = RunEnv {
        run_id: s.run_id,
        workflow: plan.name.clone(),
        config: config.clone(),
        project: plan.project.clone(),
        templates: plan.templates.clone(),
        secrets: secrets.clone(),
        artifacts_dir: artifacts_root.join(format!("run-{}", s.run_id)),
        dry_run: false,
        shutdown: stop,
        log: log.clone(),
        fuse: Default::default(),
    };
    let mut ctx: serde_json::Value = serde_json::from_str(&s.ctx).map_err(|e| anyhow::anyhow!("the shared context does not parse: {e}"))?;
    ctx["secrets"] = secrets.as_value();
    let runner = kind.open(&StepCx { step_id: &step.id, run: &env }).await?;
    let writer = log.item_sink();
    let share = Share { step, runner: &*runner, env: &env, ctx: &ctx };
    spread::drain(&share, &*writer, None).await;
    runner.close().await;
    let flushed = writer.flush().await;
    if let Some(why) = env.fuse.blown().map(str::to_string).or_else(|| writer.failure()) {
        anyhow::bail!("{why}");
    }
    flushed
}
