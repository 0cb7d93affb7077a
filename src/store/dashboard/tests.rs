//! The dashboard's reads on a real run log, SQLite and PostgreSQL: filters, keyset pages, prefix
//! search, and the query plans that keep them fast on a million items.

mod items;
mod plans;
mod plans_pg;

use chrono::{TimeZone, Utc};
use serde_json::json;

use super::*;
use crate::engine::log::{DigestFigures, NewArtifact, StepEnd};
use crate::store::{ItemResult, ItemStatus, NewRun, RunStatus, Store, TriggerKind};

use crate::store::db::{on_db, Backend};

pub(super) async fn start(store: &Store, workflow: &str, trigger: TriggerKind) -> i64 {
    let p = json!({});
    store.start_run(NewRun { workflow, file: "w.yaml", trigger, params: &p, scheduled_for: None }).await.unwrap()
}

pub(super) async fn sql(store: &Store, q: &'static str) {
    exec(store, q, &[]).await;
}

/// `q` with `ids` bound as `$1`, `$2`, ...
pub(super) async fn exec(store: &Store, q: &'static str, ids: &[i64]) {
    on_db!(&store.db, pool => {
        let mut query = sqlx::query(q);
        for id in ids {
            query = query.bind(*id);
        }
        query.execute(pool).await.map(|_| ())
    })
    .unwrap();
}

pub(super) fn item(run_id: i64, step: &str, key: &str, seq: i64, status: ItemStatus) -> ItemResult {
    ItemResult { run_id, step_id: step.into(), key: key.into(), seq, status, attempts: 1, error: None, output: None, claim: None }
}

crate::store::testing::store_test! {
#[tokio::test]
async fn runs_pages_follow_each_other_without_gaps_or_repeats_and_filters_hold(fresh) {
    let store = fresh.open().await;
    let mut ids = Vec::new();
    for i in 0..11 {
        let trigger = if i % 3 == 0 { TriggerKind::Schedule } else { TriggerKind::Manual };
        let id = start(&store, if i % 2 == 0 { "even" } else { "odd" }, trigger).await;
        let status = if i % 4 == 0 { RunStatus::Failed } else { RunStatus::Succeeded };
        store.finish_run(id, status, None).await.unwrap();
        ids.push(id);
    }
    // Every run started in the same millisecond, on 2024-05-31, but the last two on 1 June.
    sql(&store, "UPDATE runs SET started_at = '2024-05-31T23:59:59.999Z'").await;
    exec(&store, "UPDATE runs SET started_at = '2024-06-01T00:00:00.000Z' WHERE id >= $1", &[ids[9]]).await;

    let mut seen = Vec::new();
    let mut q = RunsQuery { limit: 4, ..Default::default() };
    loop {
        let page = store.runs_page(&q).await.unwrap();
        assert!(page.rows.len() <= 4);
        seen.extend(page.rows.iter().map(|r| r.id));
        match page.next {
            Some(n) => q.before = Some(n),
            None => break,
        }
    }
    let newest_first: Vec<i64> = ids.iter().rev().copied().collect();
    assert_eq!(seen, newest_first, "every run once, newest first");

    let ids_of = |p: Page<crate::store::RunRow>| p.rows.iter().map(|r| r.id).collect::<Vec<_>>();
    let q = RunsQuery { workflow: Some("even".into()), status: Some(RunStatus::Failed), ..Default::default() };
    assert_eq!(ids_of(store.runs_page(&q).await.unwrap()), vec![ids[8], ids[4], ids[0]]);
    let q = RunsQuery { trigger: Some(TriggerKind::Schedule), ..Default::default() };
    assert_eq!(ids_of(store.runs_page(&q).await.unwrap()), vec![ids[9], ids[6], ids[3], ids[0]]);
    // `to` as a date takes in its whole day; `from` as a date starts at its midnight (UTC).
    let q = RunsQuery { started_to: Some(parse_time_bound("2024-05-31", true).unwrap()), limit: 1, ..Default::default() };
    let page = store.runs_page(&q).await.unwrap();
    assert_eq!((ids_of(page.clone()), page.next), (vec![ids[8]], Some(ids[8])));
    let q = RunsQuery { started_from: Some(parse_time_bound("2024-06-01", false).unwrap()), ..Default::default() };
    assert_eq!(ids_of(store.runs_page(&q).await.unwrap()), vec![ids[10], ids[9]]);
    let q = RunsQuery { started_from: Some(parse_time_bound("2024-06-01T02:00:00+02:00", false).unwrap()), ..Default::default() };
    assert_eq!(ids_of(store.runs_page(&q).await.unwrap()), vec![ids[10], ids[9]], "an offset is converted to UTC");
    let q = RunsQuery { workflow: Some("none".into()), ..Default::default() };
    let empty = store.runs_page(&q).await.unwrap();
    assert!(empty.rows.is_empty() && empty.next.is_none());
    // The cap holds whatever is asked.
    assert_eq!(super::page_limit(1_000_000), MAX_LIMIT);
    assert_eq!(super::page_limit(0), DEFAULT_LIMIT);
}
}

