//! Runs a Plan: steps in order, items with bounded concurrency, retries, timeouts,
//! cancellation and resume. Never sees YAML or SQL: it dispatches each step through the step
//! contract (`contract.rs`) and records everything in the run log through `RunLog` (`log.rs`),
//! which it alone holds.

mod cancel;
pub mod contract;
pub mod delivery;
mod fuse;
mod items;
pub mod log;
mod progress;
pub mod records;
pub mod registry;
mod spread;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::secrets::Secrets;
use crate::spec::model::OnError;
pub use contract::{
    Artifact, BatchCx, BatchOutcome, BatchStep, Failed, ItemCx, ItemOutput, ItemRunner, ItemStep, RunEnv, Step, StepCx, StepError,
};
pub use delivery::{Delivery, RouteLog};
pub use items::Counts;
pub use log::{CancelRequest, Claim, ItemStatus, RunLog, RunStatus, StepStatus, TriggerKind};
use log::{NewArtifact, NewRun, StepEnd};
pub use records::RecordSource;
pub use registry::{KindDef, Planner, Registry};

/// A workflow planned with the engine's step contract.
pub type Plan = crate::plan::Plan<Step>;
pub type PlannedStep = crate::plan::PlannedStep<Step>;

/// How a run was started.
#[derive(Debug, Clone)]
pub enum Trigger {
    Manual,
    Schedule {
        at: chrono::DateTime<chrono::Utc>,
    },
    /// A scheduled fire whose run row the scheduler already inserted (its claim of the fire,
    /// `Store::claim_fire`): the run goes on in that row.
    Claimed {
        run_id: i64,
        at: chrono::DateTime<chrono::Utc>,
    },
    /// Continue run `run_id`: items that succeeded are left alone; with `from`, every item of
    /// that step and the ones after it runs again.
    Resume {
        run_id: i64,
        from: Option<String>,
    },
}

pub struct RunOptions {
    pub trigger: Trigger,
    /// Parameters from `--var`, already checked against the workflow's `params:`.
    pub params: Map<String, Value>,
    pub dry_run: bool,
    pub shutdown: CancellationToken,
    /// How long items in flight may go on after `shutdown` fires.
    pub grace: Duration,
    /// Draw progress bars (stderr is a terminal) rather than log lines.
    pub progress_bars: bool,
    /// Told the run's id as soon as the run is in the run log (a caller running it in the
    /// background answers with the id without waiting for the end).
    pub on_start: Option<tokio::sync::oneshot::Sender<i64>>,
}

#[derive(Debug, Clone)]
pub struct StepSummary {
    pub id: String,
    pub status: StepStatus,
    pub counts: Counts,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_id: i64,
    pub status: RunStatus,
    pub steps: Vec<StepSummary>,
}

/// Merge given parameters over the declared defaults; a required one that is missing is an error.
pub fn resolve_params(plan: &Plan, given: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (k, v) in given {
        if !plan.params.contains_key(k) {
            let declared: Vec<&str> = plan.params.keys().map(String::as_str).collect();
            return Err(format!(
                "`--var {k}=...` is not a parameter of workflow `{}`; declared: {}",
                plan.name,
                if declared.is_empty() { "none (add it under `params:`)".to_string() } else { declared.join(", ") }
            ));
        }
        out.insert(k.clone(), v.clone());
    }
    for (k, default) in &plan.params {
        if !out.contains_key(k) {
            if default.is_null() {
                return Err(format!("parameter `{k}` has no default; pass `--var {k}=...`"));
            }
            out.insert(k.clone(), default.clone());
        }
    }
    Ok(out)
}

