//! PostgreSQL's plans of the exact SQL each dashboard read sends, where `plans.rs` asks SQLite
//! for an index: the same index is scanned, no table is read whole, and where SQLite may not
//! sort apart (no temporary b-tree) neither may PostgreSQL (no `Sort` node).
//!
//! PostgreSQL plans by statistics, and a small log's say that reading a table whole and sorting
//! it is cheapest. So the connection asking turns sequential scans and sorts off
//! (`enable_seqscan`, `enable_sort`): the planner still uses them when nothing else can answer,
//! so a plan without them shows that the indexes serve each read, filter and order, which is
//! what a large log needs. The log is vacuumed and analyzed first (small tables are read whole,
//! so the statistics are always the same), so the plans do not change with whether autovacuum
//! got to it yet.

use serde_json::Value;
use sqlx::{AssertSqlSafe, PgConnection, Postgres, QueryBuilder};

use super::*;
use crate::store::dashboard::artifacts::UNCERTAIN;
use crate::store::dashboard::digests::HISTORY_PG;
use crate::store::dashboard::items::{by_key, by_seq, StepRange, STEP_COUNTS};
use crate::store::dashboard::runs::{runs_sql, LAST_RUNS_PG, RECENT_AND_FAILURES_PG};
use crate::store::db::Db;

/// A small log: two workflows' runs, a step's items in every status, artifacts, ledger keys and
/// digests. Written directly, since only the plans matter.
const SMALL_LOG: &[&str] = &[
    "INSERT INTO runs (workflow, file, trigger, started_at, finished_at, status)
     SELECT CASE WHEN g % 2 = 0 THEN 'a' ELSE 'cx/b' END, 'w.yaml', CASE WHEN g % 3 = 0 THEN 'schedule' ELSE 'manual' END,
            '2024-06-01T10:00:00.000Z', '2024-06-01T10:00:01.000Z', CASE WHEN g % 4 = 0 THEN 'failed' ELSE 'succeeded' END
     FROM generate_series(1, 40) g",
    "INSERT INTO steps (run_id, step_id, position, kind, status, started_at) SELECT id, 's', 0, 'send_email', 'running', started_at FROM runs",
    "INSERT INTO items (run_id, step_id, item_key, seq, status, attempts, finished_at)
     SELECT r.id, 's', 'T-' || g, g, (ARRAY['ok', 'failed', 'skipped'])[g % 3 + 1], 1, '2024-06-01T10:00:01.000Z'
     FROM runs r, generate_series(1, 30) g",
    "INSERT INTO artifacts (run_id, step_id, item_key, kind, path, created_at)
     SELECT r.id, 's', 'T-' || g, 'screenshot', 'a.png', '2024-06-01T10:00:01.000Z' FROM runs r, generate_series(1, 30) g",
    "INSERT INTO ledger (key, workflow, run_id, step_id, item_key, state, updated_at)
     SELECT 'k' || r.id || '-' || g, r.workflow, r.id, 's', 'T-' || g, CASE WHEN g = 1 THEN 'sending' ELSE 'sent' END, '2024-06-01T10:00:01.000Z'
     FROM runs r, generate_series(1, 5) g",
    "INSERT INTO route_digests (run_id, scope, team, count, urgent, rated, created_at)
     SELECT r.id, r.workflow || '/route', t, 1, 0, 0, '2024-06-01T10:00:01.000Z' FROM runs r, unnest(ARRAY['Billing', 'R&D']) t",
    "VACUUM ANALYZE",
];