#[test]
fn time_bounds_and_cursors_read_back_or_say_what_is_wrong() {
    assert_eq!(parse_time_bound("2024-02-29", true).unwrap(), Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap());
    let e = parse_time_bound("yesterday", false).unwrap_err().to_string();
    assert_eq!(e, "`yesterday` is not a date (2024-05-31) or an RFC 3339 time (2024-05-31T09:00:00Z)");
    let c = ItemCursor { position: 2, seq: -1, row: 99 };
    assert_eq!(c.to_string().parse::<ItemCursor>(), Ok(c));
    assert_eq!(serde_json::to_value(c).unwrap(), json!("2.-1.99"));
    assert!("2.1".parse::<ItemCursor>().unwrap_err().to_string().contains("`2.1` is not an item cursor"));
    assert!("1.2.3.4".parse::<ItemCursor>().is_err());
}

crate::store::testing::store_test! {
#[tokio::test]
async fn workflow_summaries_give_the_last_run_the_recent_finished_ones_and_the_week_s_failures(fresh) {
    let store = fresh.open().await;
    let mut a = Vec::new();
    for i in 0..25 {
        let id = start(&store, "a", TriggerKind::Schedule).await;
        let status = match i % 5 {
            0 => RunStatus::Failed,
            1 => RunStatus::Partial,
            _ => RunStatus::Succeeded,
        };
        store.finish_run(id, status, None).await.unwrap();
        a.push(id);
    }
    let running = start(&store, "a", TriggerKind::Manual).await;
    let b = start(&store, "b", TriggerKind::Manual).await;
    store.finish_run(b, RunStatus::Failed, None).await.unwrap();
    sql(&store, "UPDATE runs SET started_at = '2024-06-10T10:00:00.000Z', finished_at = '2024-06-10T10:00:01.250Z'").await;
    // Failures older than the window do not count: a's first 10 runs started 8 days before.
    exec(&store, "UPDATE runs SET started_at = '2024-06-02T10:00:00.000Z' WHERE workflow = 'a' AND id <= $1", &[a[9]]).await;
    let now = Utc.with_ymd_and_hms(2024, 6, 10, 12, 0, 0).unwrap();
    let names = vec!["a".to_string(), "b".to_string(), "never".to_string()];
    let s = store.workflow_summaries(&names, now).await.unwrap();
    assert_eq!(s.len(), 3);
    let sa = &s["a"];
    assert_eq!(sa.last.as_ref().map(|r| (r.id, r.status)), Some((running, RunStatus::Running)));
    assert_eq!(sa.recent.iter().map(|p| p.id).collect::<Vec<_>>(), a[5..].to_vec(), "the last 20 finished, oldest first");
    assert_eq!(sa.recent[0].status, RunStatus::Failed);
    assert_eq!(sa.recent[19].duration_ms, Some(1250));
    assert_eq!(sa.failures_7d, 6, "runs 10..25: three failed, three partial");
    assert_eq!((s["b"].last.as_ref().map(|r| r.id), s["b"].failures_7d, s["b"].recent.len()), (Some(b), 1, 1));
    let never = &s["never"];
    assert!(never.last.is_none() && never.recent.is_empty() && never.failures_7d == 0);
    assert!(store.workflow_summaries(&[], now).await.unwrap().is_empty());
}
}

