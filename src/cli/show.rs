//! `cxflow runs`, `cxflow show` and `cxflow routed`: reading the run log.

use serde_json::json;

use super::{exit, CliError, Project, Result};
use crate::store::RunFilter;

pub struct RunsArgs {
    pub workflow: Option<String>,
    pub status: Option<String>,
    pub limit: i64,
    pub json: bool,
}

const STATUSES: &[&str] = &["running", "succeeded", "failed", "partial", "interrupted", "skipped"];

pub async fn runs(project: &Project, a: RunsArgs) -> Result<i32> {
    if let Some(s) = &a.status {
        if !STATUSES.contains(&s.as_str()) {
            return Err(CliError::Invalid(format!("unknown status `{s}`; use one of: {}", STATUSES.join(", "))));
        }
    }
    let store = project.store().await?;
    // A run whose process died (kill -9, a crash) would otherwise say `running` until the next
    // run or `serve` looked.
    store.interrupt_orphans().await?;
    let rows = store.runs(&RunFilter { workflow: a.workflow, status: a.status, limit: a.limit }).await?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&rows).map_err(anyhow::Error::from)?);
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        termln!("no runs yet; start one with `cxflow run <workflow>`");
        return Ok(exit::OK);
    }
    termln!("{:>6}  {:<24} {:<12} {:<9} {:<25} error", "run", "workflow", "status", "trigger", "started");
    for r in rows {
        let err = r.error.unwrap_or_default();
        termln!("{:>6}  {:<24} {:<12} {:<9} {:<25} {}", r.id, r.workflow, r.status, r.trigger, r.started_at, err);
    }
    Ok(exit::OK)
}

/// `cxflow routed WORKFLOW STEP`: every id the route step remembers, tab, the run that routed it
/// last, in the order first routed. The run log keeps them compressed, so this is how to read them.
pub async fn routed(project: &Project, workflow: &str, step: &str) -> Result<i32> {
    let store = project.store().await?;
    let ids = store.routed_owners(&format!("{workflow}/{step}")).await?;
    if ids.is_empty() {
        eprintln!("no ids routed by step `{step}` of workflow `{workflow}` (a workflow's `name:`, then a route step's `id:`)");
    }
    for (id, run) in ids {
        termln!("{id}\t{run}");
    }
    Ok(exit::OK)
}

/// How many failed items `show` prints before pointing at `--json`.
const SHOWN_ITEMS: i64 = 50;

pub async fn show(project: &Project, run_id: i64, as_json: bool) -> Result<i32> {
    let store = project.store().await?;
    store.interrupt_orphans().await?;
    let run = store.run(run_id).await?;
    let steps = store.steps(run_id).await?;
    let failed = store.items(run_id, Some("failed"), if as_json { 0 } else { SHOWN_ITEMS }).await?;
    let artifacts = store.artifacts(run_id).await?;
    let uncertain = store.uncertain_keys(run_id).await?;
    if as_json {
        let steps: Vec<serde_json::Value> = steps
            .iter()
            .map(|s| {
                let mut v = json!(s);
                // Stored as text; shown as the JSON it is.
                v["output"] = s.output.as_deref().and_then(|o| serde_json::from_str(o).ok()).unwrap_or_default();
                v
            })
            .collect();
        let v = json!({"run": run, "steps": steps, "failed_items": failed, "artifacts": artifacts, "uncertain": uncertain});
        outln!("{}", serde_json::to_string_pretty(&v).map_err(anyhow::Error::from)?);
        return Ok(exit::OK);
    }
    termln!("run {} of {} ({}): {}", run.id, run.workflow, run.file, run.status);
    termln!("  trigger {}, started {}, finished {}", run.trigger, run.started_at, run.finished_at.as_deref().unwrap_or("-"));
    if run.params != "{}" {
        termln!("  params {}", run.params);
    }
    if let Some(e) = &run.error {
        termln!("  error: {e}");
    }
    termln!("steps:");
    for s in &steps {
        termln!("  {:<20} {:<11} {:<12} ok {:<6} failed {:<6} skipped {}", s.step_id, s.kind, s.status, s.ok, s.failed, s.skipped);
        if let Some(e) = &s.error {
            termln!("    {e}");
        }
    }
    if !failed.is_empty() {
        termln!("failed items:");
        for i in &failed {
            termln!("  {} {} (attempts {}): {}", i.step_id, i.item_key, i.attempts, i.error.as_deref().unwrap_or(""));
            for a in artifacts.iter().filter(|a| a.step_id == i.step_id && a.item_key.as_deref() == Some(&i.item_key)) {
                termln!("    {}: {}", a.kind, a.path);
            }
        }
        if failed.len() as i64 == SHOWN_ITEMS {
            termln!("  (first {SHOWN_ITEMS}; `cxflow show {run_id} --json` lists all)");
        }
    }
    if !uncertain.is_empty() {
        termln!("uncertain (cut off between hand-over and confirmation; may or may not have happened):");
        for u in &uncertain {
            termln!("  {} {} key {}", u.step_id, u.item_key, u.key);
        }
        termln!("decide with: cxflow resolve {run_id} ITEM_KEY... --as sent|not-sent (or --all), then cxflow resume {run_id}");
    }
    let resolutions = store.resolutions(run_id).await?;
    if !resolutions.is_empty() {
        termln!("resolved by hand:");
        for (item, decision, by, at) in &resolutions {
            termln!("  {item} as {decision} by {by} at {at}");
        }
    }
    if !artifacts.is_empty() {
        termln!("artifacts: {}", artifacts.len());
        for a in artifacts.iter().take(20) {
            termln!("  {} {} {}", a.kind, a.item_key.as_deref().unwrap_or("-"), a.path);
        }
    }
    if matches!(run.status.as_str(), "failed" | "partial" | "interrupted") {
        termln!("resume with: cxflow resume {run_id}");
    }
    Ok(exit::OK)
}

/// `cxflow nodes`: the processes running workflows on this run log (every `serve` node, and any
/// `run` or `resume` going on), with their leases; `all` adds the ones whose lease lapsed.
pub async fn nodes(project: &Project, all: bool, as_json: bool) -> Result<i32> {
    let store = project.store().await?;
    let nodes: Vec<_> = store.nodes().await?.into_iter().filter(|n| all || n.alive).collect();
    if as_json {
        outln!("{}", serde_json::to_string_pretty(&nodes).map_err(anyhow::Error::from)?);
        return Ok(exit::OK);
    }
    if nodes.is_empty() {
        termln!(
            "no cxflow process holds a lease on this run log; `cxflow serve` starts a node{}",
            if all { "" } else { " (`--all` lists the lapsed ones)" }
        );
        return Ok(exit::OK);
    }
    termln!(
        "{:<36}  {:<20} {:>8}  {:<6} {:>4} {:>6}  {:<24}  {:<24}  lease until",
        "node",
        "host",
        "pid",
        "state",
        "runs",
        "items",
        "started",
        "last heartbeat"
    );
    for n in nodes {
        let state = if n.alive { "alive" } else { "gone" };
        termln!(
            "{:<36}  {:<20} {:>8}  {:<6} {:>4} {:>6}  {:<24}  {:<24}  {}",
            n.id,
            n.host,
            n.pid,
            state,
            n.running_runs,
            n.items_claimed,
            n.started_at,
            n.heartbeat_at,
            n.expires_at
        );
    }
    Ok(exit::OK)
}