pub async fn run(plan: &Plan, log: Arc<dyn RunLog>, config: Arc<Config>, secrets: Secrets, opts: RunOptions) -> anyhow::Result<RunSummary> {
    let mut opts = opts;
    let (run_id, resume_from) = match &opts.trigger {
        Trigger::Resume { run_id, from } => {
            log.reopen_run(*run_id).await?;
            (*run_id, Some(from.clone()))
        }
        Trigger::Schedule { at } => (start(plan, &*log, &opts, Some(*at)).await?, None),
        Trigger::Claimed { run_id, .. } => (*run_id, None),
        Trigger::Manual => (start(plan, &*log, &opts, None).await?, None),
    };
    if let Some(tx) = opts.on_start.take() {
        let _ = tx.send(run_id);
    }
    // The caller's token (Ctrl-C, SIGTERM, the scheduler) or a cancel request stops the run;
    // everything below watches this child of it.
    opts.shutdown = opts.shutdown.child_token();
    let _watch = cancel::watch(log.clone(), run_id, opts.shutdown.clone());
    let mut secrets = secrets;
    secrets.mask_config_secrets(&config, |k| std::env::var(k).ok());
    let secrets = Arc::new(secrets);
    // Whatever logs during the run (a step, a dependency) goes to stderr masked.
    let _masked = secrets.register();
    let artifacts_root = config.path(&plan.project, &config.artifacts_dir);
    let env = RunEnv {
        run_id,
        workflow: plan.name.clone(),
        config: config.clone(),
        project: plan.project.clone(),
        templates: plan.templates.clone(),
        secrets: secrets.clone(),
        artifacts_dir: artifacts_root.join(format!("run-{run_id}")),
        dry_run: opts.dry_run,
        shutdown: opts.shutdown.clone(),
        log: log.clone(),
        fuse: Default::default(),
    };
    let mut runner = Runner {
        rows: log.step_rows(run_id),
        env,
        opts: &opts,
        spec_hash: &plan.source_hash,
        sources: HashMap::new(),
        ctx: json!({
            "vars": plan.vars,
            "params": opts.params,
            "secrets": secrets.as_value(),
            "run": {"id": run_id, "workflow": plan.name, "trigger": trigger_kind(&opts).as_str()},
            "steps": {},
        }),
    };
    let redo_from = resume_from.flatten().and_then(|id| plan.step(&id).map(|s| s.index));
    let mut summary = RunSummary { run_id, status: RunStatus::Succeeded, steps: Vec::new() };
    for step in &plan.steps {
        if opts.shutdown.is_cancelled() {
            summary.status = RunStatus::Interrupted;
            break;
        }
        let redo = matches!(opts.trigger, Trigger::Resume { .. }) && redo_from.is_some_and(|i| step.index >= i);
        let resuming = matches!(opts.trigger, Trigger::Resume { .. }) && !redo;
        let s = match runner.step(step, resuming).await {
            Ok(s) => s,
            Err(e) => {
                let msg = secrets.redact(&format!("{e:#}"));
                let end = StepEnd { status: StepStatus::Failed, error: Some(&msg), output: None, records: None };
                runner.rows.finish(&step.id, end);
                if let Err(also) = runner.rows.flush().await {
                    // When the run log is what failed (a full disk), recording the step's end fails
                    // too: say why the step stopped and how to go on, not only that second failure.
                    anyhow::bail!("step `{}`: {msg} (the run log could not record this either: {also:#})", step.id);
                }
                StepSummary { id: step.id.clone(), status: StepStatus::Failed, counts: Counts::default(), error: Some(msg) }
            }
        };
        let stop = match s.status {
            StepStatus::Failed => {
                summary.status = RunStatus::Failed;
                true
            }
            StepStatus::Interrupted => {
                summary.status = RunStatus::Interrupted;
                true
            }
            StepStatus::Partial => {
                if summary.status == RunStatus::Succeeded {
                    summary.status = RunStatus::Partial;
                }
                false
            }
            StepStatus::Succeeded | StepStatus::Skipped | StepStatus::Running => false,
        };
        summary.steps.push(s);
        if stop {
            break;
        }
    }
    if opts.shutdown.is_cancelled() && summary.status != RunStatus::Failed {
        summary.status = RunStatus::Interrupted;
    }
    if let Err(e) = runner.rows.flush().await {
        anyhow::bail!(
            "the run log could not be written (run log write failed: {e:#}); the steps of run {run_id} are not all recorded. \
             Fix the run log (free disk space, check the database), then `cxflow resume {run_id}`"
        );
    }
    let mut error = summary.steps.iter().find_map(|s| s.error.clone().map(|e| format!("step `{}`: {e}", s.id)));
    if summary.status == RunStatus::Interrupted {
        error = cancel::with_who(&*log, run_id, error).await;
    }
    if let Err(e) = log.finish_run(run_id, summary.status, error.as_deref()).await {
        // Its last write: the run log failing here (a killed session) leaves the run recorded as
        // running. Say so, and how to go on, as for any run-log failure mid-run.
        anyhow::bail!(
            "the run log could not be written (run log write failed: {e:#}); the end of run {run_id} is not recorded. \
             Fix the run log (free disk space, check the database), then `cxflow resume {run_id}`"
        );
    }
    Ok(summary)
}

