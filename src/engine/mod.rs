//! Runs a Plan: steps in order, items with bounded concurrency, retries, timeouts,
//! cancellation and resume. Never sees YAML or SQL: it talks to `steps` and `store`.

mod items;
mod progress;
pub mod records;
mod sources;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::plan::{Plan, PlannedStep, StepKind};
use crate::secrets::Secrets;
use crate::spec::model::OnError;
use crate::steps::{browser, command, route, send_email, write, RunEnv};
use crate::store::{NewRun, Store};
pub use items::Counts;
pub use records::RecordSource;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Succeeded,
    Partial,
    Failed,
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

/// How a run was started.
#[derive(Debug, Clone)]
pub enum Trigger {
    Manual,
    Schedule { at: chrono::DateTime<chrono::Utc> },
    /// Continue run `run_id`: items that succeeded are left alone; with `from`, every item of
    /// that step and the ones after it runs again.
    Resume { run_id: i64, from: Option<String> },
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
}

#[derive(Debug, Clone)]
pub struct StepSummary {
    pub id: String,
    pub status: &'static str,
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

pub async fn run(plan: &Plan, store: &Store, config: Arc<Config>, secrets: Secrets, opts: RunOptions) -> anyhow::Result<RunSummary> {
    let (run_id, resume_from) = match &opts.trigger {
        Trigger::Resume { run_id, from } => {
            store.reopen_run(*run_id).await?;
            (*run_id, Some(from.clone()))
        }
        t => {
            let (trigger, at) = match t {
                Trigger::Schedule { at } => ("schedule", Some(*at)),
                _ if opts.dry_run => ("dry-run", None),
                _ => ("manual", None),
            };
            let params = Value::Object(opts.params.clone());
            // Absolute, so `cxflow resume` finds the file from any folder.
            let file = std::fs::canonicalize(&plan.file).unwrap_or_else(|_| plan.file.clone()).display().to_string();
            let id = store
                .start_run(NewRun { workflow: &plan.name, file: &file, trigger, params: &params, scheduled_for: at })
                .await?;
            (id, None)
        }
    };
    let mut secrets = secrets;
    secrets.mask_config_secrets(&config, |k| std::env::var(k).ok());
    let secrets = Arc::new(secrets);
    let artifacts_root = config.path(&plan.project, &config.artifacts_dir);
    let env = RunEnv {
        run_id,
        workflow: plan.name.clone(),
        store: store.clone(),
        config: config.clone(),
        project: plan.project.clone(),
        templates: plan.templates.clone(),
        secrets: secrets.clone(),
        artifacts_dir: artifacts_root.join(format!("run-{run_id}")),
        dry_run: opts.dry_run,
        shutdown: opts.shutdown.clone(),
    };
    let mut runner = Runner {
        env,
        opts: &opts,
        outputs: Map::new(),
        sources: Vec::new(),
        base: json!({
            "vars": plan.vars,
            "params": opts.params,
            "secrets": secrets.as_value(),
            "run": {"id": run_id, "workflow": plan.name, "trigger": trigger_name(&opts)},
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
        let s = runner.step(step, resuming).await;
        let s = match s {
            Ok(s) => s,
            Err(e) => {
                let msg = secrets.redact(&format!("{e:#}"));
                store.finish_step(run_id, &step.id, "failed", Some(&msg), None, None).await?;
                StepSummary { id: step.id.clone(), status: "failed", counts: Counts::default(), error: Some(msg) }
            }
        };
        let stop = match s.status {
            "failed" => {
                summary.status = RunStatus::Failed;
                true
            }
            "interrupted" => {
                summary.status = RunStatus::Interrupted;
                true
            }
            "partial" => {
                if summary.status == RunStatus::Succeeded {
                    summary.status = RunStatus::Partial;
                }
                false
            }
            _ => false,
        };
        summary.steps.push(s);
        if stop {
            break;
        }
    }
    if opts.shutdown.is_cancelled() && summary.status != RunStatus::Failed {
        summary.status = RunStatus::Interrupted;
    }
    let error = summary.steps.iter().find_map(|s| s.error.clone().map(|e| format!("step `{}`: {e}", s.id)));
    store.finish_run(run_id, summary.status.as_str(), error.as_deref()).await?;
    Ok(summary)
}

fn trigger_name(opts: &RunOptions) -> &'static str {
    match opts.trigger {
        Trigger::Resume { .. } => "resume",
        Trigger::Schedule { .. } => "schedule",
        Trigger::Manual if opts.dry_run => "dry-run",
        Trigger::Manual => "manual",
    }
}

struct Runner<'a> {
    env: RunEnv,
    opts: &'a RunOptions,
    /// `steps.<id>` of the template context.
    outputs: Map<String, Value>,
    /// Records of each step so far, by step index.
    sources: Vec<(String, RecordSource)>,
    base: Value,
}

impl Runner<'_> {
    fn ctx(&self) -> Value {
        let mut c = self.base.clone();
        c["steps"] = Value::Object(self.outputs.clone());
        c
    }

    fn source_of(&self, id: &str) -> RecordSource {
        self.sources.iter().rev().find(|(s, _)| s == id).map(|(_, r)| r.clone()).unwrap_or(RecordSource::Empty)
    }

    fn render_path(&self, t: &crate::plan::TemplateRef, ctx: &Value) -> anyhow::Result<PathBuf> {
        let p = self.env.templates.render(t, ctx).context("cannot render the path")?;
        Ok(self.env.resolve(&p))
    }

