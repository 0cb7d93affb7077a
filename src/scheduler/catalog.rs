//! The scheduler's catalog of workflows: which file holds which workflow, the plans the
//! launcher runs, and hot reload (a changed file is planned again; a broken edit is reported
//! and the last good version keeps running).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::launch::Plans;
use super::policy::WorkflowSchedule;
use super::runner::Control;
use crate::engine::Plan;
use crate::store::Store;

/// Plans one workflow file; the error is the rendered diagnostics.
pub type PlanFile = Arc<dyn Fn(&Path) -> Result<Plan, String> + Send + Sync>;

pub struct Catalog {
    store: Store,
    workflows_dir: PathBuf,
    plan_file: PlanFile,
    plans: Plans,
    by_file: HashMap<PathBuf, String>,
    /// The reverse of `by_file`: which file holds each name (a scan of `by_file` per file made
    /// loading 10,000 workflows quadratic).
    by_name: HashMap<String, PathBuf>,
}

impl Catalog {
    pub fn new(store: Store, workflows_dir: PathBuf, plan_file: PlanFile) -> Catalog {
        Catalog { store, workflows_dir, plan_file, plans: Plans::default(), by_file: HashMap::new(), by_name: HashMap::new() }
    }

    /// The plans by workflow name, shared with the launcher.
    pub fn plans(&self) -> Plans {
        self.plans.clone()
    }

    /// The workflows found at start: the scheduled ones are registered, with their last fire.
    pub async fn add_initial(
        &mut self,
        good: Vec<(PathBuf, Arc<Plan>)>,
        last: &HashMap<String, DateTime<Utc>>,
    ) -> Vec<(WorkflowSchedule, Option<DateTime<Utc>>)> {
        let mut initial = Vec::new();
        for (f, plan) in good {
            let Some(s) = &plan.schedule else { continue };
            if let Some(other) = self.by_name.get(&plan.name).cloned() {
                let msg =
                    format!("workflow name `{}` is already used by `{}`; give each workflow its own name", plan.name, other.display());
                report_invalid(&self.store, &f, &msg, false).await;
                continue;
            }
            initial.push((s.compiled.clone(), last.get(&plan.name).copied()));
            let key = file_key(&f);
            self.by_name.insert(plan.name.clone(), key.clone());
            self.by_file.insert(key, plan.name.clone());
            self.plans.write().unwrap().insert(plan.name.clone(), plan.clone());
        }
        initial
    }

    /// One changed path: what the loop must do about it (None: nothing).
    pub async fn reload(&mut self, changed: &Path) -> Option<Vec<Control>> {
        // Planning the file and the loop's rescheduling allocate; the daemon idles afterwards.
        crate::process::trim_soon();
        let (store, plans, by_file, by_name) = (&self.store, &self.plans, &mut self.by_file, &mut self.by_name);
        // Shown as the folder listing spells it, like `cxflow validate` does.
        let shown = match changed.file_name() {
            Some(n) => self.workflows_dir.join(n),
            None => changed.to_path_buf(),
        };
        let key = file_key(changed);
        let path = key.as_path();
        let known = by_file.get(path).cloned();
        if !path.exists() {
            let name = by_file.remove(path)?;
            by_name.remove(&name);
            plans.write().unwrap().remove(&name);
            tracing::info!(workflow = %name, file = %shown.display(), "workflow file deleted; unscheduled");
            return Some(vec![Control::Remove { name }]);
        }
        let plan = match (self.plan_file)(&shown) {
            Ok(p) => Arc::new(p),
            Err(msg) => {
                report_invalid(store, &shown, &msg, known.is_some()).await;
                return None;
            }
        };
        let mut out = Vec::new();
        if let Some(old) = known.as_ref().filter(|old| **old != plan.name) {
            // Renamed inside the file: the old name goes.
            plans.write().unwrap().remove(old);
            by_file.remove(path);
            by_name.remove(old);
            out.push(Control::Remove { name: old.clone() });
        }
        if let Some(other) = by_name.get(&plan.name).filter(|p| p.as_path() != path).cloned() {
            let msg = format!("workflow name `{}` is already used by `{}`; give each workflow its own name", plan.name, other.display());
            report_invalid(store, &shown, &msg, false).await;
            return Some(out);
        }
        match &plan.schedule {
            Some(s) => {
                let last = store.last_fire_times().await.ok().and_then(|m| m.get(&plan.name).copied());
                tracing::info!(workflow = %plan.name, file = %shown.display(), cron = %s.cron, "workflow (re)loaded");
                by_file.insert(path.to_path_buf(), plan.name.clone());
                by_name.insert(plan.name.clone(), path.to_path_buf());
                plans.write().unwrap().insert(plan.name.clone(), plan.clone());
                out.push(Control::Upsert { schedule: s.compiled.clone(), last_fire: last });
            }
            None => {
                if by_file.remove(path).is_some() {
                    by_name.remove(&plan.name);
                    plans.write().unwrap().remove(&plan.name);
                    out.push(Control::Remove { name: plan.name.clone() });
                }
            }
        }
        Some(out)
    }
}

/// Records a workflow file that failed validation: logged, and in the run log as a skipped run
/// of the workflow (named after the file when the name itself could not be read).
pub async fn report_invalid(store: &Store, file: &Path, msg: &str, kept: bool) {
    let name = file.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let what = if kept { "the last good version keeps running" } else { "it is not scheduled" };
    tracing::error!(file = %file.display(), "workflow file failed validation; {what}:\n{}", msg.trim_end());
    let reason = format!("workflow file `{}` failed validation; {what}:\n{}", file.display(), msg.trim_end());
    let _ = store.record_skipped(&name, &file.display().to_string(), None, &reason).await;
}

/// One key per workflow file however its path is spelled (the watcher reports absolute paths,
/// the folder listing relative ones); the folder is resolved, the file may be gone.
fn file_key(p: &Path) -> PathBuf {
    match (p.parent().and_then(|d| d.canonicalize().ok()), p.file_name()) {
        (Some(dir), Some(name)) => dir.join(name),
        _ => p.to_path_buf(),
    }
}
