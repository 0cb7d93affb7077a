//! `cxflow run` and `cxflow resume`.

use std::io::IsTerminal;

use serde_json::{Map, Value};

use super::{exit, signals, CliError, Project, Result};
use crate::engine::{self, RunOptions, RunStatus, RunSummary, Trigger};
use crate::secrets::Secrets;

pub struct RunArgs {
    pub workflow: String,
    /// `key=value` pairs from `--var`.
    pub vars: Vec<String>,
    pub dry_run: bool,
}

fn parse_vars(vars: &[String]) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    for v in vars {
        let (k, val) = v.split_once('=').ok_or_else(|| CliError::Invalid(format!("`--var {v}` needs the form `name=value`")))?;
        m.insert(k.trim().to_string(), Value::String(val.to_string()));
    }
    Ok(m)
}

fn options(project: &Project, trigger: Trigger, params: Map<String, Value>, dry_run: bool) -> RunOptions {
    RunOptions {
        trigger,
        params,
        dry_run,
        shutdown: signals::on_shutdown(),
        grace: project.config.shutdown_grace,
        progress_bars: std::io::stderr().is_terminal(),
    }
}

/// A dry run renders every template with the real values, as a real run would, so it needs the
/// same secrets (its output is masked like a real run's).
fn secrets(plan: &crate::engine::Plan) -> Result<Secrets> {
    Secrets::from_env(&plan.secret_names, |k| std::env::var(k).ok()).map_err(|e| CliError::Invalid(e.to_string()))
}

pub async fn run(project: &Project, args: RunArgs) -> Result<i32> {
    let file = project.find_workflow(&args.workflow)?;
    let plan = project.plan(&file)?;
    super::names::check_unique(project, &file)?;
    let given = parse_vars(&args.vars)?;
    let params = engine::resolve_params(&plan, &given).map_err(CliError::Invalid)?;
    let secrets = secrets(&plan)?;
    let store = project.store().await?;
    let opts = options(project, Trigger::Manual, params, args.dry_run);
    let summary = engine::run(&plan, std::sync::Arc::new(store.clone()), project.config.clone(), secrets, opts).await?;
    let code = report(&plan.name, &summary, args.dry_run);
    list_uncertain(&store, summary.run_id).await;
    Ok(code)
}

pub async fn resume(project: &Project, run_id: i64, from: Option<String>) -> Result<i32> {
    let store = project.store().await?;
    let row = store.run(run_id).await?;
    if row.status == RunStatus::Running {
        store.interrupt_orphans().await?;
        if store.run(run_id).await?.status == RunStatus::Running {
            return Err(CliError::Invalid(format!("run {run_id} is still running in another process; wait for it or stop it first")));
        }
    }
    if row.trigger == crate::store::TriggerKind::DryRun {
        return Err(CliError::Invalid(format!("run {run_id} was a dry run; start a real one with `cxflow run {}`", row.workflow)));
    }
    if row.status == RunStatus::Succeeded && from.is_none() {
        termln!("run {run_id} already succeeded; nothing to resume (use --from STEP to redo steps)");
        return Ok(exit::OK);
    }
    let plan = project.plan(std::path::Path::new(&row.file))?;
    super::names::check_unique(project, std::path::Path::new(&row.file))?;
    if let Some(f) = &from {
        if plan.step(f).is_none() {
            let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
            return Err(CliError::Invalid(format!("workflow `{}` has no step `{f}`; its steps are: {}", plan.name, ids.join(", "))));
        }
    }
    // Parameters that do not read back would resume on the defaults, a different run than the one
    // that stopped: refuse instead.
    let mut params: Map<String, Value> = serde_json::from_str(&row.params).map_err(|e| {
        CliError::Other(anyhow::anyhow!(
            "run {run_id} cannot resume: its parameters in the run log are not a JSON object ({e}); start a new run with `cxflow run {}`",
            row.workflow
        ))
    })?;
    // The workflow may have changed since the run started: a parameter added since would be
    // missing from every item's templates. One with a default takes it; a required one stops here.
    for (k, default) in &plan.params {
        if !params.contains_key(k) {
            if default.is_null() {
                return Err(CliError::Invalid(format!(
                    "run {run_id} cannot resume: workflow `{}` now requires parameter `{k}`, which the run was started without; start a new run with `cxflow run {} --var {k}=...`",
                    plan.name, row.workflow
                )));
            }
            params.insert(k.clone(), default.clone());
        }
    }
    let secrets = secrets(&plan)?;
    let opts = options(project, Trigger::Resume { run_id, from }, params, false);
    let summary = engine::run(&plan, std::sync::Arc::new(store.clone()), project.config.clone(), secrets, opts).await?;
    let code = report(&plan.name, &summary, false);
    list_uncertain(&store, run_id).await;
    Ok(code)
}

/// Items the run could not deliver for certain, and what to do about them. The run is already
/// `partial` or `failed` for them (they failed); this says which they are.
async fn list_uncertain(store: &crate::store::Store, run_id: i64) {
    let Ok(rows) = store.uncertain_items(run_id).await else { return };
    if rows.is_empty() {
        return;
    }
    termln!("uncertain: {} item(s) may or may not have reached the other side:", rows.len());
    for (step, item) in rows.iter().take(20) {
        termln!("  {step} {item}");
    }
    if rows.len() > 20 {
        termln!("  ... `cxflow show {run_id}` lists all {}", rows.len());
    }
    termln!("check the other side, then `cxflow resolve RUN ITEM_KEY... --as sent|not-sent` (the run each item's error names), and `cxflow resume {run_id}`");
}

fn report(name: &str, s: &RunSummary, dry_run: bool) -> i32 {
    let what = if dry_run { "dry run" } else { "run" };
    termln!("{what} {} of {name}: {}", s.run_id, s.status.as_str());
    for st in &s.steps {
        let c = &st.counts;
        let counts = if c.ok + c.failed + c.skipped + c.earlier > 0 {
            let earlier = if c.earlier > 0 { format!(", {} done earlier", c.earlier) } else { String::new() };
            format!("  ok {} failed {} skipped {}{earlier}", c.ok, c.failed, c.skipped)
        } else {
            String::new()
        };
        termln!("  {:<20} {:<12}{counts}", st.id, st.status);
        if let Some(e) = &st.error {
            termln!("    {e}");
        }
    }
    match s.status {
        RunStatus::Succeeded => exit::OK,
        RunStatus::Interrupted => {
            termln!("resume with: cxflow resume {}", s.run_id);
            exit::INTERRUPTED
        }
        _ => {
            termln!("details: cxflow show {}", s.run_id);
            exit::FAILED
        }
    }
}
