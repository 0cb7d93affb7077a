//! `cxflow run` and `cxflow resume`.

use std::io::IsTerminal;

use serde_json::{Map, Value};

use super::{exit, signals, CliError, Project, Result};
use crate::control::ResumePlan;
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
        on_start: None,
    }
}

fn secrets(plan: &crate::engine::Plan) -> Result<Secrets> {
    Ok(crate::control::secrets_for(plan)?)
}

pub async fn run(project: &Project, args: RunArgs) -> Result<i32> {
    let plan = project.plan_unique(project.load_workflow(&args.workflow)?)?;
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
    let (plan, params, secrets) = match crate::control::prepare_resume(project, &store, run_id, from.as_deref()).await? {
        ResumePlan::AlreadySucceeded => {
            termln!("run {run_id} already succeeded; nothing to resume (use --from STEP to redo steps)");
            return Ok(exit::OK);
        }
        ResumePlan::Ready(r) => (r.plan, r.params, r.secrets),
    };
    let opts = options(project, Trigger::Resume { run_id, from }, params, false);
    let summary = engine::run(&plan, std::sync::Arc::new(store.clone()), project.config.clone(), secrets, opts).await?;
    let code = report(&plan.name, &summary, false);
    list_uncertain(&store, run_id).await;
    Ok(code)
}

/// Items the run could not deliver for certain, and what to do about them. The run is already
/// `partial` or `failed` for them (they failed); this says which they are.
///
/// The claims the ledger still holds as `sending` count too: a delivery the server took while the
/// run log was failing may have its claim written but not its item's result (the batch of
/// results failed), and `cxflow show` lists it from the ledger; the run's own report must too.
async fn list_uncertain(store: &crate::store::Store, run_id: i64) {
    let Ok(mut rows) = store.uncertain_items(run_id).await else { return };
    let mut listed: std::collections::HashSet<(String, String)> = rows.iter().cloned().collect();
    for l in store.uncertain_keys(run_id).await.unwrap_or_default() {
        if listed.insert((l.step_id.clone(), l.item_key.clone())) {
            rows.push((l.step_id, l.item_key));
        }
    }
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
