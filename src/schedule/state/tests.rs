//! Simulated weeks on a virtual clock: no test waits for real time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::Duration;
use chrono_tz::Tz;

use super::*;
use crate::schedule::calendar::Calendar;
use crate::schedule::cron_expr::CronSchedule;
use crate::schedule::policy::{CatchUp, Overlap, WorkflowSchedule};
use crate::scheduler::clock::{Clock, VirtualClock};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn wf(name: &str, cron: &str, tz: Tz) -> WorkflowSchedule {
    WorkflowSchedule::new(name, CronSchedule::parse(cron).unwrap(), tz)
}

/// Drives a Scheduler with a virtual clock; each started run lasts its workflow's duration.
struct Sim {
    s: Scheduler,
    clock: VirtualClock,
    durations: HashMap<String, Duration>,
    ends: BTreeMap<(DateTime<Utc>, Ticket), ()>,
    log: Vec<(DateTime<Utc>, Action)>,
}

impl Sim {
    fn new(start: &str, limits: Limits) -> Sim {
        Sim {
            s: Scheduler::new(limits),
            clock: VirtualClock::new(utc(start)),
            durations: HashMap::new(),
            ends: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    fn add(&mut self, w: WorkflowSchedule, lasts: Duration, last_fire: Option<DateTime<Utc>>) {
        self.durations.insert(w.name.clone(), lasts);
        let now = self.clock.now();
        self.s.upsert(w, last_fire, now);
    }

    fn apply(&mut self, now: DateTime<Utc>, actions: Vec<Action>) {
        for a in actions {
            match &a {
                Action::Start { ticket, workflow, .. } => {
                    self.ends.insert((now + self.durations[workflow], *ticket), ());
                }
                Action::Stop { ticket, .. } => {
                    // A stopped run ends promptly.
                    self.ends.retain(|(_, t), _| t != ticket);
                    self.ends.insert((now, *ticket), ());
                }
                Action::Skip { .. } => {}
            }
            self.log.push((now, a));
        }
    }

    fn run_until(&mut self, end: DateTime<Utc>) {
        let now = self.clock.now();
        let a = self.s.tick(now);
        self.apply(now, a);
        loop {
            let next_end = self.ends.keys().next().map(|k| k.0);
            let wake = [self.s.next_wake(), next_end].into_iter().flatten().min();
            let Some(t) = wake.filter(|t| *t <= end) else {
                self.clock.set(end);
                return;
            };
            self.clock.set(t);
            let now = self.clock.now();
            while let Some((&(at, ticket), _)) = self.ends.iter().next() {
                if at > now {
                    break;
                }
                self.ends.remove(&(at, ticket));
                let a = self.s.finished(ticket, now);
                self.apply(now, a);
            }
            let a = self.s.tick(now);
            self.apply(now, a);
        }
    }

    fn starts(&self, name: &str) -> Vec<(DateTime<Utc>, DateTime<Utc>, bool)> {
        self.log
            .iter()
            .filter_map(|(at, a)| match a {
                Action::Start { workflow, fire, catch_up, .. } if workflow == name => Some((*at, *fire, *catch_up)),
                _ => None,
            })
            .collect()
    }

    fn skips(&self, name: &str) -> Vec<(DateTime<Utc>, String)> {
        self.log
            .iter()
            .filter_map(|(_, a)| match a {
                Action::Skip { workflow, fire, reason } if workflow == name => Some((*fire, reason.clone())),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn week_across_dst_in_london_and_new_york() {
    // Spring-forward week in both zones (New York 2025-03-09, London 2025-03-30), and fall-back
    // weeks (New York 2025-11-02, London 2025-10-26).
    for (start, end) in [("2025-03-05T00:00:00Z", "2025-04-02T00:00:00Z"), ("2025-10-22T00:00:00Z", "2025-11-05T00:00:00Z")] {
        let mut sim = Sim::new(start, Limits::default());
        sim.add(wf("ldn", "30 1 * * *", chrono_tz::Europe::London), Duration::minutes(5), None);
        sim.add(wf("nyc", "30 2 * * *", chrono_tz::America::New_York), Duration::minutes(5), None);
        sim.add(wf("nyc_early", "30 1 * * *", chrono_tz::America::New_York), Duration::minutes(5), None);
        sim.run_until(utc(end));
        for (name, tz) in
            [("ldn", chrono_tz::Europe::London), ("nyc", chrono_tz::America::New_York), ("nyc_early", chrono_tz::America::New_York)]
        {
            let starts = sim.starts(name);
            // Exactly one run per local day, every day.
            let days: Vec<_> = starts.iter().map(|(_, f, _)| f.with_timezone(&tz).date_naive()).collect();
            let mut dedup = days.clone();
            dedup.dedup();
            assert_eq!(days, dedup, "{name} ran twice on a day");
            let span = (utc(end) - utc(start)).num_days() as usize;
            assert!(days.len() + 1 >= span && days.len() <= span, "{name}: {} runs in {span} days", days.len());
            // Runs start at their fire time (virtual clock: no lateness at all).
            assert!(starts.iter().all(|(at, f, c)| at == f && !c));
        }
        let nyc: Vec<_> = sim.starts("nyc").into_iter().map(|s| s.1).collect();
        if start.starts_with("2025-03") {
            assert!(nyc.contains(&utc("2025-03-09T07:00:00Z")), "02:30 on spring-forward fires at 03:00 EDT");
            let ldn: Vec<_> = sim.starts("ldn").into_iter().map(|s| s.1).collect();
            assert!(ldn.contains(&utc("2025-03-30T01:00:00Z")));
        } else {
            let early: Vec<_> = sim.starts("nyc_early").into_iter().map(|s| s.1).collect();
            assert!(early.contains(&utc("2025-11-02T05:30:00Z")), "first 01:30 (EDT) only");
            assert!(!early.contains(&utc("2025-11-02T06:30:00Z")));
            let ldn: Vec<_> = sim.starts("ldn").into_iter().map(|s| s.1).collect();
            assert!(ldn.contains(&utc("2025-10-26T00:30:00Z")));
            assert!(!ldn.contains(&utc("2025-10-26T01:30:00Z")));
        }
    }
}

#[test]
fn downtime_with_each_catch_up_policy() {
    // Hourly job last fired at 00:00; the scheduler comes back at 05:30.
    let last = Some(utc("2025-06-02T00:00:00Z"));
    let run = |policy: CatchUp, limit: usize| {
        let mut sim = Sim::new("2025-06-02T05:30:00Z", Limits::default());
        let mut w = wf("w", "0 * * * *", chrono_tz::UTC);
        w.catch_up = policy;
        w.catch_up_limit = limit;
        sim.add(w, Duration::minutes(10), last);
        sim.run_until(utc("2025-06-02T06:30:00Z"));
        sim
    };
    let sim = run(CatchUp::None, 10);
    let fires: Vec<_> = sim.starts("w").iter().map(|s| s.1).collect();
    assert_eq!(fires, vec![utc("2025-06-02T06:00:00Z")]);
    let skips = sim.skips("w");
    assert_eq!(skips.len(), 1);
    assert!(skips[0].1.contains("5 fire time(s)") && skips[0].1.contains("catch_up: none"), "{skips:?}");

    let sim = run(CatchUp::Latest, 10);
    let starts = sim.starts("w");
    assert_eq!(starts[0], (utc("2025-06-02T05:30:00Z"), utc("2025-06-02T05:00:00Z"), true));
    assert_eq!(starts[1].1, utc("2025-06-02T06:00:00Z"));
    assert!(sim.skips("w")[0].1.contains("4 fire time(s)"));

    let sim = run(CatchUp::All, 3);
    let starts = sim.starts("w");
    // The 3 latest missed run one after another (10 minutes each), then the on-time fire.
    assert_eq!(
        starts.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(),
        vec![
            (utc("2025-06-02T05:30:00Z"), utc("2025-06-02T03:00:00Z")),
            (utc("2025-06-02T05:40:00Z"), utc("2025-06-02T04:00:00Z")),
            (utc("2025-06-02T05:50:00Z"), utc("2025-06-02T05:00:00Z")),
            (utc("2025-06-02T06:00:00Z"), utc("2025-06-02T06:00:00Z")),
        ]
    );
    assert!(sim.skips("w")[0].1.contains("2 fire time(s)"));

    // All 5 missed run back to back, and the on-time 06:00 fire queues behind them: the backlog
    // is not an overlapping run (it used to make the newest fire skip with "overlap: skip").
    let sim = run(CatchUp::All, 10);
    let starts = sim.starts("w");
    assert_eq!(starts.len(), 6, "{starts:?}");
    assert!(starts[..5].iter().all(|s| s.2));
    assert_eq!((starts[5].0, starts[5].1, starts[5].2), (utc("2025-06-02T06:20:00Z"), utc("2025-06-02T06:00:00Z"), false));
    assert!(sim.skips("w").is_empty(), "{:?}", sim.skips("w"));
}

#[test]
fn a_restart_just_after_a_fire_runs_the_backlog_and_the_newest_fire() {
    // Every minute; down from 12:00:30 to 12:03:05 with `catch_up: all`: 12:01 and 12:02 were
    // missed, 12:03 is 5 s old (on time). All three run, oldest first, none skipped.
    let mut sim = Sim::new("2025-06-02T12:03:05Z", Limits::default());
    let mut w = wf("w", "* * * * *", chrono_tz::UTC);
    w.catch_up = CatchUp::All;
    sim.add(w, Duration::seconds(20), Some(utc("2025-06-02T12:00:00Z")));
    sim.run_until(utc("2025-06-02T12:03:50Z"));
    let fires: Vec<_> = sim.starts("w").iter().map(|s| (s.1, s.2)).collect();
    assert_eq!(fires, vec![(utc("2025-06-02T12:01:00Z"), true), (utc("2025-06-02T12:02:00Z"), true), (utc("2025-06-02T12:03:00Z"), false)]);
    assert!(sim.skips("w").is_empty(), "{:?}", sim.skips("w"));
}

#[test]
fn an_on_time_fire_still_skips_behind_another_on_time_run() {
    // overlap: skip keeps its meaning for on-time fires: a run of 90 s on a minutely job skips
    // every other fire.
    let mut sim = Sim::new("2025-06-02T12:00:30Z", Limits::default());
    sim.add(wf("w", "* * * * *", chrono_tz::UTC), Duration::seconds(90), None);
    sim.run_until(utc("2025-06-02T12:04:30Z"));
    let fires: Vec<_> = sim.starts("w").iter().map(|s| s.1).collect();
    assert_eq!(fires, vec![utc("2025-06-02T12:01:00Z"), utc("2025-06-02T12:03:00Z")]);
    assert!(sim.skips("w").iter().all(|s| s.1.contains("overlap: skip")), "{:?}", sim.skips("w"));
}

#[test]
fn missed_summary_carries_the_newest_dropped_fire() {
    let mut sim = Sim::new("2025-06-02T05:30:00Z", Limits::default());
    let mut w = wf("w", "0 * * * *", chrono_tz::UTC);
    w.catch_up = CatchUp::None;
    sim.add(w, Duration::minutes(1), Some(utc("2025-06-02T00:00:00Z")));
    sim.run_until(utc("2025-06-02T05:31:00Z"));
    let skips = sim.skips("w");
    assert_eq!(skips[0].0, utc("2025-06-02T05:00:00Z"));
    assert!(skips[0].1.contains("from 2025-06-02T01:00:00+00:00 to 2025-06-02T05:00:00+00:00"), "{skips:?}");
}

#[test]
fn a_very_long_downtime_of_an_every_second_job_is_bounded() {
    let mut sim = Sim::new("2025-06-12T00:00:00Z", Limits::default());
    sim.add(wf("w", "* * * * * *", chrono_tz::UTC), Duration::milliseconds(100), Some(utc("2025-06-02T00:00:00Z")));
    sim.run_until(utc("2025-06-12T00:00:03Z"));
    let skips = sim.skips("w");
    assert!(skips[0].1.starts_with("more than "), "{skips:?}");
    // Fires inside the grace window are on time: one runs at once, then every second resumes.
    let starts = sim.starts("w");
    assert!(starts[0].1 >= utc("2025-06-11T23:59:00Z"), "{starts:?}");
    assert_eq!(starts.len(), 4, "{starts:?}");
}

#[test]
fn a_new_workflow_does_not_catch_up() {
    let mut sim = Sim::new("2025-06-02T05:30:00Z", Limits::default());
    sim.add(wf("w", "0 * * * *", chrono_tz::UTC), Duration::minutes(1), None);
    sim.run_until(utc("2025-06-02T06:30:00Z"));
    assert_eq!(sim.starts("w").len(), 1);
    assert!(sim.skips("w").is_empty());
}

#[test]
fn overlap_with_each_policy() {
    // Every 15 minutes, each run lasts 40 minutes, for 2 hours.
    let run = |overlap: Overlap, concurrency: Option<usize>| {
        let mut sim = Sim::new("2025-06-02T00:00:00Z", Limits::default());
        let mut w = wf("w", "*/15 * * * *", chrono_tz::UTC);
        w.overlap = overlap;
        w.concurrency = concurrency;
        sim.add(w, Duration::minutes(40), None);
        sim.run_until(utc("2025-06-02T02:00:00Z"));
        sim
    };
    let sim = run(Overlap::Skip, None);
    let starts: Vec<_> = sim.starts("w").iter().map(|s| s.0.format("%H:%M").to_string()).collect();
    assert_eq!(starts, vec!["00:15", "01:00", "01:45"]);
    assert_eq!(sim.skips("w").len(), 5);
    assert!(sim.skips("w").iter().all(|s| s.1.contains("still running (overlap: skip)")));

    let sim = run(Overlap::Queue, None);
    let starts: Vec<_> = sim.starts("w").iter().map(|s| (s.0.format("%H:%M").to_string(), s.1.format("%H:%M").to_string())).collect();
    // One at a time, each fire kept, in order.
    assert_eq!(starts, vec![("00:15".into(), "00:15".into()), ("00:55".into(), "00:30".into()), ("01:35".into(), "00:45".into())]);
    assert!(sim.skips("w").is_empty());
    assert_eq!(sim.s.pending_len(), 5);

    let sim = run(Overlap::Allow, None);
    assert_eq!(sim.starts("w").len(), 8);
    assert!(sim.starts("w").iter().all(|s| s.0 == s.1));

    let sim = run(Overlap::Allow, Some(2));
    let starts: Vec<_> = sim.starts("w").iter().map(|s| s.0.format("%H:%M").to_string()).collect();
    assert_eq!(starts, vec!["00:15", "00:30", "00:55", "01:10", "01:35", "01:50"]);
}

#[test]
fn max_runtime_stops_the_run() {
    let mut sim = Sim::new("2025-06-02T00:00:00Z", Limits::default());
    let mut w = wf("w", "0 * * * *", chrono_tz::UTC);
    w.max_runtime = Some(std::time::Duration::from_secs(30 * 60));
    sim.add(w, Duration::hours(2), None);
    sim.run_until(utc("2025-06-02T02:45:00Z"));
    let stops: Vec<_> = sim
        .log
        .iter()
        .filter_map(|(at, a)| match a {
            Action::Stop { reason, .. } => Some((*at, reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(stops.len(), 2);
    assert_eq!(stops[0].0, utc("2025-06-02T01:30:00Z"));
    assert!(stops[0].1.contains("max_runtime of 30m"), "{}", stops[0].1);
    // Stopped runs free their slot: every hourly fire started.
    assert_eq!(sim.starts("w").len(), 2);
}

#[test]
fn global_concurrency_limit_queues_across_workflows() {
    let mut sim = Sim::new("2025-06-02T00:00:00Z", Limits { max_concurrent_runs: Some(2) });
    for n in ["a", "b", "c"] {
        sim.add(wf(n, "0 1 * * *", chrono_tz::UTC), Duration::minutes(10), None);
    }
    sim.run_until(utc("2025-06-02T02:00:00Z"));
    let at = |n: &str| sim.starts(n)[0].0;
    assert_eq!(at("a"), utc("2025-06-02T01:00:00Z"));
    assert_eq!(at("b"), utc("2025-06-02T01:00:00Z"));
    assert_eq!(at("c"), utc("2025-06-02T01:10:00Z"));
}

#[test]
fn calendar_and_business_days_skip_with_reason() {
    let cal = Calendar::parse(std::path::Path::new("calendars/uk.yaml"), "- {date: 2025-12-25, name: Christmas Day}").unwrap();
    let mut sim = Sim::new("2025-12-22T00:00:00Z", Limits::default());
    let mut w = wf("w", "0 9 * * *", chrono_tz::Europe::London);
    w.calendar = Some(Arc::new(cal));
    w.business_days = true;
    sim.add(w, Duration::minutes(1), None);
    sim.run_until(utc("2025-12-29T00:00:00Z"));
    let days: Vec<_> = sim.starts("w").iter().map(|s| s.1.format("%d").to_string()).collect();
    assert_eq!(days, vec!["22", "23", "24", "26"]);
    let skips = sim.skips("w");
    assert_eq!(skips.len(), 3);
    assert!(skips[0].1.contains("Christmas Day in calendar calendars/uk.yaml"));
    assert!(skips[1].1.contains("Saturday (business_days: true)"));
}

#[test]
fn reload_changes_schedule_without_catching_up_and_remove_stops() {
    let mut sim = Sim::new("2025-06-02T00:00:00Z", Limits::default());
    sim.add(wf("w", "0 3 * * *", chrono_tz::UTC), Duration::minutes(1), None);
    sim.run_until(utc("2025-06-02T10:00:00Z"));
    assert_eq!(sim.starts("w").len(), 1);
    // New definition: 09:00, already past today; it must not run until tomorrow.
    sim.add(wf("w", "0 9 * * *", chrono_tz::UTC), Duration::minutes(1), None);
    sim.run_until(utc("2025-06-03T10:00:00Z"));
    let fires: Vec<_> = sim.starts("w").iter().map(|s| s.1).collect();
    assert_eq!(fires, vec![utc("2025-06-02T03:00:00Z"), utc("2025-06-03T09:00:00Z")]);
    sim.s.remove("w");
    sim.run_until(utc("2025-06-05T10:00:00Z"));
    assert_eq!(sim.starts("w").len(), 2);
    assert_eq!(sim.s.next_wake(), None);
}

#[test]
fn shutdown_drops_queued_fires_and_starts_nothing() {
    let mut sim = Sim::new("2025-06-02T00:00:00Z", Limits { max_concurrent_runs: Some(1) });
    sim.add(wf("a", "0 1 * * *", chrono_tz::UTC), Duration::hours(1), None);
    sim.add(wf("b", "0 1 * * *", chrono_tz::UTC), Duration::hours(1), None);
    sim.run_until(utc("2025-06-02T01:30:00Z"));
    let dropped = sim.s.begin_shutdown();
    assert_eq!(dropped.len(), 1);
    sim.run_until(utc("2025-06-04T00:00:00Z"));
    assert_eq!(sim.starts("a").len() + sim.starts("b").len(), 1);
}
