//! The indexed state machine against the reference (the one that walked everything), on
//! generated schedules, policies, limits, run lengths, reloads and removals: the same actions in
//! the same order, the same next wake, the same runs and queue, at every step.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use super::reference::Reference;
use super::{Action, Limits, Scheduler, Ticket};
use crate::schedule::calendar::Calendar;
use crate::schedule::cron_expr::CronSchedule;
use crate::schedule::policy::{CatchUp, Overlap, WorkflowSchedule};

/// A small deterministic generator (xorshift): the seed names the case when one fails.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn workflow(g: &mut Gen, name: &str, calendar: &std::sync::Arc<Calendar>) -> WorkflowSchedule {
    let cron = *g.pick(&["* * * * *", "*/2 * * * *", "*/5 * * * *", "0 * * * *", "30 * * * * *", "*/7 * * * *", "0 9 * * 1-5"]);
    let tz: Tz = *g.pick(&[chrono_tz::UTC, chrono_tz::Europe::London, chrono_tz::America::New_York, chrono_tz::Asia::Tokyo]);
    let mut w = WorkflowSchedule::new(name, CronSchedule::parse(cron).unwrap(), tz);
    w.overlap = *g.pick(&[Overlap::Skip, Overlap::Queue, Overlap::Allow]);
    w.concurrency = *g.pick(&[None, Some(1), Some(2)]);
    w.catch_up = *g.pick(&[CatchUp::None, CatchUp::Latest, CatchUp::All]);
    w.catch_up_limit = *g.pick(&[1, 3, 10]);
    w.max_runtime = *g.pick(&[None, Some(std::time::Duration::from_secs(90)), Some(std::time::Duration::from_secs(600))]);
    w.business_days = g.below(5) == 0;
    if g.below(4) == 0 {
        w.calendar = Some(calendar.clone());
    }
    w
}

/// Compares one generated case; returns how many starts, skips and stops it saw.
fn compare(seed: u64) -> [usize; 3] {
    let mut g = Gen(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let calendar = std::sync::Arc::new(
        Calendar::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/calendars/uk-bank-holidays.yaml"))).unwrap(),
    );
    let limits = Limits { max_concurrent_runs: *g.pick(&[None, Some(1), Some(3)]) };
    let grace = Duration::seconds(*g.pick(&[60, 600]));
    let (mut new, mut old) = (Scheduler::new(limits).with_grace(grace), Reference::new(limits).with_grace(grace));
    let mut now = utc("2025-03-28T22:50:00Z") + Duration::minutes(g.below(60 * 24 * 5) as i64);
    let names: Vec<String> = (0..8).map(|i| format!("w{i}")).collect();
    for name in &names {
        let w = workflow(&mut g, name, &calendar);
        let last = (g.below(3) == 0).then(|| now - Duration::minutes(g.below(600) as i64));
        new.upsert(w.clone(), last, now);
        old.upsert(w, last, now);
    }
    let (t, r) = (new.adopt("w0", now, now), old.adopt("w0", now, now));
    assert_eq!(t, r);
    let mut ends: Vec<(DateTime<Utc>, Ticket)> = vec![(now + Duration::minutes(3), t)];
    let check = |new: &Scheduler, old: &Reference, step: usize| {
        assert_eq!(new.next_wake(), old.next_wake(), "seed {seed}, step {step}: next wake");
        assert_eq!(new.pending_len(), old.pending_len(), "seed {seed}, step {step}: queue");
        let keys = |m: &std::collections::BTreeMap<Ticket, super::Running>| m.iter().map(|(t, r)| (*t, r.stopped)).collect::<Vec<_>>();
        assert_eq!(keys(new.running()), keys(old.running()), "seed {seed}, step {step}: runs");
        for n in &names {
            assert_eq!(new.next_fire(n), old.next_fire(n), "seed {seed}, step {step}: next fire of {n}");
        }
    };
    let mut seen = [0usize; 3];
    let mut follow = |actions: &[Action], now: DateTime<Utc>, g: &mut Gen, ends: &mut Vec<(DateTime<Utc>, Ticket)>| {
        for a in actions {
            seen[match a {
                Action::Start { .. } => 0,
                Action::Skip { .. } => 1,
                Action::Stop { .. } => 2,
            }] += 1;
            match a {
                Action::Start { ticket, .. } => ends.push((now + Duration::seconds(g.below(900) as i64), *ticket)),
                // A stopped run ends soon after.
                Action::Stop { ticket, .. } => ends.push((now + Duration::seconds(g.below(5) as i64), *ticket)),
                Action::Skip { .. } => {}
            }
        }
    };
    for step in 0..400 {
        match g.below(20) {
            // A reload: a workflow changes its definition, or comes back after a removal.
            0 => {
                let name = g.pick(&names).clone();
                let w = workflow(&mut g, &name, &calendar);
                new.upsert(w.clone(), None, now);
                old.upsert(w, None, now);
            }
            1 => {
                let name = g.pick(&names).clone();
                let (a, b) = (new.remove(&name), old.remove(&name));
                assert_eq!(a, b, "seed {seed}, step {step}: remove {name}");
            }
            _ => {}
        }
        // The loop wakes at the next wake or at the next run's end, whichever is first; sometimes
        // late (a busy machine, a scheduler that was down).
        ends.sort();
        let wake = [new.next_wake(), ends.first().map(|e| e.0)].into_iter().flatten().min();
        let late = if g.below(10) == 0 { Duration::minutes(g.below(120) as i64) } else { Duration::zero() };
        now = wake.map_or(now + Duration::minutes(1), |w| w.max(now)) + late;
        let mut actions = (new.tick(now), old.tick(now));
        assert_eq!(actions.0, actions.1, "seed {seed}, step {step}: tick at {now}");
        follow(&actions.0, now, &mut g, &mut ends);
        while let Some(&(_, ticket)) = ends.first().filter(|e| e.0 <= now) {
            ends.remove(0);
            actions = (new.finished(ticket, now), old.finished(ticket, now));
            assert_eq!(actions.0, actions.1, "seed {seed}, step {step}: run {ticket} finished at {now}");
            follow(&actions.0, now, &mut g, &mut ends);
        }
        // The loop works out the following fires before it sleeps; sometimes it had no time
        // to (a fire came due while it ran): both paths must agree with the reference.
        if g.below(3) != 0 {
            new.prepare();
        }
        check(&new, &old, step);
    }
    assert_eq!(new.begin_shutdown(), old.begin_shutdown(), "seed {seed}: shutdown");
    check(&new, &old, usize::MAX);
    seen
}

#[test]
fn matches_the_reference_on_generated_schedules() {
    let mut seen = [0usize; 3];
    for seed in 1..=200 {
        let s = compare(seed);
        (0..3).for_each(|i| seen[i] += s[i]);
    }
    // The cases reach every kind of decision, many times.
    assert!(seen.iter().all(|n| *n > 500), "starts, skips, stops: {seen:?}");
}
