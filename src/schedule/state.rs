//! The scheduler's decisions, free of I/O and of real time: given the time, which runs start,
//! which fires are skipped (and why), which runs are stopped. The async loop (`runner`) feeds it
//! the clock and run completions and carries out its actions; tests drive it with virtual time.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;

use super::policy::WorkflowSchedule;

pub type Ticket = u64;

/// A fire more than this late counts as missed (downtime) and goes through `catch_up`.
pub const DEFAULT_GRACE: chrono::Duration = chrono::Duration::seconds(60);

/// Most fires of one workflow waiting for a slot; more are skipped so a stuck workflow cannot
/// grow the queue without bound.
const MAX_PENDING_PER_WORKFLOW: usize = 100;

/// Fire times walked in one tick for one workflow before giving up on listing missed ones
/// (an every-second job down for a month).
const MAX_MISSED_WALK: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a run of `workflow` for fire time `fire` (`catch_up`: a fire missed while down).
    Start { ticket: Ticket, workflow: String, fire: DateTime<Utc>, catch_up: bool },
    /// Log a skipped run for this fire, with the reason.
    Skip { workflow: String, fire: DateTime<Utc>, reason: String },
    /// Stop this run; it is to be marked failed with `reason`.
    Stop { ticket: Ticket, workflow: String, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Most runs at once over all workflows.
    pub max_concurrent_runs: Option<usize>,
}

struct Entry {
    sched: Arc<WorkflowSchedule>,
    /// Last fire time handled (run, skipped or missed).
    cursor: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
    /// Its key in `fires`, beside the time: comparing numbers, not names, keeps a burst of
    /// thousands of fires at the same second from chasing a pointer per comparison.
    seq: u64,
    /// The fire after `next`, worked out while the loop had nothing to do (`prepare`): a burst
    /// of fires then only reads it, and starts its runs that much sooner.
    following: Option<Option<DateTime<Utc>>>,
}

#[derive(Debug, Clone)]
pub struct Running {
    pub workflow: String,
    pub fire: DateTime<Utc>,
    pub started: DateTime<Utc>,
    pub deadline: Option<DateTime<Utc>>,
    pub stopped: bool,
    /// A fire missed while the scheduler was down: the workflow's backlog, not an overlap.
    pub catch_up: bool,
}

#[derive(Debug, Clone)]
struct Pending {
    workflow: String,
    fire: DateTime<Utc>,
    catch_up: bool,
}

/// A workflow's fires in `pending`: all of them, and those that are not catch-up fires.
#[derive(Debug, Clone, Copy, Default)]
struct Waiting {
    all: usize,
    on_time: usize,
}

pub struct Scheduler {
    entries: FxHashMap<String, Entry>,
    running: BTreeMap<Ticket, Running>,
    pending: VecDeque<Pending>,
    /// Indexes over the three above, so that a tick costs what is due, not what is known
    /// (10,000 workflows: every wake and every finished run used to walk all of them).
    /// Next fire time and `Entry::seq` of every workflow that has one, to its name.
    fires: BTreeMap<(DateTime<Utc>, u64), String>,
    deadlines: BTreeSet<(DateTime<Utc>, Ticket)>,
    runs_of: FxHashMap<String, BTreeSet<Ticket>>,
    waiting: FxHashMap<String, Waiting>,
    limits: Limits,
    grace: chrono::Duration,
    next_ticket: Ticket,
    next_seq: u64,
    /// Workflows whose `following` is not worked out yet.
    unprepared: Vec<String>,
    draining: bool,
}

impl Scheduler {
    pub fn new(limits: Limits) -> Self {
        Scheduler {
            entries: FxHashMap::default(),
            running: BTreeMap::new(),
            pending: VecDeque::new(),
            fires: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            runs_of: FxHashMap::default(),
            waiting: FxHashMap::default(),
            limits,
            grace: DEFAULT_GRACE,
            next_ticket: 1,
            next_seq: 0,
            unprepared: Vec::new(),
            draining: false,
        }
    }

