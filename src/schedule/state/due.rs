//! What the scheduler does with fire times that came due: missed ones through `catch_up`, each
//! through the calendar and overlap policy into the queue, and from the queue into free slots.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

use super::{Action, Pending, Running, Scheduler, MAX_MISSED_WALK, MAX_PENDING_PER_WORKFLOW};
use crate::schedule::calendar::skip_reason;
use crate::schedule::policy::{CatchUp, Overlap, WorkflowSchedule};

impl Scheduler {
    /// Walks `name`'s fire times up to `now`, splitting on-time fires from missed ones.
    pub(super) fn collect_due(&mut self, name: &str, now: DateTime<Utc>, actions: &mut Vec<Action>) {
        let grace = self.grace;
        let Some(entry) = self.entries.get_mut(name) else { return };
        let key = entry.next.and_then(|old| self.fires.remove(&(old, entry.seq)));
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
        // Worked out from `entry.next`: the walk's first step.
        let mut ahead = entry.following.take();
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
            entry.next = ahead.take().unwrap_or_else(|| sched.cron.next_after(n, sched.tz));
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
        // Not due after all (nothing walked): what was worked out still holds.
        entry.following = ahead;
        if let Some(next) = entry.next {
            self.fires.insert((next, entry.seq), key.unwrap_or_else(|| name.to_string()));
        }
        self.unprepared.push(name.to_string());
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
        let waiting = self.waiting.get(&sched.name).copied().unwrap_or_default();
        // Catch-up fires always queue behind each other: `catch_up: all` asks for each of them.
        // They are the workflow's own backlog, not an overlapping run: an on-time fire queues
        // behind them, and only another on-time run (running or waiting) makes it skip, so the
        // newest fire is never the one lost after a restart.
        if sched.overlap == Overlap::Skip && !catch_up {
            // The first started, as the run list is in ticket order.
            if let Some(r) = self.runs_of(&sched.name).find(|r| !r.catch_up) {
                actions.push(skip(format!("the run for {} is still running (overlap: skip)", r.fire.to_rfc3339())));
                return;
            }
            if waiting.on_time > 0 {
                actions.push(skip("an earlier fire is still waiting to start (overlap: skip)".into()));
                return;
            }
        }
        if waiting.all >= MAX_PENDING_PER_WORKFLOW {
            actions.push(skip(format!("{} runs of this workflow are already waiting to start", waiting.all)));
            return;
        }
        let at = self.pending.partition_point(|p| p.fire <= fire);
        self.pending.insert(at, Pending { workflow: sched.name.clone(), fire, catch_up });
        let w = self.waiting.entry(sched.name.clone()).or_default();
        w.all += 1;
        w.on_time += usize::from(!catch_up);
    }

    pub(super) fn start_pending(&mut self, now: DateTime<Utc>, actions: &mut Vec<Action>) {
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
                // Only `remove` forgets a workflow, and it empties its queue: kept for safety.
                if let Some(p) = self.pending.remove(i) {
                    self.unwait(&p);
                }
                continue;
            };
            let wf_limit = match entry.sched.overlap {
                Overlap::Allow => entry.sched.concurrency.unwrap_or(usize::MAX),
                Overlap::Skip | Overlap::Queue => 1,
            };
            let busy = self.runs_of.get(&p.workflow).map_or(0, |s| s.len());
            if busy >= wf_limit {
                i += 1;
                continue;
            }
            let p = self.pending.remove(i).expect("index checked");
            self.unwait(&p);
            let deadline = self.deadline_for(&p.workflow, now);
            let ticket = self.new_ticket();
            let run = Running { workflow: p.workflow.clone(), fire: p.fire, started: now, deadline, stopped: false, catch_up: p.catch_up };
            self.add_running(ticket, run);
            actions.push(Action::Start { ticket, workflow: p.workflow, fire: p.fire, catch_up: p.catch_up });
        }
    }

    fn unwait(&mut self, p: &Pending) {
        if let Some(w) = self.waiting.get_mut(&p.workflow) {
            w.all -= 1;
            w.on_time -= usize::from(!p.catch_up);
            if w.all == 0 {
                self.waiting.remove(&p.workflow);
            }
        }
    }
}