    async fn step(&mut self, step: &PlannedStep, resuming: bool) -> anyhow::Result<StepSummary> {
        let store = &self.env.store;
        let run_id = self.env.run_id;
        store.start_step(run_id, &step.id, step.index, step.kind.name()).await?;
        let ctx = self.ctx();
        if let Some(w) = &step.when {
            if !self.env.templates.truthy(w, &ctx).context("cannot evaluate `when`")? {
                store.finish_step(run_id, &step.id, "skipped", None, None, None).await?;
                self.outputs.insert(step.id.clone(), json!({"skipped": true}));
                self.sources.push((step.id.clone(), RecordSource::Empty));
                return Ok(StepSummary { id: step.id.clone(), status: "skipped", counts: Counts::default(), error: None });
            }
        }
        let (source, output, counts) = match &step.kind {
            StepKind::ReadCsv { path, delimiter } => {
                let path = self.render_path(path, &ctx)?;
                records::open_file(&path)?;
                let out = json!({"path": path.display().to_string()});
                (RecordSource::Csv { path, delimiter: *delimiter }, out, Counts::default())
            }
            StepKind::ReadJson { path } => {
                let path = self.render_path(path, &ctx)?;
                records::open_file(&path)?;
                let out = json!({"path": path.display().to_string()});
                (RecordSource::Json { path }, out, Counts::default())
            }
            StepKind::Sql { url, query } => {
                let url = self.env.templates.render(url, &ctx).context("cannot render the database URL")?;
                (RecordSource::Sql { url, query: query.clone() }, json!({}), Counts::default())
            }
            StepKind::WriteCsv(w) | StepKind::WriteJson(w) => {
                let path = self.render_path(&w.path, &ctx)?;
                let input = self.source_of(&w.from);
                let csv = matches!(step.kind, StepKind::WriteCsv(_));
                let n = write::write(&input, &path, csv, w, &self.env).await?;
                if !self.env.dry_run {
                    store.add_artifact(run_id, &step.id, None, if csv { "csv" } else { "json" }, &path.display().to_string()).await?;
                }
                let out = json!({"path": path.display().to_string(), "count": n});
                (RecordSource::Empty, out, Counts { ok: n, ..Counts::default() })
            }
            StepKind::Route(r) => {
                let input = self.source_of(&r.input);
                let (src, out) = route::run(r, input, &self.env).await?;
                // Routed records count as ok, records that could not be routed (a missing field) as failed.
                let n = |k: &str| out.get(k).and_then(Value::as_u64).unwrap_or(0);
                let counts = Counts { ok: n("routed"), failed: n("errors"), ..Counts::default() };
                (src, out, counts)
            }
            StepKind::Command(p) => {
                let runner = command::open(p, &self.env).await?;
                let counts = self.items(step, items::ItemRunner::Command(runner), resuming, &ctx).await?;
                (RecordSource::Items { run_id, step_id: step.id.clone() }, Value::Null, counts)
            }
            StepKind::SendEmail(p) => {
                let runner = send_email::open(p, &self.env).await?;
                let counts = self.items(step, items::ItemRunner::Email(runner), resuming, &ctx).await?;
                (RecordSource::Items { run_id, step_id: step.id.clone() }, Value::Null, counts)
            }
            StepKind::Browser(p) => {
                let runner = browser::open(p, &self.env).await?;
                let counts = self.items(step, items::ItemRunner::Browser(runner), resuming, &ctx).await?;
                (RecordSource::Items { run_id, step_id: step.id.clone() }, Value::Null, counts)
            }
        };
        let status = if self.opts.shutdown.is_cancelled() && step.kind.is_per_item() {
            "interrupted"
        } else if counts.failed > 0 {
            if step.on_error == OnError::Stop || counts.stopped {
                "failed"
            } else {
                "partial"
            }
        } else {
            "succeeded"
        };
        let error = (counts.failed > 0).then(|| match step.kind.is_per_item() {
            true => format!("{} item(s) failed; `cxflow show {run_id}` lists them", counts.failed),
            false => format!("{} record(s) failed; `cxflow show {run_id} --json` has the step's error samples", counts.failed),
        });
        let summary_out = if step.kind.is_per_item() {
            json!({"count": counts.ok + counts.failed + counts.skipped, "ok": counts.ok, "failed": counts.failed, "skipped": counts.skipped})
        } else {
            json!({"output": output})
        };
        let stored = (!output.is_null()).then_some(&output);
        let records = (!step.kind.is_per_item()).then_some(counts.ok);
        store.finish_step(run_id, &step.id, status, error.as_deref(), stored, records).await?;
        self.outputs.insert(step.id.clone(), summary_out);
        self.sources.push((step.id.clone(), source));
        Ok(StepSummary { id: step.id.clone(), status, counts, error })
    }

    async fn items(&self, step: &PlannedStep, runner: items::ItemRunner, resuming: bool, ctx: &Value) -> anyhow::Result<Counts> {
        let done: HashSet<String> = if resuming { self.env.store.done_keys(self.env.run_id, &step.id).await? } else { HashSet::new() };
        let input = match &step.for_each {
            Some(id) => Some(self.source_of(id)),
            None => None,
        };
        let counts = items::run(items::ItemsJob {
            step,
            runner: &runner,
            input,
            ctx,
            env: &self.env,
            done,
            grace: self.opts.grace,
            bars: self.opts.progress_bars,
        })
        .await;
        runner.close().await;
        counts
    }
}
