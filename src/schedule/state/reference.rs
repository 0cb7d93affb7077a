//! The scheduler's state machine as it was before its indexes (c8a17aa): every tick walked all
//! workflows and every run. Kept, for tests only, as the reference the indexed one must match
//! action for action (`state::equivalence`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Action, Limits, Running, Ticket, DEFAULT_GRACE, MAX_MISSED_WALK, MAX_PENDING_PER_WORKFLOW};
use crate::schedule::calendar::skip_reason;
use crate::schedule::policy::{CatchUp, Overlap, WorkflowSchedule};

struct Entry {
    sched: Arc<WorkflowSchedule>,
    /// Last fire time handled (run, skipped or missed).
    cursor: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
struct Pending {
    workflow: String,
    fire: DateTime<Utc>,
    catch_up: bool,
}

pub(super) struct Reference {
    entries: BTreeMap<String, Entry>,
    running: BTreeMap<Ticket, Running>,
    pending: VecDeque<Pending>,
    limits: Limits,
    grace: chrono::Duration,
    next_ticket: Ticket,
    draining: bool,
}

impl Reference {
    pub(super) fn new(limits: Limits) -> Self {
        Reference {
            entries: BTreeMap::new(),
            running: BTreeMap::new(),
            pending: VecDeque::new(),
            limits,
            grace: DEFAULT_GRACE,
            next_ticket: 1,
            draining: false,
        }
    }

