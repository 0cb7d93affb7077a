use std::path::Path;

use chrono::{DateTime, Utc};

use super::*;
use crate::schedule::calendar::{skip_reason, Calendar};
use crate::schedule::cron_expr::CronSchedule;
use crate::schedule::policy::WorkflowSchedule;
use crate::schedule::state::{Action, Limits, Scheduler};

async fn store(dir: &Path) -> Store {
    Store::open(&format!("sqlite://{}", dir.join("runs.db").display())).await.unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn skips(actions: Vec<Action>) -> Vec<String> {
    actions.into_iter().filter_map(|a| if let Action::Skip { reason, .. } = a { Some(reason) } else { None }).collect()
}

/// Each reason as the scheduler words it, made by the code that words it.
fn real_reasons() -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let saturday = "2025-06-07".parse().unwrap();
    out.push(("business_days", skip_reason(saturday, true, None).unwrap()));
    let cal = Calendar::parse(Path::new("calendars/x.yaml"), "- {date: 2025-06-09, name: Whit Monday (observed)}").unwrap();
    out.push(("holiday", skip_reason("2025-06-09".parse().unwrap(), false, Some(&cal)).unwrap()));

    let t0 = utc("2025-06-02T00:00:00Z");
    let every_minute = |name: &str| WorkflowSchedule::new(name, CronSchedule::parse("* * * * *").unwrap(), chrono_tz::UTC);
    // Missed while down: the last fire was a day ago, catch_up none.
    let mut s = Scheduler::new(Limits::default());
    s.upsert(every_minute("a"), Some(t0 - chrono::Duration::days(1)), t0);
    // (The first skip; the fire due now may follow as an overlap skip.)
    out.extend(skips(s.tick(t0)).into_iter().take(1).map(|r| ("missed", r)));
    // Overlap: the run of the first fire is still going at the second.
    let mut s = Scheduler::new(Limits::default());
    s.upsert(every_minute("a"), None, t0);
    s.tick(t0 + chrono::Duration::seconds(60));
    out.extend(skips(s.tick(t0 + chrono::Duration::seconds(120))).into_iter().map(|r| ("overlap", r)));
    // Queued behind a one-run limit, then removed / shut down.
    let mut s = Scheduler::new(Limits { max_concurrent_runs: Some(1) });
    for w in ["a", "b", "c"] {
        s.upsert(every_minute(w), None, t0);
    }
    s.tick(t0 + chrono::Duration::seconds(60));
    let removed = ["a", "b", "c"].iter().flat_map(|w| skips(s.remove(w))).collect::<Vec<_>>();
    out.extend(removed.into_iter().take(1).map(|r| ("removed", r)));
    let mut s = Scheduler::new(Limits { max_concurrent_runs: Some(1) });
    for w in ["a", "b"] {
        s.upsert(every_minute(w), None, t0);
    }
    s.tick(t0 + chrono::Duration::seconds(60));
    out.extend(skips(s.begin_shutdown()).into_iter().map(|r| ("shutdown", r)));
    // Written in `scheduler::launch` when a queued fire's workflow has gone.
    out.push(("removed", "the workflow is no longer loaded".into()));
    out.push(("other", "a reason no version of the scheduler gives".into()));
    out
}

#[tokio::test]
async fn skip_reasons_are_classified() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let reasons = real_reasons();
    for want in ["business_days", "holiday", "missed", "overlap", "removed", "shutdown"] {
        assert!(reasons.iter().any(|(k, _)| *k == want), "no real sentence for {want}: {reasons:?}");
    }
    for (i, (_, reason)) in reasons.iter().enumerate() {
        s.record_skipped(&format!("w{i}"), "w.yaml", None, reason).await.unwrap();
    }
    // What `cxflow serve` records for a file that does not validate.
    let bad = dir.path().join("broken.yaml");
    crate::scheduler::catalog::report_invalid(&s, &bad, "broken.yaml:3:1: unknown field `stpes`", false).await;
    let got = s.skip_tallies().await.unwrap();
    for (i, (want, reason)) in reasons.iter().enumerate() {
        let t = got.iter().find(|t| t.workflow == format!("w{i}")).unwrap();
        assert_eq!((t.reason.as_str(), t.count), (*want, 1), "{reason}");
    }
    let t = got.iter().find(|t| t.workflow == "broken").unwrap();
    assert_eq!(t.reason, "invalid_file");
}

#[tokio::test]
async fn a_key_sending_under_a_live_owner_is_in_flight_and_one_without_is_uncertain() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let p = serde_json::json!({});
    let run = s
        .start_run(crate::store::NewRun {
            workflow: "mail",
            file: "m.yaml",
            trigger: crate::store::TriggerKind::Manual,
            params: &p,
            scheduled_for: None,
        })
        .await
        .unwrap();
    s.start_step(run, "send", 0, "send_email").await.unwrap();
    assert!(matches!(s.claim_key("k1", "mail", run, "send", "a@x").await.unwrap(), crate::store::Claim::Fresh));
    // A claim left by a process that is gone (written before owners were recorded).
    sqlx::query("INSERT INTO ledger (key, workflow, run_id, step_id, item_key, state, updated_at) VALUES ('k2', 'mail', ?, 'send', 'b@x', 'sending', 'now')")
        .bind(run)
        .execute(s.pool())
        .await
        .unwrap();
    let got = s.pending_tallies().await.unwrap();
    assert_eq!(
        got,
        vec![PendingTally { workflow: "mail".into(), step_id: "send".into(), kind: "send_email".into(), uncertain: 1, in_flight: 1 }]
    );
}