/// The connection that asks, seeded with the small log, sequential scans and sorts off.
async fn asker(store: &Store) -> sqlx::pool::PoolConnection<Postgres> {
    let Db::Pg(pool) = &store.db else { unreachable!("PostgreSQL's plans") };
    let mut conn = pool.acquire().await.unwrap();
    for sql in SMALL_LOG.iter().chain(&["SET enable_seqscan = off", "SET enable_sort = off"]) {
        sqlx::query(*sql).execute(&mut *conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    conn
}

/// Every node of a plan, with the plan's sub-plans (`InitPlan`, `SubPlan`).
fn nodes(plan: &Value) -> Vec<&Value> {
    let mut out = vec![plan];
    if let Some(children) = plan.get("Plans").and_then(Value::as_array) {
        for c in children {
            out.extend(nodes(c));
        }
    }
    out
}

struct Plan(Value);

impl Plan {
    fn indexes(&self) -> Vec<&str> {
        nodes(&self.0["Plan"]).into_iter().filter_map(|n| n.get("Index Name").and_then(Value::as_str)).collect()
    }

    fn node_types(&self) -> Vec<&str> {
        nodes(&self.0["Plan"]).into_iter().filter_map(|n| n["Node Type"].as_str()).collect()
    }

    /// `index` is scanned and no table is read whole; `sorted`: a `Sort` node is allowed.
    fn assert_indexed(&self, what: &str, index: &str, sorted: bool) {
        let text = serde_json::to_string_pretty(&self.0).unwrap();
        assert!(self.indexes().contains(&index), "{what}: expected an index scan of `{index}` in\n{text}");
        for ty in self.node_types() {
            assert!(ty != "Seq Scan", "{what}: a sequential scan in\n{text}");
            assert!(sorted || !ty.contains("Sort"), "{what}: `{ty}` in\n{text}");
        }
    }
}

async fn plan_of(conn: &mut PgConnection, mut b: QueryBuilder<Postgres>) -> Plan {
    let (plan,): (Value,) = b.build_query_as().fetch_one(conn).await.unwrap();
    Plan(plan[0].clone())
}

enum Arg {
    Int(i64),
    Text(&'static str),
}

async fn plan_of_sql(conn: &mut PgConnection, sql: &str, args: &[Arg]) -> Plan {
    let mut q = sqlx::query_as::<_, (Value,)>(AssertSqlSafe(format!("EXPLAIN (FORMAT JSON) {sql}")));
    for a in args {
        q = match a {
            Arg::Int(i) => q.bind(*i),
            Arg::Text(s) => q.bind(*s),
        };
    }
    let (plan,) = q.fetch_one(conn).await.unwrap();
    Plan(plan[0].clone())
}

fn explain() -> QueryBuilder<Postgres> {
    QueryBuilder::new("EXPLAIN (FORMAT JSON) ")
}

#[tokio::test]
async fn item_pages_and_key_search_are_index_ranges() {
    let fresh = crate::store::testing::postgres().await;
    let store = fresh.open().await;
    let mut conn = asker(&store).await;
    let after = Some(ItemCursor { position: 0, seq: 10, row: 12 });
    for after in [None, after] {
        let s = StepRange { run_id: 1, step_id: "s", position: 0, after, want: 101 };
        for status in [None, Some(ItemStatus::Failed)] {
            let mut b = explain();
            by_seq(&mut b, &s, status);
            let what = format!("items by seq, {status:?}, after {after:?}");
            plan_of(&mut conn, b).await.assert_indexed(&what, "items_step_status_seq", false);
            let mut b = explain();
            by_key(&mut b, &s, "T-1", status, after.map(|_| "T-10".to_string()));
            plan_of(&mut conn, b).await.assert_indexed("key search", "items_pkey", false);
        }
    }
    let plan = plan_of_sql(&mut conn, STEP_COUNTS, &[Arg::Int(1), Arg::Text("s")]).await;
    plan.assert_indexed("a running step's counts", "items_step_status_seq", false);
    let plan = plan_of_sql(&mut conn, crate::store::queries::ITEM_OUTPUTS, &[Arg::Int(1), Arg::Text("s")]).await;
    plan.assert_indexed("a step's outputs, read by the next", "items_step_status_seq", false);
    // The key a key search's cursor starts after: one probe of the index per status.
    let args = [Arg::Int(12), Arg::Int(1), Arg::Text("s"), Arg::Int(10)];
    let plan = plan_of_sql(&mut conn, crate::store::dashboard::items::CURSOR_KEY_PG, &args).await;
    plan.assert_indexed("a cursor's key", "items_step_status_seq", false);
}

#[tokio::test]
async fn runs_list_and_overview_are_index_lookups() {
    let fresh = crate::store::testing::postgres().await;
    let store = fresh.open().await;
    let mut conn = asker(&store).await;
    let t = parse_time_bound("2024-06-01", false).ok();
    let cases = [
        // Newest first by id, stopping at a full page.
        (RunsQuery::default(), "runs_pkey"),
        (RunsQuery { before: Some(100), ..Default::default() }, "runs_pkey"),
        (RunsQuery { workflow: Some("a".into()), before: Some(100), ..Default::default() }, "runs_workflow"),
        (RunsQuery { workflow: Some("a".into()), status: Some(RunStatus::Failed), ..Default::default() }, "runs_workflow_status"),
        (RunsQuery { status: Some(RunStatus::Failed), ..Default::default() }, "runs_status"),
        (RunsQuery { trigger: Some(TriggerKind::Schedule), ..Default::default() }, "runs_trigger"),
        (RunsQuery { started_from: t, started_to: t, ..Default::default() }, "runs_pkey"),
    ];
    for (q, index) in cases {
        let mut b = explain();
        runs_sql(&mut b, &q, 101);
        plan_of(&mut conn, b).await.assert_indexed(&format!("{q:?}"), index, false);
    }
    let names = Arg::Text(r#"["a","cx/b"]"#);
    plan_of_sql(&mut conn, LAST_RUNS_PG, &[names]).await.assert_indexed("last runs", "runs_workflow", false);
    let names = Arg::Text(r#"["a","cx/b"]"#);
    let plan = plan_of_sql(&mut conn, RECENT_AND_FAILURES_PG, &[names, Arg::Int(20), Arg::Text("2024-06-01")]).await;
    plan.assert_indexed("recent runs", "runs_workflow", false);
    plan.assert_indexed("failures", "runs_workflow_status_started", false);
}

#[tokio::test]
async fn artifacts_uncertain_and_digests_are_index_lookups() {
    let fresh = crate::store::testing::postgres().await;
    let store = fresh.open().await;
    let mut conn = asker(&store).await;
    let one = crate::store::dashboard::artifacts::OF_ITEM;
    let plan = plan_of_sql(&mut conn, one, &[Arg::Int(1), Arg::Text("s"), Arg::Text("T-1")]).await;
    plan.assert_indexed("an item's artifacts", "artifacts_item", false);
    let page = crate::store::dashboard::artifacts::PAGE;
    let plan = plan_of_sql(&mut conn, page, &[Arg::Int(1), Arg::Int(0), Arg::Int(10)]).await;
    plan.assert_indexed("artifact pages", "artifacts_run", false);
    let plan = plan_of_sql(&mut conn, HISTORY_PG, &[Arg::Text("a/route"), Arg::Text("Billing"), Arg::Int(10)]).await;
    plan.assert_indexed("digest history", "route_digests_team", false);
    plan.assert_indexed("digest history", "artifacts_item", false);
    // SQLite sorts a run's few uncertain keys too.
    let plan = plan_of_sql(&mut conn, UNCERTAIN, &[Arg::Int(1)]).await;
    plan.assert_indexed("uncertain deliveries", "ledger_run", true);
}
