use std::path::Path;

use chrono::{DateTime, Utc};

use super::*;
use crate::schedule::calendar::{skip_reason, Calendar};
use crate::schedule::cron_expr::CronSchedule;
use crate::schedule::policy::WorkflowSchedule;
use crate::schedule::state::{Action, Limits, Scheduler};

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

crate::store::testing::store_test! {
#[tokio::test]
async fn skip_reasons_are_classified(fresh) {
    let dir = tempfile::tempdir().unwrap();
    let s = fresh.open().await;
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
}

crate::store::testing::store_test! {
#[tokio::test]
async fn a_key_sending_under_a_live_owner_is_in_flight_and_one_without_is_uncertain(fresh) {
    let s = fresh.open().await;
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
    on_db!(&s.db, pool => sqlx::query(
        "INSERT INTO ledger (key, workflow, run_id, step_id, item_key, state, updated_at) VALUES ('k2', 'mail', $1, 'send', 'b@x', 'sending', 'now')"
    )
    .bind(run)
    .execute(pool)
    .await
    .map(|_| ()))
    .unwrap();
    let got = s.pending_tallies().await.unwrap();
    assert_eq!(
        got,
        vec![PendingTally { workflow: "mail".into(), step_id: "send".into(), kind: "send_email".into(), uncertain: 1, in_flight: 1 }]
    );
}
}

/// `q` with `ids` bound as `$1`, `$2`, ...
async fn exec(s: &Store, q: &str, ids: &[i64]) {
    on_db!(&s.db, pool => {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(q.to_string()));
        for id in ids {
            query = query.bind(*id);
        }
        query.execute(pool).await.map(|_| ())
    })
    .unwrap_or_else(|e| panic!("{q}: {e}"));
}

/// A run (finished unless `Running`) started at 10:00:00 that finished at 10:`finished`.
async fn timed_run(s: &Store, workflow: &str, trigger: crate::store::TriggerKind, status: crate::store::RunStatus, finished: &str) -> i64 {
    let p = serde_json::json!({});
    let id = s.start_run(crate::store::NewRun { workflow, file: "w.yaml", trigger, params: &p, scheduled_for: None }).await.unwrap();
    if status != crate::store::RunStatus::Running {
        s.finish_run(id, status, None).await.unwrap();
        let q = format!("UPDATE runs SET started_at = '2024-06-10T10:00:00.000Z', finished_at = '2024-06-10T10:{finished}Z' WHERE id = $1");
        exec(s, &q, &[id]).await;
    }
    id
}

/// A step row with these counts, as `finish_step` leaves it.
async fn step_row(s: &Store, run: i64, id: &str, kind: &str, counts: [i64; 3]) {
    let q = format!(
        "INSERT INTO steps (run_id, step_id, position, kind, status, ok, failed, skipped, started_at)
         VALUES ($1, '{id}', 0, '{kind}', 'succeeded', {}, {}, {}, 'now')",
        counts[0], counts[1], counts[2]
    );
    exec(s, &q, &[run]).await;
}

