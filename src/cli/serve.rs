//! `cxflow serve`, `cxflow next` and `cxflow prune`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Local, Utc};
use futures::FutureExt;
use tokio::sync::mpsc;

use super::load::workflow_files;
use super::{exit, signals, CliError, Project, Result};
use crate::engine::Plan;
use crate::scheduler::calendar::skip_reason;
use crate::scheduler::catalog::{self, Catalog};
use crate::scheduler::clock::SystemClock;
use crate::scheduler::launch::{EngineLauncher, Plans, PruneFn};
use crate::scheduler::lock::{self, LockError};
use crate::scheduler::policy::Resume;
use crate::scheduler::runner::{run_loop, RunnerConfig};
use crate::scheduler::state::Limits;
use crate::scheduler::watch::watch_folder;
use crate::store::{redact_url, Retention, SchedulerLock, Store};

/// The SQLite file behind a `sqlite://` URL (None for in-memory or other databases).
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    (!path.is_empty() && !path.starts_with(':')).then(|| PathBuf::from(path))
}

pub(crate) fn clone_project(p: &Project) -> Project {
    Project { dir: p.dir.clone(), config: p.config.clone() }
}

/// Valid workflow files with their plans, and invalid ones with their rendered errors.
type Loaded = (Vec<(PathBuf, Arc<Plan>)>, Vec<(PathBuf, String)>);

/// A workflow file, its name when it read as a workflow but did not plan (a plan holds its own),
/// and its plan or error.
type ReadFile = (PathBuf, Option<String>, std::result::Result<Arc<Plan>, String>);

/// Every workflow file of the project: the valid ones planned, the others with their errors.
/// Each file is read and parsed once, and planned as soon as it is read: its parse is freed
/// before the next file's, so the plans kept lie together in memory. (Parsing every file before
/// planning any left the plans of a 10,000-workflow project scattered among freed parses, which
/// the daemon then held all night.) Names are compared after; only files sharing one are read
/// again, for the error.
pub(crate) fn load_all(project: &Project) -> Result<Loaded> {
    let dir = project.workflows_dir();
    let files = if dir.is_dir() { workflow_files(&dir)? } else { Vec::new() };
    let mut loaded: Vec<ReadFile> = Vec::with_capacity(files.len());
    for f in files {
        let (name, planned) = match crate::spec::load(&f) {
            Ok(spec) => {
                let name = spec.spec.name.clone();
                match project.plan_spec(spec) {
                    // The plan holds the name: the copy goes.
                    Ok(p) => (None, Ok(Arc::new(p))),
                    Err(d) => (Some(name), Err(d.to_string())),
                }
            }
            Err(d) => (None, Err(d.to_string())),
        };
        loaded.push((f, name, planned));
    }
    fn name_of((_, name, planned): &ReadFile) -> Option<&str> {
        planned.as_ref().map(|p| p.name.as_str()).ok().or(name.as_deref())
    }
    // A name two files share runs neither: which one was meant is for a person to say.
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for n in loaded.iter().filter_map(name_of) {
        *uses.entry(n).or_default() += 1;
    }
    let shared: Vec<PathBuf> = loaded.iter().filter(|l| name_of(l).is_some_and(|n| uses[n] > 1)).map(|(f, _, _)| f.clone()).collect();
    let dups: HashMap<PathBuf, crate::spec::Diagnostic> = super::names::clashes(&shared).into_iter().collect();
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for (f, _, planned) in loaded {
        if let Some(d) = dups.get(&f) {
            bad.push((f, format!("{d}\n")));
            continue;
        }
        match planned {
            Ok(p) => good.push((f, p)),
            Err(msg) => bad.push((f, msg)),
        }
    }
    Ok((good, bad))
}

fn retention_rules(project: &Project, plans: &Plans) -> (Retention, HashMap<String, Retention>) {
    let default = Retention { days: project.config.retention_days, runs: project.config.retention_runs };
    let rules = plans
        .read()
        .unwrap()
        .iter()
        .filter_map(|(name, p)| {
            let r = p.schedule.as_ref()?.retention?;
            Some((name.clone(), Retention { days: r.days, runs: r.runs }))
        })
        .collect();
    (default, rules)
}

async fn prune_now(project: &Project, store: &Store, plans: &Plans) -> Result<crate::store::PruneReport> {
    let (default, rules) = retention_rules(project, plans);
    let arts = project.config.path(&project.dir, &project.config.artifacts_dir);
    let db = sqlite_file(&project.database_url());
    Ok(store.prune(default, &rules, &arts, db.as_deref()).await?)
}