    pub(super) fn with_grace(mut self, grace: chrono::Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Adds a workflow, or replaces its definition. A new workflow's fires before `now` are
    /// missed ones only if `last_fire` (from the run log) says it ran before; a replaced one
    /// never catches up on fires its old definition did not have.
    pub(super) fn upsert(&mut self, wf: WorkflowSchedule, last_fire: Option<DateTime<Utc>>, now: DateTime<Utc>) {
        let cursor = match self.entries.get(&wf.name) {
            Some(old) => old.cursor.max(now),
            None => last_fire.map(|t| t.min(now)).unwrap_or(now),
        };
        let next = wf.cron.next_after(cursor, wf.tz);
        self.entries.insert(wf.name.clone(), Entry { sched: Arc::new(wf), cursor, next });
    }

    /// Forgets a workflow: no more fires; its queued fires are dropped, its running runs go on.
    pub(super) fn remove(&mut self, name: &str) -> Vec<Action> {
        self.entries.remove(name);
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

    pub(super) fn next_fire(&self, name: &str) -> Option<DateTime<Utc>> {
        self.entries.get(name).and_then(|e| e.next)
    }

    /// Counts a run the scheduler did not start itself (a resumed one) against the limits.
    pub(super) fn adopt(&mut self, workflow: &str, fire: DateTime<Utc>, now: DateTime<Utc>) -> Ticket {
        let deadline = self.deadline_for(workflow, now);
        let ticket = self.new_ticket();
        // Adopted at start-up: a run a crash left behind, which on-time fires must not overlap.
        self.running
            .insert(ticket, Running { workflow: workflow.to_string(), fire, started: now, deadline, stopped: false, catch_up: false });
        ticket
    }

    pub(super) fn running(&self) -> &BTreeMap<Ticket, Running> {
        &self.running
    }

    pub(super) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// A run ended (however it ended): frees its slot, and may start waiting runs.
    pub(super) fn finished(&mut self, ticket: Ticket, now: DateTime<Utc>) -> Vec<Action> {
        self.running.remove(&ticket);
        self.tick(now)
    }

    /// Stop starting runs: queued fires are dropped (logged as skipped).
    pub(super) fn begin_shutdown(&mut self) -> Vec<Action> {
        self.draining = true;
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
    pub(super) fn next_wake(&self) -> Option<DateTime<Utc>> {
        let fires = if self.draining { None } else { self.entries.values().filter_map(|e| e.next).min() };
        let deadlines = self.running.values().filter(|r| !r.stopped).filter_map(|r| r.deadline).min();
        match (fires, deadlines) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Everything due at `now`.
    pub(super) fn tick(&mut self, now: DateTime<Utc>) -> Vec<Action> {
        let mut actions = Vec::new();
        for (ticket, r) in self.running.iter_mut() {
            if !r.stopped && r.deadline.is_some_and(|d| d <= now) {
                r.stopped = true;
                let limit = self
                    .entries
                    .get(&r.workflow)
                    .and_then(|e| e.sched.max_runtime)
                    .map(|d| humantime::format_duration(d).to_string())
                    .unwrap_or_else(|| "its limit".into());
                actions.push(Action::Stop {
                    ticket: *ticket,
                    workflow: r.workflow.clone(),
                    reason: format!("run exceeded max_runtime of {limit} and was stopped"),
                });
            }
        }
        if !self.draining {
            let names: Vec<String> =
                self.entries.iter().filter(|(_, e)| e.next.is_some_and(|n| n <= now)).map(|(k, _)| k.clone()).collect();
            for name in names {
                self.collect_due(&name, now, &mut actions);
            }
        }
        self.start_pending(now, &mut actions);
        actions
    }

    /// Walks `name`'s fire times up to `now`, splitting on-time fires from missed ones.
    fn collect_due(&mut self, name: &str, now: DateTime<Utc>, actions: &mut Vec<Action>) {
        let grace = self.grace;
        let Some(entry) = self.entries.get_mut(name) else { return };
        let sched = entry.sched.clone();
        let keep = match sched.catch_up {
            CatchUp::None => 0,
            CatchUp::Latest => 1,
            CatchUp::All => sched.catch_up_limit,
        };
        let mut due = Vec::new();
        let mut kept: VecDeque<DateTime<Utc>> = VecDeque::new();
        let (mut missed, mut walked) = (0usize, 0usize);
        // Oldest missed, and the newest one that will not run (the summary record carries it so
        // a restart does not count the same fires again).
        let (mut first_missed, mut last_dropped) = (None, None);
        while let Some(n) = entry.next.filter(|n| *n <= now) {
            if now - n <= grace {
                due.push(n);
            } else {
                missed += 1;
                first_missed.get_or_insert(n);
                kept.push_back(n);
                if kept.len() > keep {
                    last_dropped = kept.pop_front();
                }
            }
            entry.cursor = n;
            entry.next = sched.cron.next_after(n, sched.tz);
            walked += 1;
            if walked == MAX_MISSED_WALK {
                // Too many to walk (an every-second job down for days): count the rest as one
                // stretch and go on from the start of the grace window.
                if let Some(k) = kept.pop_back() {
                    last_dropped = Some(k);
                }
                missed += 1;
                kept.clear();
                entry.cursor = now - grace;
                entry.next = sched.cron.next_after(entry.cursor, sched.tz);
            }
        }
        let dropped = missed.saturating_sub(kept.len());
        if dropped > 0 {
            let first = first_missed.unwrap_or(now);
            let last = last_dropped.unwrap_or(first);
            let policy = match sched.catch_up {
                CatchUp::None => "catch_up: none".to_string(),
                CatchUp::Latest => "catch_up: latest runs only the most recent".to_string(),
                CatchUp::All => format!("catch_up: all runs at most {}", sched.catch_up_limit),
            };
            let more = if walked >= MAX_MISSED_WALK { "more than " } else { "" };
            actions.push(Action::Skip {
                workflow: name.to_string(),
                fire: last,
                reason: format!(
                    "{more}{dropped} fire time(s) from {} to {} were missed while the scheduler was not running ({policy})",
                    first.to_rfc3339(),
                    last.to_rfc3339()
                ),
            });
        }
        for fire in kept {
            self.offer(&sched, fire, true, actions);
        }
        for fire in due {
            self.offer(&sched, fire, false, actions);
        }
    }

    /// One fire time of one workflow: skip it (calendar, overlap) or queue it for a slot.
    fn offer(&mut self, sched: &WorkflowSchedule, fire: DateTime<Utc>, catch_up: bool, actions: &mut Vec<Action>) {
        let skip = |reason: String| Action::Skip { workflow: sched.name.clone(), fire, reason };
        let local_date = fire.with_timezone(&sched.tz).date_naive();
        if let Some(reason) = skip_reason(local_date, sched.business_days, sched.calendar.as_deref()) {
            actions.push(skip(reason));
            return;
        }
        let waiting = self.pending.iter().filter(|p| p.workflow == sched.name).count();
        // Catch-up fires always queue behind each other: `catch_up: all` asks for each of them.
        // They are the workflow's own backlog, not an overlapping run: an on-time fire queues
        // behind them, and only another on-time run (running or waiting) makes it skip, so the
        // newest fire is never the one lost after a restart.
        if sched.overlap == Overlap::Skip && !catch_up {
            if let Some(r) = self.running.values().find(|r| r.workflow == sched.name && !r.catch_up) {
                actions.push(skip(format!("the run for {} is still running (overlap: skip)", r.fire.to_rfc3339())));
                return;
            }
            if self.pending.iter().any(|p| p.workflow == sched.name && !p.catch_up) {
                actions.push(skip("an earlier fire is still waiting to start (overlap: skip)".into()));
                return;
            }
        }
        if waiting >= MAX_PENDING_PER_WORKFLOW {
            actions.push(skip(format!("{waiting} runs of this workflow are already waiting to start")));
            return;
        }
        let at = self.pending.partition_point(|p| p.fire <= fire);
        self.pending.insert(at, Pending { workflow: sched.name.clone(), fire, catch_up });
    }

    fn start_pending(&mut self, now: DateTime<Utc>, actions: &mut Vec<Action>) {
        if self.draining {
            return;
        }
        let mut i = 0;
        while i < self.pending.len() {
            if self.limits.max_concurrent_runs.is_some_and(|m| self.running.len() >= m) {
                return;
            }
            let p = &self.pending[i];
            let Some(entry) = self.entries.get(&p.workflow) else {
                self.pending.remove(i);
                continue;
            };
            let wf_limit = match entry.sched.overlap {
                Overlap::Allow => entry.sched.concurrency.unwrap_or(usize::MAX),
                Overlap::Skip | Overlap::Queue => 1,
            };
            let busy = self.running.values().filter(|r| r.workflow == p.workflow).count();
            if busy >= wf_limit {
                i += 1;
                continue;
            }
            let p = self.pending.remove(i).expect("index checked");
            let deadline = self.deadline_for(&p.workflow, now);
            let ticket = self.new_ticket();
            let run = Running { workflow: p.workflow.clone(), fire: p.fire, started: now, deadline, stopped: false, catch_up: p.catch_up };
            self.running.insert(ticket, run);
            actions.push(Action::Start { ticket, workflow: p.workflow, fire: p.fire, catch_up: p.catch_up });
        }
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
