//! The scheduler loop: sleeps until the next fire time or max_runtime deadline (no polling),
//! starts runs through a `Launcher`, and shuts down gracefully.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::clock::Clock;
use super::cron_expr::CronSchedule;
use super::policy::WorkflowSchedule;
use super::state::{Action, Limits, Scheduler, Ticket};

/// Why the scheduler stopped a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// Ran past `max_runtime`: the run is marked failed with this message.
    MaxRuntime(String),
    /// The scheduler is shutting down: unfinished items are marked interrupted.
    Shutdown,
}

/// One run to carry out.
#[derive(Debug, Clone)]
pub struct StartRequest {
    pub workflow: String,
    pub fire: DateTime<Utc>,
    pub catch_up: bool,
    /// Resume this interrupted run instead of starting a new one.
    pub resume_run: Option<i64>,
    /// Cancelled when the run must stop; `stop_reason` says why.
    pub stop: CancellationToken,
    pub stop_reason: Arc<Mutex<Option<StopReason>>>,
    /// Set by the launcher once the run has an id in the run log.
    pub run_id: Arc<OnceLock<i64>>,
}

impl StartRequest {
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop_reason.lock().unwrap().clone()
    }
}

/// Final state of a run, as the launcher reports it: the engine's own.
pub use crate::engine::RunStatus;

/// What the scheduler drives. The real one starts engine runs and writes the run log; tests use
/// fakes.
pub trait Launcher: Send + Sync + 'static {
    /// Carries out one run to its end (including recording its outcome and any `on_failure`
    /// notification).
    fn run(&self, req: StartRequest) -> BoxFuture<'static, RunStatus>;
    /// Records a fire that did not run, with the reason.
    fn skipped(&self, workflow: &str, fire: DateTime<Utc>, reason: &str) -> BoxFuture<'static, ()>;
    /// A run did not end within the shutdown deadline and was abandoned: mark it interrupted.
    fn abandoned(&self, req: &StartRequest) -> BoxFuture<'static, ()>;
    /// Applies retention (nightly).
    fn prune(&self) -> BoxFuture<'static, ()>;
}

/// Changes to the set of workflows while the loop runs (hot reload).
#[derive(Debug)]
pub enum Control {
    Upsert {
        schedule: WorkflowSchedule,
        last_fire: Option<DateTime<Utc>>,
    },
    Remove {
        name: String,
    },
    /// Resume this interrupted run of `workflow` (one another node left behind, found by the
    /// orphan sweep), counted against the limits as the runs resumed at startup are.
    Resume {
        workflow: String,
        run_id: i64,
    },
}

pub struct RunnerConfig {
    pub limits: Limits,
    /// How long in-flight runs get to finish after SIGTERM before they are abandoned.
    pub shutdown_deadline: Duration,
    /// When retention runs (in UTC); None disables nightly pruning.
    pub prune_schedule: Option<CronSchedule>,
    pub grace: chrono::Duration,
    /// Where `/metrics` reads this scheduler's figures (up, fire lateness, runs ended).
    pub metrics: Option<crate::metrics::Live>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            limits: Limits::default(),
            shutdown_deadline: Duration::from_secs(30),
            prune_schedule: CronSchedule::parse("17 3 * * *").ok(),
            grace: super::state::DEFAULT_GRACE,
            metrics: None,
        }
    }
}