/// The scheduler's catalog of this project's workflow files.
fn catalog_of(project: &Project, store: &Store) -> Catalog {
    let planner: catalog::PlanFile = {
        let project = clone_project(project);
        Arc::new(move |f: &Path| match project.plan_file_unique(f) {
            Ok(p) => Ok(p),
            Err(CliError::Invalid(m)) => Err(m),
            Err(CliError::Other(e)) => Err(format!("{e:#}")),
        })
    };
    Catalog::new(store.clone(), project.workflows_dir(), planner)
}

/// `cxflow serve`.
pub async fn serve(project: &Project) -> Result<i32> {
    let url = project.database_url();
    let _lock = match sqlite_file(&url) {
        Some(db) => Some(lock::acquire(&db).map_err(|e| match e {
            LockError::Held { .. } => CliError::Invalid(format!("error: {e}")),
            LockError::Io { .. } => CliError::Other(e.into()),
        })?),
        None => None,
    };
    let store = project.store().await?;
    // On PostgreSQL any number of serve nodes share the run log, each fire claimed by one of
    // them (`store::claim_fire`). They hold the database's scheduler lock shared, as long as
    // `_pg_lock`, so that `cxflow migrate-log` (which takes it exclusively) cannot fill a run
    // log a scheduler uses.
    let _pg_lock = match store.try_share_scheduler().await? {
        Some(SchedulerLock::Busy(holder)) => {
            return Err(CliError::Invalid(format!(
                "error: `cxflow migrate-log` is copying into the run log `{}` ({holder}); start `cxflow serve` once it is done",
                redact_url(&url)
            )))
        }
        held => held,
    };
    // Checked when the project opened (`cxflow validate` reports them too).
    let grace = project.config.shutdown_grace;
    let prune_schedule = project.config.prune_cron.clone();

    // Runs a crash left `running` are interrupted first; some are resumed below.
    let orphans = store.interrupt_orphans().await?;
    let last = store.last_fire_times().await?;
    let (good, bad) = load_all(project)?;
    for (f, msg) in &bad {
        catalog::report_invalid(&store, f, msg, false).await;
    }
    let mut catalog = catalog_of(project, &store);
    // The dashboard shows the same plans: planned once, held once.
    let shown = good.clone();
    let initial = catalog.add_initial(good, &last).await;
    let plans = catalog.plans();
    let resumes = to_resume(&store, &plans, &orphans).await;

    // Hot reload: file changes become Upsert/Remove messages for the loop.
    let dir = project.workflows_dir();
    std::fs::create_dir_all(&dir).ok();
    let (watch, mut batches) = watch_folder(&dir).map_err(|e| CliError::Other(anyhow::anyhow!("cannot watch `{}`: {e}", dir.display())))?;
    let (ctl_tx, ctl_rx) = mpsc::channel(64);
    let shutdown = signals::on_shutdown();
    if store.backend() == crate::store::Backend::Postgres {
        // Other nodes share this run log: a node that dies leaves its runs `running` until its
        // lease lapses; then whichever node sweeps first marks them interrupted (compare-and-set,
        // so one does) and resumes those whose workflow says `resume: auto`.
        let (store, plans, tx, stop) = (store.clone(), plans.clone(), ctl_tx.clone(), shutdown.clone());
        tokio::spawn(async move {
            let every = (crate::store::lease() / 3).max(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                let ids = match store.interrupt_orphans().await {
                    Ok(ids) => ids,
                    Err(e) => {
                        tracing::warn!("cannot look for runs of stopped nodes: {e}");
                        continue;
                    }
                };
                for (workflow, run_id) in to_resume(&store, &plans, &ids).await {
                    if tx.send(crate::scheduler::runner::Control::Resume { workflow, run_id }).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
    {
        tokio::spawn(async move {
            let _watch = watch;
            while let Some(batch) = batches.recv().await {
                for path in batch {
                    let Some(msgs) = catalog.reload(&path).await else { continue };
                    for m in msgs {
                        if ctl_tx.send(m).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }

    let prune: PruneFn = {
        let project = clone_project(project);
        let (store, plans) = (store.clone(), plans.clone());
        let project = Arc::new(project);
        Arc::new(move || {
            let (project, store, plans) = (project.clone(), store.clone(), plans.clone());
            async move {
                match prune_now(&project, &store, &plans).await {
                    Ok(r) => tracing::info!(
                        runs = r.runs_deleted,
                        files = r.files_deleted,
                        bytes_before = r.bytes_before,
                        bytes_after = r.bytes_after,
                        "retention applied"
                    ),
                    Err(e) => tracing::error!("retention failed: {e:?}"),
                }
            }
            .boxed()
        })
    };
    let live = crate::metrics::Live::new();
    let launcher = Arc::new(EngineLauncher {
        store: store.clone(),
        config: project.config.clone(),
        plans: plans.clone(),
        grace,
        http: reqwest::Client::new(),
        prune,
        live: Some(live.clone()),
    });
    let config = RunnerConfig {
        limits: Limits { max_concurrent_runs: project.config.max_concurrent_runs },
        // The engine lets in-flight items finish within `grace` and then marks the run; the loop
        // waits a little longer before it gives up on a run.
        shutdown_deadline: grace + Duration::from_secs(5),
        prune_schedule: Some(prune_schedule),
        metrics: Some(live.clone()),
        ..RunnerConfig::default()
    };
    // With `spread_items`, this node also works on the items of runs other nodes started.
    let items = project.config.spread_items.then(|| {
        let p = plans.clone();
        let lookup: crate::engine::worker::PlanLookup = Arc::new(move |name: &str| p.read().unwrap().get(name).cloned());
        let log: Arc<dyn crate::engine::RunLog> = Arc::new(store.clone());
        tokio::spawn(crate::engine::worker::work(log, project.config.clone(), lookup, shutdown.clone(), grace))
    });
    let web = super::ui::start_web(project, &store, Some((plans.clone(), live, shown)), shutdown.clone()).await?;
    tracing::info!(workflows = initial.len(), invalid = bad.len(), resumed = resumes.len(), run_log = %redact_url(&url), "cxflow serve started");
    // Loading every file was the biggest burst this process will see.
    crate::process::trim_soon();
    run_loop(config, initial, resumes, Arc::new(SystemClock), launcher, ctl_rx, shutdown).await;
    if let Some(items) = items {
        let _ = items.await;
    }
    if let Some(web) = web {
        // Runs started from the dashboard end `interrupted`, resumable, before the process does.
        web.control.wait_for_runs().await;
    }
    tracing::info!("cxflow serve stopped");
    Ok(exit::OK)
}

/// Logs runs marked interrupted because their process was gone, and returns those to resume:
/// the ones whose workflow says `resume: auto`.
async fn to_resume(store: &Store, plans: &Plans, orphans: &[i64]) -> Vec<(String, i64)> {
    let mut resumes = Vec::new();
    for id in orphans {
        let Ok(row) = store.run(*id).await else { continue };
        let auto =
            plans.read().unwrap().get(&row.workflow).and_then(|p| p.schedule.as_ref()).is_some_and(|s| s.compiled.resume == Resume::Auto);
        tracing::warn!(run_id = id, workflow = %row.workflow, resumed = auto, "run left running by a crash marked interrupted");
        if auto {
            resumes.push((row.workflow, *id));
        }
    }
    resumes
}

/// `cxflow next [--count N]`: upcoming fire times of every scheduled workflow.
pub async fn next(project: &Project, count: usize, now: DateTime<Utc>) -> Result<i32> {
    let (good, bad) = load_all(project)?;
    let pauses = paused(project).await?;
    for (_, msg) in &bad {
        errprint!("{msg}");
        if !msg.ends_with('\n') {
            errln!();
        }
    }
    let mut rows = Vec::new();
    for (_, plan) in &good {
        let Some(s) = &plan.schedule else { continue };
        let w = &s.compiled;
        if let Some(p) = pauses.iter().find(|p| p.workflow == plan.name) {
            // Its fires would only be recorded as skipped: show why instead of times.
            rows.push((plan.name.clone(), "-".into(), "-".into(), format!("{} (`cxflow unpause {}`)", p.skip_reason(), plan.name)));
            continue;
        }
        for t in w.cron.iter_after(now, w.tz).take(count) {
            let zoned = t.with_timezone(&w.tz);
            let note = skip_reason(zoned.date_naive(), w.business_days, w.calendar.as_deref())
                .map(|r| format!("skipped: {r}"))
                .unwrap_or_default();
            rows.push((
                plan.name.clone(),
                format!("{} ({})", zoned.format("%a %Y-%m-%d %H:%M:%S %Z"), w.tz.name()),
                t.with_timezone(&Local).format("%a %Y-%m-%d %H:%M:%S %Z").to_string(),
                note,
            ));
        }
    }
    if rows.is_empty() {
        outln!("no scheduled workflows in `{}` (add a `schedule:` block)", project.workflows_dir().display());
    } else {
        let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(8).max(8);
        let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(9).max(9);
        let w2 = rows.iter().map(|r| r.2.len()).max().unwrap_or(10).max(10);
        outln!("{:<w0$}  {:<w1$}  {:<w2$}", "WORKFLOW", "ZONE TIME", "LOCAL TIME");
        for (a, b, c, d) in rows {
            outln!("{a:<w0$}  {b:<w1$}  {c:<w2$}  {d}");
        }
    }
    Ok(if bad.is_empty() { exit::OK } else { exit::INVALID })
}

/// Paused workflows, from the run log if there is one (`cxflow next` does not create a SQLite
/// file; a PostgreSQL database is there to ask).
async fn paused(project: &Project) -> Result<Vec<crate::store::Pause>> {
    let url = project.database_url();
    match sqlite_file(&url) {
        Some(f) if f.exists() => Ok(project.store().await?.paused_schedules().await?),
        None if crate::store::is_postgres(&url) => Ok(project.store().await?.paused_schedules().await?),
        _ => Ok(Vec::new()),
    }
}

/// `cxflow prune`: apply retention now.
pub async fn prune(project: &Project) -> Result<i32> {
    let store = project.store().await?;
    let (good, _bad) = load_all(project)?;
    let plans: Plans = Arc::default();
    for (_, p) in good {
        plans.write().unwrap().insert(p.name.clone(), p);
    }
    let (default, rules) = retention_rules(project, &plans);
    if !default.is_set() && rules.is_empty() {
        let only = if store.backend() == crate::store::Backend::Sqlite { "; reclaiming free space only" } else { "" };
        outln!(
            "no retention configured (set `retention_days` / `retention_runs` in cxflow.yaml or `schedule.retention` in a workflow){only}"
        );
    }
    let r = prune_now(project, &store, &plans).await?;
    match store.backend() {
        crate::store::Backend::Sqlite => outln!(
            "pruned {} run(s), {} artifact file(s); run log {} → {} bytes",
            r.runs_deleted,
            r.files_deleted,
            r.bytes_before,
            r.bytes_after
        ),
        // PostgreSQL gives the space back to itself (autovacuum), not to the disk at once.
        crate::store::Backend::Postgres => outln!("pruned {} run(s), {} artifact file(s)", r.runs_deleted, r.files_deleted),
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::runner::Control;

    const GOOD: &str = "name: w\nschedule:\n  cron: \"30 2 * * *\"\nsteps:\n  - id: t\n    read_csv: data/t.csv\n";

    #[tokio::test]
    async fn reload_keeps_the_last_good_version_of_a_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("workflows")).unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/t.csv"), "id\n").unwrap();
        let project = Project::open(dir.path()).unwrap();
        let store = project.store().await.unwrap();
        let mut catalog = catalog_of(&project, &store);
        let plans = catalog.plans();
        let file = dir.path().join("workflows/w.yaml");

        std::fs::write(&file, GOOD).unwrap();
        let msgs = catalog.reload(&file).await.unwrap();
        assert!(matches!(&msgs[..], [Control::Upsert { schedule, .. }] if schedule.cron.source() == "30 2 * * *"));

        // Broken edit: nothing changes for the loop; the old plan stays; the run log says why.
        std::fs::write(&file, GOOD.replace("30 2 * * *", "30 2 * *")).unwrap();
        assert!(catalog.reload(&file).await.is_none());
        assert_eq!(plans.read().unwrap()["w"].schedule.as_ref().unwrap().cron, "30 2 * * *");
        let rows = store.runs(&crate::store::RunFilter { workflow: Some("w".into()), ..Default::default() }).await.unwrap();
        let err = rows[0].error.clone().unwrap();
        assert!(err.contains("failed validation; the last good version keeps running"), "{err}");
        assert!(err.contains("cron expression `30 2 * *` has 4 fields"), "{err}");

        // Fixed: the new schedule replaces the old one.
        std::fs::write(&file, GOOD.replace("30 2 * * *", "0 4 * * *")).unwrap();
        let msgs = catalog.reload(&file).await.unwrap();
        assert!(matches!(&msgs[..], [Control::Upsert { schedule, .. }] if schedule.cron.source() == "0 4 * * *"));

        // Deleted: unscheduled.
        std::fs::remove_file(&file).unwrap();
        let msgs = catalog.reload(&file).await.unwrap();
        assert!(matches!(&msgs[..], [Control::Remove { name }] if name == "w"));
        assert!(plans.read().unwrap().is_empty());
    }

    #[test]
    fn sqlite_file_from_url() {
        assert_eq!(sqlite_file("sqlite://./x.sqlite?mode=rwc"), Some(PathBuf::from("./x.sqlite")));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://h/db"), None);
    }
}