async fn start(plan: &Plan, log: &dyn RunLog, opts: &RunOptions, at: Option<chrono::DateTime<chrono::Utc>>) -> anyhow::Result<i64> {
    let params = Value::Object(opts.params.clone());
    // Absolute, so `cxflow resume` finds the file from any folder.
    let file = std::fs::canonicalize(&plan.file).unwrap_or_else(|_| plan.file.clone()).display().to_string();
    log.start_run(NewRun { workflow: &plan.name, file: &file, trigger: trigger_kind(opts), params: &params, scheduled_for: at }).await
}

fn trigger_kind(opts: &RunOptions) -> TriggerKind {
    match opts.trigger {
        Trigger::Resume { .. } => TriggerKind::Resume,
        Trigger::Schedule { .. } | Trigger::Claimed { .. } => TriggerKind::Schedule,
        Trigger::Manual if opts.dry_run => TriggerKind::DryRun,
        Trigger::Manual => TriggerKind::Manual,
    }
}

struct Runner<'a> {
    env: RunEnv,
    /// Step rows and batch steps' artifacts, written in the background (`log::StepRows`).
    rows: Box<dyn log::StepRows>,
    opts: &'a RunOptions,
    /// The workflow file's hash as planned: other nodes take shared items only with the same.
    spec_hash: &'a str,
    /// Records of each step so far, by step id.
    sources: HashMap<String, RecordSource>,
    /// The template context, `{vars, params, secrets, run, steps}`, kept from step to step:
    /// each step's output is added to `steps` in place. Copying it for each step made a
    /// workflow's cost grow with the square of its steps.
    ctx: Value,
}