crate::store::testing::store_test! {
#[tokio::test]
async fn artifacts_are_read_by_id_within_their_run_by_page_and_by_item(fresh) {
    let store = fresh.open().await;
    let r1 = start(&store, "w", TriggerKind::Manual).await;
    let r2 = start(&store, "w", TriggerKind::Manual).await;
    let art = |step: &str, key: Option<&str>, path: &str| NewArtifact {
        step_id: step.into(),
        item_key: key.map(Into::into),
        kind: "screenshot".into(),
        path: path.into(),
    };
    let list: Vec<NewArtifact> = (0..5).map(|i| art("fill", Some(if i < 3 { "T-1" } else { "T-2" }), &format!("a{i}.png"))).collect();
    store.add_artifacts(r1, &list).await.unwrap();
    store.add_artifacts(r2, &[art("fill", Some("T-1"), "other.png")]).await.unwrap();
    let page = store.artifacts_with_ids(r1, None, 2).await.unwrap();
    assert_eq!(page.rows.iter().map(|a| a.path.as_str()).collect::<Vec<_>>(), ["a0.png", "a1.png"]);
    let mut all = page.rows.clone();
    let mut next = page.next;
    while let Some(after) = next {
        let p = store.artifacts_with_ids(r1, Some(after), 2).await.unwrap();
        all.extend(p.rows);
        next = p.next;
    }
    assert_eq!(all.len(), 5);
    let first = &all[0];
    assert_eq!(store.artifact(r1, first.id).await.unwrap().as_ref(), Some(first));
    assert_eq!(store.artifact(r2, first.id).await.unwrap(), None, "an id of another run is not found");
    assert_eq!(store.artifact(r1, 999_999).await.unwrap(), None);
    let t1 = store.item_artifacts(r1, "fill", "T-1").await.unwrap();
    assert_eq!(t1.iter().map(|a| a.path.as_str()).collect::<Vec<_>>(), ["a0.png", "a1.png", "a2.png"]);
    assert!(store.item_artifacts(r1, "fill", "T-9").await.unwrap().is_empty());
    assert!(store.artifacts_with_ids(r1 + 100, None, 0).await.unwrap().rows.is_empty());
}
}

crate::store::testing::store_test! {
#[tokio::test]
async fn uncertain_deliveries_of_a_run_name_their_step_item_key_and_since(fresh) {
    let store = fresh.open().await;
    let r = start(&store, "w", TriggerKind::Manual).await;
    let insert = "INSERT INTO ledger (key, workflow, run_id, step_id, item_key, state, updated_at) VALUES
           ('w/mail/T-2', 'w', $1, 'mail', 'T-2', 'sending', '2024-06-01T10:00:02.000Z'),
           ('w/mail/T-1', 'w', $1, 'mail', 'T-1', 'sending', '2024-06-01T10:00:01.000Z'),
           ('w/mail/T-3', 'w', $1, 'mail', 'T-3', 'sent', '2024-06-01T10:00:03.000Z'),
           ('w/mail/X', 'w', $2, 'mail', 'X', 'sending', '2024-06-01T10:00:00.000Z')";
    exec(&store, insert, &[r, r + 1]).await;
    let u = store.uncertain_for_run(r).await.unwrap();
    let want = [("w/mail/T-1", "T-1", "2024-06-01T10:00:01.000Z"), ("w/mail/T-2", "T-2", "2024-06-01T10:00:02.000Z")];
    assert_eq!(u.iter().map(|u| (u.key.as_str(), u.item_key.as_str(), u.since.as_str())).collect::<Vec<_>>(), want);
    assert!(u.iter().all(|u| u.step_id == "mail"));
}
}