crate::store::testing::store_test! {
#[tokio::test]
async fn every_figure_reads_the_same_from_either_database(fresh) {
    use crate::store::{RunStatus, TriggerKind};
    let s = fresh.open().await;
    // Durations 1.25 s, 3 s, 90 s and 0.5 s (a dry run); running and skipped runs have none.
    let a = timed_run(&s, "nightly", TriggerKind::Schedule, RunStatus::Succeeded, "00:01.250").await;
    step_row(&s, a, "mail", "send_email", [40, 2, 1]).await;
    step_row(&s, a, "portal", "browser", [7, 1, 0]).await;
    let b = timed_run(&s, "nightly", TriggerKind::Schedule, RunStatus::Failed, "00:03.000").await;
    step_row(&s, b, "mail", "send_email", [10, 0, 0]).await;
    timed_run(&s, "nightly", TriggerKind::Manual, RunStatus::Partial, "01:30.000").await;
    let dry = timed_run(&s, "nightly", TriggerKind::DryRun, RunStatus::Succeeded, "00:00.500").await;
    step_row(&s, dry, "mail", "send_email", [100, 0, 0]).await;
    timed_run(&s, "nightly", TriggerKind::Manual, RunStatus::Running, "").await;
    let other = timed_run(&s, "Other", TriggerKind::Manual, RunStatus::Succeeded, "00:02.000").await;
    // Keys left `sending`: one of a step with a row, one of a step run whose row is gone.
    exec(
        &s,
        "INSERT INTO ledger (key, workflow, run_id, step_id, item_key, state, updated_at) VALUES
           ('k1', 'nightly', $1, 'mail', 'a@x', 'sending', 'now'), ('k2', 'nightly', $2, 'mail', 'b@x', 'sending', 'now'),
           ('k3', 'nightly', $1, 'mail', 'c@x', 'sent', 'now')",
        &[a, other],
    )
    .await;
    // Skipped fires, one worded in a case of its own.
    let saturday = skip_reason("2025-06-07".parse().unwrap(), true, None).unwrap();
    for reason in [saturday.as_str(), &saturday.to_uppercase(), "no reason anyone gives"] {
        exec(
            &s,
            &format!(
                "INSERT INTO runs (workflow, file, trigger, started_at, finished_at, status, error)
                 VALUES ('nightly', 'w.yaml', 'schedule', 'now', 'now', 'skipped', '{}')",
                reason.replace('\'', "''")
            ),
            &[],
        )
        .await;
    }

    let f = s.metric_figures(&[1.0, 5.0, 60.0]).await.unwrap();
    let runs: Vec<_> = f.runs.iter().map(|t| (t.workflow.as_str(), t.status.as_str(), t.count, t.last_finished.as_deref())).collect();
    let at = |finished: &str| format!("2024-06-10T10:{finished}Z");
    assert_eq!(
        runs,
        [
            ("Other", "succeeded", 1, Some(at("00:02.000").as_str())),
            ("nightly", "failed", 1, Some(at("00:03.000").as_str())),
            ("nightly", "partial", 1, Some(at("01:30.000").as_str())),
            ("nightly", "running", 1, None),
            ("nightly", "skipped", 3, Some("now")),
            ("nightly", "succeeded", 2, Some(at("00:01.250").as_str())),
        ],
        "byte order: `O` before `n`"
    );
    assert_eq!(
        f.durations,
        [
            DurationTally { workflow: "Other".into(), count: 1, sum_seconds: 2.0, buckets: vec![0, 1, 0, 0] },
            DurationTally { workflow: "nightly".into(), count: 4, sum_seconds: 94.75, buckets: vec![1, 2, 0, 1] },
        ]
    );
    let steps: Vec<_> = f.steps.iter().map(|t| (t.step_id.as_str(), t.kind.as_str(), t.dry_run, t.ok, t.failed, t.skipped)).collect();
    assert_eq!(
        steps,
        [("mail", "send_email", false, 50, 2, 1), ("mail", "send_email", true, 100, 0, 0), ("portal", "browser", false, 7, 1, 0)]
    );
    // A key whose step has no row comes first (no kind), as SQLite sorts a missing value.
    let pending: Vec<_> = f.pending.iter().map(|t| (t.workflow.as_str(), t.step_id.as_str(), t.kind.as_str(), t.uncertain)).collect();
    assert_eq!(pending, [("nightly", "mail", "", 1), ("nightly", "mail", "send_email", 1)]);
    let skipped: Vec<_> = f.skipped_fires.iter().map(|t| (t.reason.as_str(), t.count)).collect();
    assert_eq!(skipped, [("business_days", 2), ("other", 1)], "the reasons' words match whatever their ASCII case");
    assert!(f.bytes >= 4096, "{}", f.bytes);
}
}