impl Runner<'_> {
    fn source_of(&self, id: &str) -> RecordSource {
        self.sources.get(id).cloned().unwrap_or(RecordSource::Empty)
    }

    /// Ends a step for the steps after it: `steps.<id>` in their templates, and its records.
    fn done(&mut self, id: &str, output: Value, source: RecordSource) {
        if let Some(steps) = self.ctx.get_mut("steps").and_then(Value::as_object_mut) {
            steps.insert(id.to_string(), output);
        }
        self.sources.insert(id.to_string(), source);
    }

    async fn step(&mut self, step: &PlannedStep, resuming: bool) -> anyhow::Result<StepSummary> {
        let run_id = self.env.run_id;
        self.rows.start(&step.id, step.index, step.kind_name);
        let ctx = &self.ctx;
        if let Some(w) = &step.when {
            if !self.env.templates.truthy(w, ctx).map_err(|e| anyhow::anyhow!("cannot evaluate `when`: {e}"))? {
                let end = StepEnd { status: StepStatus::Skipped, error: None, output: None, records: None };
                self.rows.finish(&step.id, end);
                self.done(&step.id, json!({"skipped": true}), RecordSource::Empty);
                return Ok(StepSummary { id: step.id.clone(), status: StepStatus::Skipped, counts: Counts::default(), error: None });
            }
        }
        // Failed records the run log lists as items (all of them, in a per-item step).
        let mut failed_items = 0;
        let (source, output, counts) = match &step.kind {
            Step::Batch(b) => {
                let input = b.input().map(|id| self.source_of(id)).unwrap_or(RecordSource::Empty);
                let cx = BatchCx { step_id: &step.id, ctx, run: &self.env, bad_logged: Default::default() };
                let out = b.run(input, &cx).await?;
                self.rows.artifacts(&new_artifacts(&step.id, None, &out.artifacts));
                failed_items = cx.bad_logged.load(std::sync::atomic::Ordering::Relaxed);
                (out.records, out.output, Counts { ok: out.ok, failed: out.failed, ..Counts::default() })
            }
            Step::Item(k) => {
                // The rows so far are in the run log before the first claim, or the step stops.
                self.rows.flush().await?;
                let mut reads = step.reads.clone();
                reads.add(&k.own_reads());
                let narrowed = reads.narrow(ctx);
                let ctx = narrowed.as_ref().unwrap_or(ctx);
                let runner = k.open(&StepCx { step_id: &step.id, run: &self.env }).await?;
                let counts = self.items(step, &*runner, resuming, ctx).await;
                runner.close().await;
                (RecordSource::Items { run_id, step_id: step.id.clone() }, Value::Null, counts?)
            }
        };
        if let Some(why) = self.env.fuse.blown().map(str::to_string).or_else(|| self.rows.failure()) {
            anyhow::bail!(
                "the run log could not be written ({why}); the step stopped before its next side effect. \
                 Fix the run log (free disk space, check the database), then `cxflow resume {run_id}`"
            );
        }
        let status = if self.opts.shutdown.is_cancelled() && step.per_item {
            StepStatus::Interrupted
        } else if counts.failed > 0 {
            if step.on_error == OnError::Stop || counts.stopped {
                StepStatus::Failed
            } else {
                StepStatus::Partial
            }
        } else {
            StepStatus::Succeeded
        };
        let error = (counts.failed > 0).then(|| match step.per_item || failed_items == counts.failed {
            true => format!("{} item(s) failed; `cxflow show {run_id}` lists them", counts.failed),
            false => format!("{} record(s) failed; `cxflow show {run_id} --json` has the step's error samples", counts.failed),
        });
        let summary_out = if step.per_item {
            json!({"count": counts.ok + counts.failed + counts.skipped, "ok": counts.ok, "failed": counts.failed, "skipped": counts.skipped})
        } else {
            json!({"output": output})
        };
        // Masked as stored, not as later templates see it (`steps.<id>.output`): a source's path may
        // be built from a secret.
        let stored = (!output.is_null()).then(|| self.env.secrets.redact_value(&output));
        let records = (!step.per_item).then_some(counts.ok);
        self.rows.finish(&step.id, StepEnd { status, error: error.as_deref(), output: stored.as_ref(), records });
        self.done(&step.id, summary_out, source);
        Ok(StepSummary { id: step.id.clone(), status, counts, error })
    }

    async fn items(&self, step: &PlannedStep, runner: &dyn ItemRunner, resuming: bool, ctx: &Value) -> anyhow::Result<Counts> {
        let done: HashSet<String> = if resuming { self.env.log.done_keys(self.env.run_id, &step.id).await? } else { HashSet::new() };
        let input = step.for_each.as_ref().map(|id| self.source_of(id));
        let job = items::ItemsJob { step, runner, input, ctx, env: &self.env, done, grace: self.opts.grace, bars: self.opts.progress_bars };
        // A dry run sends nothing, so there is nothing to spread.
        if self.env.config.spread_items && !self.env.dry_run {
            return spread::origin(job, self.spec_hash).await;
        }
        items::run(job).await
    }
}

fn new_artifacts(step_id: &str, item: Option<&str>, artifacts: &[Artifact]) -> Vec<NewArtifact> {
    artifacts
        .iter()
        .map(|a| NewArtifact {
            step_id: step_id.to_string(),
            item_key: a.item.clone().or_else(|| item.map(str::to_string)),
            kind: a.kind.clone(),
            path: a.path.display().to_string(),
        })
        .collect()
}

/// Files a step produced, filed under `item` unless an artifact names its own item. A failure
/// here is logged, not fatal: the work the files describe is done and recorded.
pub(super) async fn record_artifacts(env: &RunEnv, step_id: &str, item: Option<&str>, artifacts: &[Artifact]) {
    if artifacts.is_empty() {
        return;
    }
    let rows = new_artifacts(step_id, item, artifacts);
    if let Err(e) = env.log.add_artifacts(env.run_id, &rows).await {
        tracing::error!("cannot record {} artifact(s) of step `{step_id}`: {e:#}", rows.len());
    }
}