/// Runs until `shutdown` is cancelled, then drains. Returns the scheduler for inspection.
pub async fn run_loop(
    config: RunnerConfig,
    initial: Vec<(WorkflowSchedule, Option<DateTime<Utc>>)>,
    resumes: Vec<(String, i64)>,
    clock: Arc<dyn Clock>,
    launcher: Arc<dyn Launcher>,
    mut control: mpsc::Receiver<Control>,
    shutdown: CancellationToken,
) -> Scheduler {
    let mut sched = Scheduler::new(config.limits).with_grace(config.grace);
    let now = clock.now();
    for (wf, last) in initial {
        sched.upsert(wf, last, now);
    }
    let mut tasks: JoinSet<(Ticket, RunStatus)> = JoinSet::new();
    let mut live: HashMap<Ticket, StartRequest> = HashMap::new();
    let mut side: JoinSet<()> = JoinSet::new();
    let mut next_prune = config.prune_schedule.as_ref().and_then(|p| p.next_after(now, chrono_tz::UTC));
    let metrics = config.metrics.clone();
    if let Some(m) = &metrics {
        m.set_scheduler_up(true);
    }
    let ended = |req: Option<StartRequest>, status: RunStatus| {
        if let (Some(m), Some(req)) = (&metrics, req) {
            m.run_ended(&req.workflow, status.as_str());
        }
    };

    let spawn_run =
        |tasks: &mut JoinSet<(Ticket, RunStatus)>, live: &mut HashMap<Ticket, StartRequest>, ticket: Ticket, req: StartRequest| {
            // A fire is late by the time it waited here: for a slot, or for the loop to wake.
            // Runs resumed at startup are not fires.
            if let (Some(m), None) = (&metrics, req.resume_run) {
                m.fire_started(&req.workflow, req.catch_up, (clock.now() - req.fire).to_std().unwrap_or_default());
            }
            let fut = launcher.run(req.clone());
            live.insert(ticket, req);
            tasks.spawn(async move { (ticket, fut.await) });
        };

    for (workflow, run_id) in resumes {
        let ticket = sched.adopt(&workflow, now, now);
        let req = new_request(&workflow, now, false, Some(run_id));
        spawn_run(&mut tasks, &mut live, ticket, req);
    }

    loop {
        let now = clock.now();
        let actions = sched.tick(now);
        execute(actions, &launcher, &mut tasks, &mut live, &mut side, &spawn_run);
        sched.prepare();
        if let Some(t) = next_prune.filter(|t| *t <= now) {
            side.spawn(launcher.prune());
            next_prune = config.prune_schedule.as_ref().and_then(|p| p.next_after(t.max(now), chrono_tz::UTC));
        }
        let wake = [sched.next_wake(), next_prune].into_iter().flatten().min();
        let sleep: Pin<Box<dyn Future<Output = ()> + Send>> = match wake {
            Some(t) => clock.sleep_until(t),
            None => Box::pin(std::future::pending()),
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = sleep => {}
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok((ticket, status)) = done {
                    ended(live.remove(&ticket), status);
                    let actions = sched.finished(ticket, clock.now());
                    execute(actions, &launcher, &mut tasks, &mut live, &mut side, &spawn_run);
                }
            }
            Some(msg) = control.recv() => {
                let now = clock.now();
                match msg {
                    Control::Upsert { schedule, last_fire } => sched.upsert(schedule, last_fire, now),
                    Control::Remove { name } => {
                        let actions = sched.remove(&name);
                        execute(actions, &launcher, &mut tasks, &mut live, &mut side, &spawn_run);
                    }
                    Control::Resume { workflow, run_id } => {
                        tracing::info!(%workflow, run_id, "resuming a run another node left interrupted");
                        let ticket = sched.adopt(&workflow, now, now);
                        spawn_run(&mut tasks, &mut live, ticket, new_request(&workflow, now, false, Some(run_id)));
                    }
                }
            }
            Some(_) = side.join_next(), if !side.is_empty() => {}
        }
    }

    // Graceful shutdown: start nothing new, let runs finish their in-flight items.
    let dropped = sched.begin_shutdown();
    execute(dropped, &launcher, &mut tasks, &mut live, &mut side, &spawn_run);
    for req in live.values() {
        *req.stop_reason.lock().unwrap() = Some(StopReason::Shutdown);
        req.stop.cancel();
    }
    let deadline = tokio::time::sleep(config.shutdown_deadline);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            done = tasks.join_next() => match done {
                Some(Ok((ticket, status))) => ended(live.remove(&ticket), status),
                Some(Err(_)) => {}
                None => break,
            },
        }
    }
    tasks.abort_all();
    for req in live.values() {
        launcher.abandoned(req).await;
    }
    // Skipped-run records and pruning still in progress get the same deadline.
    let _ = tokio::time::timeout(config.shutdown_deadline, async { while side.join_next().await.is_some() {} }).await;
    if let Some(m) = &metrics {
        m.set_scheduler_up(false);
    }
    sched
}

fn new_request(workflow: &str, fire: DateTime<Utc>, catch_up: bool, resume_run: Option<i64>) -> StartRequest {
    StartRequest {
        workflow: workflow.to_string(),
        fire,
        catch_up,
        resume_run,
        stop: CancellationToken::new(),
        stop_reason: Arc::default(),
        run_id: Arc::default(),
    }
}

fn execute<F>(
    actions: Vec<Action>,
    launcher: &Arc<dyn Launcher>,
    tasks: &mut JoinSet<(Ticket, RunStatus)>,
    live: &mut HashMap<Ticket, StartRequest>,
    side: &mut JoinSet<()>,
    spawn_run: &F,
) where
    F: Fn(&mut JoinSet<(Ticket, RunStatus)>, &mut HashMap<Ticket, StartRequest>, Ticket, StartRequest),
{
    for a in actions {
        match a {
            Action::Start { ticket, workflow, fire, catch_up } => {
                tracing::info!(workflow = %workflow, fire = %fire, catch_up, "starting scheduled run");
                spawn_run(tasks, live, ticket, new_request(&workflow, fire, catch_up, None));
            }
            Action::Skip { workflow, fire, reason } => {
                tracing::info!(workflow = %workflow, fire = %fire, %reason, "skipped scheduled run");
                side.spawn(launcher.skipped(&workflow, fire, &reason));
            }
            Action::Stop { ticket, workflow, reason } => {
                tracing::warn!(workflow = %workflow, %reason, "stopping run");
                if let Some(req) = live.get(&ticket) {
                    *req.stop_reason.lock().unwrap() = Some(StopReason::MaxRuntime(reason));
                    req.stop.cancel();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
