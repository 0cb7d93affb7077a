//! `EXPLAIN QUERY PLAN` of the exact SQL each read sends: an index range, never a full scan of
//! `items`, `runs` or `artifacts` nor a temporary b-tree for the order. Without `ANALYZE` the
//! plan does not depend on how many rows there are, so a small table shows the plan a million
//! items get. SQLite's plans; PostgreSQL's are in `plans_pg.rs`.

use sqlx::{AssertSqlSafe, QueryBuilder, Sqlite, SqlitePool};

use super::*;
use crate::store::dashboard::items::{by_key, by_seq, StepRange, STEP_COUNTS};
use crate::store::dashboard::runs::{runs_sql, LAST_RUNS, RECENT_AND_FAILURES};
use crate::store::db::Db;

/// A new SQLite run log (`_fresh` holds its folder).
async fn open() -> (crate::store::testing::Fresh, Store) {
    let fresh = crate::store::testing::sqlite().await;
    let store = fresh.open().await;
    (fresh, store)
}

fn pool(store: &Store) -> &SqlitePool {
    match &store.db {
        Db::Sqlite(p) => p,
        Db::Pg(_) => unreachable!("SQLite's plans"),
    }
}

async fn plan_of(store: &Store, mut b: QueryBuilder<Sqlite>) -> Vec<String> {
    let rows: Vec<(i64, i64, i64, String)> = b.build_query_as().fetch_all(pool(store)).await.unwrap();
    rows.into_iter().map(|r| r.3).collect()
}

async fn plan_of_sql(store: &Store, sql: &str, binds: &[&str]) -> Vec<String> {
    let mut q = sqlx::query_as::<_, (i64, i64, i64, String)>(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
    for b in binds {
        q = q.bind(b.to_string());
    }
    q.fetch_all(pool(store)).await.unwrap().into_iter().map(|r| r.3).collect()
}

/// Every table read is a SEARCH through `index` (or the primary key), nothing is sorted apart.
fn assert_indexed(what: &str, plan: &[String], index: &str) {
    let text = plan.join("\n");
    assert!(text.contains(index), "{what}: expected `{index}` in\n{text}");
    for line in plan {
        // The names' JSON array and a bounded subquery (the 20 runs of a sparkline) are no tables.
        let scans_table = line.starts_with("SCAN ") && !line.starts_with("SCAN j VIRTUAL TABLE") && !line.starts_with("SCAN (subquery");
        assert!(!scans_table && !line.contains("TEMP B-TREE"), "{what}: `{line}` in\n{text}");
    }
}

fn explain() -> QueryBuilder<Sqlite> {
    QueryBuilder::new("EXPLAIN QUERY PLAN ")
}

#[tokio::test]
async fn item_pages_and_key_search_are_index_ranges() {
    let (_fresh, store) = open().await;
    let after = Some(ItemCursor { position: 0, seq: 10, row: 12 });
    for after in [None, after] {
        let s = StepRange { run_id: 1, step_id: "s", position: 0, after, want: 101 };
        for status in [None, Some(ItemStatus::Failed)] {
            let mut b = explain();
            by_seq(&mut b, &s, status);
            let plan = plan_of(&store, b).await;
            assert_indexed(&format!("items by seq, {status:?}, after {after:?}"), &plan, "USING INDEX items_step_status_seq");
            let mut b = explain();
            by_key(&mut b, &s, "T-1", status, after.map(|_| "T-10".to_string()));
            let plan = plan_of(&store, b).await;
            assert_indexed("key search", &plan, "USING INDEX sqlite_autoindex_items_1 (run_id=? AND step_id=? AND item_key>");
        }
    }
    let plan = plan_of_sql(&store, STEP_COUNTS, &["1", "s"]).await;
    assert_indexed("a running step's counts", &plan, "USING COVERING INDEX items_step_status_seq");
    let plan = plan_of_sql(&store, crate::store::queries::ITEM_OUTPUTS, &["1", "s"]).await;
    assert_indexed("a step's outputs, read by the next", &plan, "USING INDEX items_step_status_seq");
}

#[tokio::test]
async fn runs_list_and_overview_are_index_lookups() {
    let (_fresh, store) = open().await;
    let t = parse_time_bound("2024-06-01", false).ok();
    let cases = [
        // Newest first by row id, stopping at a full page.
        (RunsQuery::default(), "SCAN runs"),
        (RunsQuery { before: Some(100), ..Default::default() }, "USING INTEGER PRIMARY KEY (rowid<?)"),
        (RunsQuery { workflow: Some("w".into()), before: Some(100), ..Default::default() }, "USING INDEX runs_workflow "),
        (
            RunsQuery { workflow: Some("w".into()), status: Some(RunStatus::Failed), ..Default::default() },
            "USING INDEX runs_workflow_status ",
        ),
        (RunsQuery { status: Some(RunStatus::Failed), ..Default::default() }, "USING INDEX runs_status"),
        (RunsQuery { trigger: Some(TriggerKind::Schedule), ..Default::default() }, "USING INDEX runs_trigger"),
        (RunsQuery { started_from: t, started_to: t, ..Default::default() }, "SCAN runs"),
    ];
    for (q, index) in cases {
        let mut b = explain();
        runs_sql(&mut b, &q, 101);
        let plan = plan_of(&store, b).await;
        // A date range alone walks runs newest first and stops at a full page (no index on
        // `started_at`: the id order is the start order, nearly always).
        let text = plan.join("\n");
        assert!(text.contains(index) && !text.contains("TEMP B-TREE"), "{q:?}: expected `{index}` in\n{text}");
    }
    let names = r#"["a","b"]"#;
    assert_indexed("last runs", &plan_of_sql(&store, LAST_RUNS, &[names]).await, "USING COVERING INDEX runs_workflow ");
    let plan = plan_of_sql(&store, RECENT_AND_FAILURES, &[names, "20", "2024-06-01"]).await;
    assert_indexed("recent runs", &plan, "USING INDEX runs_workflow ");
    assert_indexed("failures", &plan, "USING COVERING INDEX runs_workflow_status_started (workflow=? AND status=? AND started_at>?)");
}

#[tokio::test]
async fn artifacts_uncertain_and_digests_are_index_lookups() {
    let (_fresh, store) = open().await;
    let one = "SELECT id FROM artifacts WHERE run_id = $1 AND step_id = $2 AND item_key = $3 ORDER BY id";
    assert_indexed("an item's artifacts", &plan_of_sql(&store, one, &["1", "s", "k"]).await, "USING COVERING INDEX artifacts_item");
    let page = "SELECT id FROM artifacts WHERE run_id = $1 AND id > $2 ORDER BY id LIMIT $3";
    assert_indexed("artifact pages", &plan_of_sql(&store, page, &["1", "0", "10"]).await, "artifacts_run");
    let history = crate::store::dashboard::digests::HISTORY;
    let plan = plan_of_sql(&store, history, &["w/route", "t", "10"]).await;
    assert_indexed("digest history", &plan, "USING INDEX route_digests_team");
    assert_indexed("digest history", &plan, "USING INDEX artifacts_item");
    let plan = plan_of_sql(&store, crate::store::dashboard::artifacts::UNCERTAIN, &["1"]).await;
    assert!(plan.join("\n").contains("USING INDEX ledger_run"), "{plan:?}");
}