crate::store::testing::store_test! {
#[tokio::test]
async fn digests_per_team_and_their_history_link_the_html_and_markdown_files(fresh) {
    let store = fresh.open().await;
    // A workflow name holding a `/`: the step id is what follows it in the scope.
    let mut runs = Vec::new();
    for (i, count) in [3u64, 5].into_iter().enumerate() {
        let r = start(&store, "cx/feedback", TriggerKind::Schedule).await;
        let (writer, _ids) = store.routing_writer("cx/feedback/route", r);
        let fig = |team: &str| DigestFigures { team: team.into(), count, urgent: 1, rated: 2, avg_rating: Some(4.5), csat: Some(50.0) };
        writer.finish(vec![fig("Billing"), fig("R&D")]).await.unwrap();
        if i == 1 {
            // As the route step files them (src/steps/route/output.rs): kind `digest`, under the team.
            let file = |team: &str, ext: &str| NewArtifact {
                step_id: "route".into(),
                item_key: Some(team.into()),
                kind: "digest".into(),
                path: format!("artifacts/run-{r}/route/{}.{ext}", team.to_lowercase()),
            };
            store.add_artifacts(r, &[file("Billing", "html"), file("Billing", "md"), file("R&D", "html")]).await.unwrap();
        }
        runs.push(r);
    }
    let teams = store.digest_teams().await.unwrap();
    assert_eq!(
        teams.iter().map(|t| (t.team.as_str(), t.last_run_id, t.digests)).collect::<Vec<_>>(),
        [("Billing", runs[1], 2), ("R&D", runs[1], 2)]
    );
    assert!(teams.iter().all(|t| t.scope == "cx/feedback/route" && !t.last_created_at.is_empty()));

    let h = store.digest_history("cx/feedback/route", "Billing", 10).await.unwrap();
    assert_eq!(h.iter().map(|p| (p.run_id, p.count)).collect::<Vec<_>>(), [(runs[1], 5), (runs[0], 3)]);
    let html = store.artifact(runs[1], h[0].artifact_id.unwrap()).await.unwrap().unwrap();
    let md = store.artifact(runs[1], h[0].markdown_artifact_id.unwrap()).await.unwrap().unwrap();
    assert!(html.path.ends_with("/billing.html") && md.path.ends_with("/billing.md"), "{html:?} {md:?}");
    assert_eq!((h[1].artifact_id, h[1].markdown_artifact_id), (None, None), "no files recorded for the first run");
    let rd = store.digest_history("cx/feedback/route", "R&D", 1).await.unwrap();
    assert_eq!(rd.len(), 1);
    assert!(rd[0].artifact_id.is_some() && rd[0].markdown_artifact_id.is_none());
    assert!(store.digest_history("cx/feedback/route", "Nobody", 10).await.unwrap().is_empty());
}
}

crate::store::testing::store_test! {
#[tokio::test]
async fn run_log_stats_count_runs_and_items_and_the_file_size(fresh) {
    let store = fresh.open().await;
    let r = start(&store, "w", TriggerKind::Manual).await;
    store.start_step(r, "s", 0, "send_email").await.unwrap();
    let w = store.item_writer();
    for i in 0..7 {
        w.write(item(r, "s", &format!("k{i}"), i, ItemStatus::Ok)).await;
    }
    w.flush().await.unwrap();
    store
        .finish_step(r, "s", StepEnd { status: crate::store::StepStatus::Succeeded, error: None, output: None, records: None })
        .await
        .unwrap();
    let s = store.run_log_stats().await.unwrap();
    assert_eq!((s.runs, s.items), (1, 7));
    match store.backend() {
        // Counted in pages (some may still sit in the WAL, so not the file's length).
        Backend::Sqlite => assert!(s.bytes >= 4096 && s.bytes % 512 == 0 && s.free_bytes >= 0, "{s:?}"),
        // The database's files on the server, a few megabytes even when empty.
        Backend::Postgres => assert!(s.bytes >= 1 << 20 && s.free_bytes == 0, "{s:?}"),
    }
}
}