    pub fn with_grace(mut self, grace: chrono::Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Adds a workflow, or replaces its definition. A new workflow's fires before `now` are
    /// missed ones only if `last_fire` (from the run log) says it ran before; a replaced one
    /// never catches up on fires its old definition did not have.
    pub fn upsert(&mut self, wf: WorkflowSchedule, last_fire: Option<DateTime<Utc>>, now: DateTime<Utc>) {
        let (cursor, seq) = match self.entries.get(&wf.name) {
            Some(old) => (old.cursor.max(now), old.seq),
            None => {
                self.next_seq += 1;
                (last_fire.map(|t| t.min(now)).unwrap_or(now), self.next_seq)
            }
        };
        let next = wf.cron.next_after(cursor, wf.tz);
        let name = wf.name.clone();
        self.drop_fire(&name);
        if let Some(t) = next {
            self.fires.insert((t, seq), name.clone());
        }
        self.unprepared.push(name.clone());
        self.entries.insert(name, Entry { sched: Arc::new(wf), cursor, next, seq, following: None });
    }

    /// Forgets a workflow: no more fires; its queued fires are dropped, its running runs go on.
    pub fn remove(&mut self, name: &str) -> Vec<Action> {
        self.drop_fire(name);
        self.entries.remove(name);
        self.waiting.remove(name);
        let mut actions = Vec::new();
        self.pending.retain(|p| {
            if p.workflow == name {
                actions.push(Action::Skip {
                    workflow: p.workflow.clone(),
                    fire: p.fire,
                    reason: "the workflow was removed before this queued run could start".into(),
                });
                false
            } else {
                true
            }
        });
        actions
    }

    pub fn workflow(&self, name: &str) -> Option<&WorkflowSchedule> {
        self.entries.get(name).map(|e| &*e.sched)
    }

    /// In no particular order.
    pub fn workflow_names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    pub fn next_fire(&self, name: &str) -> Option<DateTime<Utc>> {
        self.entries.get(name).and_then(|e| e.next)
    }

    /// Counts a run the scheduler did not start itself (a resumed one) against the limits.
    pub fn adopt(&mut self, workflow: &str, fire: DateTime<Utc>, now: DateTime<Utc>) -> Ticket {
        let deadline = self.deadline_for(workflow, now);
        let ticket = self.new_ticket();
        // Adopted at start-up: a run a crash left behind, which on-time fires must not overlap.
        self.add_running(ticket, Running { workflow: workflow.to_string(), fire, started: now, deadline, stopped: false, catch_up: false });
        ticket
    }

    pub fn running(&self) -> &BTreeMap<Ticket, Running> {
        &self.running
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// A run ended (however it ended): frees its slot, and may start waiting runs.
    pub fn finished(&mut self, ticket: Ticket, now: DateTime<Utc>) -> Vec<Action> {
        if let Some(r) = self.running.remove(&ticket) {
            if let Some(d) = r.deadline.filter(|_| !r.stopped) {
                self.deadlines.remove(&(d, ticket));
            }
            if let Some(set) = self.runs_of.get_mut(&r.workflow) {
                set.remove(&ticket);
                if set.is_empty() {
                    self.runs_of.remove(&r.workflow);
                }
            }
        }
        self.tick(now)
    }

    /// Stop starting runs: queued fires are dropped (logged as skipped).
    pub fn begin_shutdown(&mut self) -> Vec<Action> {
        self.draining = true;
        self.waiting.clear();
        self.pending
            .drain(..)
            .map(|p| Action::Skip {
                workflow: p.workflow,
                fire: p.fire,
                reason: "the scheduler shut down before this queued run could start".into(),
            })
            .collect()
    }

    /// When the loop must next look at the time: the earliest fire or max_runtime deadline.
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        let fires = if self.draining { None } else { self.fires.first_key_value().map(|((t, _), _)| *t) };
        let deadlines = self.deadlines.first().map(|(t, _)| *t);
        match (fires, deadlines) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Everything due at `now`.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Action> {
        let mut actions = Vec::new();
        // In ticket order, as the runs were started.
        let mut over: Vec<Ticket> = Vec::new();
        while let Some(&(d, t)) = self.deadlines.first() {
            if d > now {
                break;
            }
            self.deadlines.pop_first();
            over.push(t);
        }
        over.sort_unstable();
        for ticket in over {
            let Some(r) = self.running.get_mut(&ticket) else { continue };
            r.stopped = true;
            let limit = self
                .entries
                .get(&r.workflow)
                .and_then(|e| e.sched.max_runtime)
                .map(|d| humantime::format_duration(d).to_string())
                .unwrap_or_else(|| "its limit".into());
            actions.push(Action::Stop {
                ticket,
                workflow: r.workflow.clone(),
                reason: format!("run exceeded max_runtime of {limit} and was stopped"),
            });
        }
        if !self.draining {
            // In name order, as the workflows are listed.
            let mut names: Vec<String> = self.fires.iter().take_while(|((t, _), _)| *t <= now).map(|(_, n)| n.clone()).collect();
            names.sort_unstable();
            for name in names {
                self.collect_due(&name, now, &mut actions);
            }
        }
        self.start_pending(now, &mut actions);
        actions
    }

    /// Works out each workflow's fire after its next one, where not done yet. The loop calls it
    /// once what was due has started, before it sleeps: the cron walk (half of the work per
    /// fire) then happens between bursts, not while the fires of a burst wait for their turn.
    pub fn prepare(&mut self) {
        for name in std::mem::take(&mut self.unprepared) {
            if let Some(e) = self.entries.get_mut(&name) {
                if let (None, Some(next)) = (e.following, e.next) {
                    e.following = Some(e.sched.cron.next_after(next, e.sched.tz));
                }
            }
        }
    }

    /// Takes the next fire `entries` has for `name` out of `fires`.
    fn drop_fire(&mut self, name: &str) {
        if let Some(e) = self.entries.get(name) {
            if let Some(old) = e.next {
                self.fires.remove(&(old, e.seq));
            }
        }
    }

    fn add_running(&mut self, ticket: Ticket, run: Running) {
        if let Some(d) = run.deadline {
            self.deadlines.insert((d, ticket));
        }
        self.runs_of.entry(run.workflow.clone()).or_default().insert(ticket);
        self.running.insert(ticket, run);
    }

    fn runs_of(&self, workflow: &str) -> impl Iterator<Item = &Running> {
        self.runs_of.get(workflow).into_iter().flatten().filter_map(|t| self.running.get(t))
    }

    fn deadline_for(&self, workflow: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let max = self.entries.get(workflow)?.sched.max_runtime?;
        Some(now + chrono::Duration::from_std(max).ok()?)
    }

    fn new_ticket(&mut self) -> Ticket {
        let t = self.next_ticket;
        self.next_ticket += 1;
        t
    }
}

mod due;
#[cfg(test)]
mod equivalence;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
