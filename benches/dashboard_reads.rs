//! What a run page and the overview cost the store on a big run log: one run of 1,000,000
//! items over four steps, and 1,000 workflows of 30 runs each. `cargo bench --bench
//! dashboard_reads` (release). Prints the median and p95 of each read; asserts nothing about time.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::Utc;
use cxflow::store::{ItemCursor, ItemStatus, ItemsQuery, RunStatus, RunsQuery, Store};

const WORKFLOWS: i64 = 1_000;
const RUNS_EACH: i64 = 30;
const ITEMS: i64 = 1_000_000;
const REPS: usize = 20;

/// The run log, written in one transaction by SQL alone (recursive CTEs): a million
/// item results through the engine would take minutes, and only the reads are measured.
async fn seed(store: &Store) -> i64 {
    let mut tx = store.pool().begin().await.unwrap();
    // Runs of the 1,000 workflows, interleaved as a scheduler starts them: one a minute.
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 - 1)
         INSERT INTO runs (workflow, file, trigger, params, started_at, finished_at, status, error)
         SELECT 'workflow-' || printf('%04d', i % ?2), 'workflows/w.yaml', CASE WHEN i % 10 = 0 THEN 'manual' ELSE 'schedule' END, '{}',
           strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-30 days', '+' || i || ' minutes'),
           strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-30 days', '+' || i || ' minutes', '+' || (i % 50) || ' seconds'),
           CASE WHEN i % 17 = 0 THEN 'failed' WHEN i % 11 = 0 THEN 'partial' ELSE 'succeeded' END,
           CASE WHEN i % 17 = 0 THEN 'step `mail` failed' END
         FROM n",
    )
    .bind(WORKFLOWS * RUNS_EACH)
    .bind(WORKFLOWS)
    .execute(&mut *tx)
    .await
    .unwrap();
    let run: i64 = sqlx::query_scalar(
        "INSERT INTO runs (workflow, file, trigger, params, started_at, status) VALUES ('big', 'workflows/big.yaml', 'schedule', '{}',
           strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 hour'), 'running') RETURNING id",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    // A source, two per-item steps of half a million items each (the second still running), a sink.
    sqlx::query(
        "INSERT INTO steps (run_id, step_id, position, kind, status, ok, failed, skipped, started_at, finished_at) VALUES
           (?1, 'load', 0, 'read_csv', 'succeeded', 500000, 0, 0, '2024-06-01T00:00:00.000Z', '2024-06-01T00:00:01.000Z'),
           (?1, 'fill', 1, 'browser', 'partial', 0, 0, 0, '2024-06-01T00:00:01.000Z', '2024-06-01T00:30:00.000Z'),
           (?1, 'mail', 2, 'send_email', 'running', 0, 0, 0, '2024-06-01T00:30:00.000Z', NULL)",
    )
    .bind(run)
    .execute(&mut *tx)
    .await
    .unwrap();
    for (step, first) in [("fill", 0), ("mail", ITEMS / 2)] {
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT ?2 UNION ALL SELECT i + 1 FROM n WHERE i < ?3 - 1)
             INSERT INTO items (run_id, step_id, item_key, seq, status, attempts, error, output, finished_at)
             SELECT ?1, ?4, 'T-' || printf('%07d', i - ?2), i - ?2 + 1,
               CASE WHEN i % 97 = 0 THEN 'failed' WHEN i % 13 = 0 THEN 'skipped' ELSE 'ok' END,
               CASE WHEN i % 97 = 0 THEN 3 ELSE 1 END,
               CASE WHEN i % 97 = 0 THEN '550 mailbox unavailable' END,
               '{\"message_id\":\"<' || i || '@cxflow>\",\"to\":\"c' || i || '@example.test\"}',
               '2024-06-01T00:10:00.000Z'
             FROM n",
        )
        .bind(run)
        .bind(first)
        .bind(first + ITEMS / 2)
        .bind(step)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    sqlx::query(
        "UPDATE steps SET ok = (SELECT count(*) FROM items WHERE run_id = ?1 AND step_id = 'fill' AND status = 'ok'),
                   failed = (SELECT count(*) FROM items WHERE run_id = ?1 AND step_id = 'fill' AND status = 'failed'),
                   skipped = (SELECT count(*) FROM items WHERE run_id = ?1 AND step_id = 'fill' AND status = 'skipped')
                 WHERE run_id = ?1 AND step_id = 'fill'",
    )
    .bind(run)
    .execute(&mut *tx)
    .await
    .unwrap();
    // A screenshot of every failed browser item, a few uncertain deliveries, a year of digests.
    sqlx::query(
        "INSERT INTO artifacts (run_id, step_id, item_key, kind, path, created_at)
         SELECT run_id, step_id, item_key, 'screenshot', 'artifacts/run-' || run_id || '/' || item_key || '.png', finished_at
         FROM items WHERE run_id = ?1 AND step_id = 'fill' AND status = 'failed'",
    )
    .bind(run)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO ledger (key, workflow, run_id, step_id, item_key, state, updated_at)
         SELECT 'big/mail/' || item_key, 'big', run_id, step_id, item_key, CASE WHEN seq % 1000 = 0 THEN 'sending' ELSE 'sent' END, finished_at
         FROM items WHERE run_id = ?1 AND step_id = 'mail' AND seq % 100 = 0",
    )
    .bind(run)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO route_digests (run_id, scope, team, count, urgent, rated, avg_rating, csat, created_at)
         SELECT r.id, r.workflow || '/route', 'team-' || t.value, 40, 3, 20, 4.1, 72.5, r.started_at
         FROM runs r, json_each('[1,2,3,4,5,6,7,8]') t WHERE r.workflow IN ('workflow-0001', 'workflow-0002')",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    run
}

/// Median and 95th percentile of `REPS` runs of `f`.
async fn time<T, F: Future<Output = T>>(label: &str, mut f: impl FnMut() -> F) {
    let mut d: Vec<Duration> = Vec::with_capacity(REPS);
    f().await; // a first run warms the page cache, as a server's would be
    for _ in 0..REPS {
        let t = Instant::now();
        std::hint::black_box(f().await);
        d.push(t.elapsed());
    }
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    let p95 = d[(REPS * 95).div_ceil(100) - 1];
    println!("  {label:<44} median {:>8.2} ms   p95 {:>8.2} ms", ms(d[REPS / 2]), ms(p95));
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Store::open(&format!("sqlite://{}", dir.path().join("runlog.sqlite").display())).await.unwrap();
        let t = Instant::now();
        let run = seed(&store).await;
        let stats = store.run_log_stats().await.unwrap();
        println!(
            "run log: {} runs, {} items, {:.0} MB, seeded in {:.1} s",
            stats.runs,
            stats.items,
            stats.bytes as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );

        // Halfway through the running step: where a reader paging on would be.
        let (row, seq): (i64, i64) =
            sqlx::query_as("SELECT rowid, seq FROM items WHERE run_id = ? AND step_id = 'mail' AND item_key = 'T-0250000'")
                .bind(run)
                .fetch_one(store.pool())
                .await
                .unwrap();
        let deep = ItemCursor { position: 2, seq, row };
        let items = |q: ItemsQuery| {
            let store = store.clone();
            move || {
                let store = store.clone();
                let q = q.clone();
                async move { store.items_page(run, &q).await.unwrap() }
            }
        };
        println!("run page of run {run} (1,000,000 items):");
        time("run", || store.run(run)).await;
        time("item_counts (one step counted live)", || store.item_counts(run)).await;
        time("items_page first 100", items(ItemsQuery::default())).await;
        time("items_page 100 at item 750,000 (keyset)", items(ItemsQuery { after: Some(deep), ..Default::default() })).await;
        time("items_page status=failed", items(ItemsQuery { status: Some(ItemStatus::Failed), ..Default::default() })).await;
        let q = ItemsQuery { status: Some(ItemStatus::Failed), after: Some(deep), ..Default::default() };
        time("items_page status=failed at 750,000", items(q)).await;
        time("items_page step=mail, 500 rows", items(ItemsQuery { step: Some("mail".into()), limit: 500, ..Default::default() })).await;
        time("items_page q=T-01234 (20 matches)", items(ItemsQuery { q: Some("T-01234".into()), ..Default::default() })).await;
        time("items_page q=T- (every key)", items(ItemsQuery { q: Some("T-".into()), ..Default::default() })).await;
        time("items_page q=nothing", items(ItemsQuery { q: Some("X".into()), ..Default::default() })).await;
        time("artifacts_with_ids first 100", || store.artifacts_with_ids(run, None, 100)).await;
        time("uncertain_for_run", || store.uncertain_for_run(run)).await;
        let page = || async {
            let run = store.run(run).await.unwrap();
            let counts = store.item_counts(run.id).await.unwrap();
            let items = store.items_page(run.id, &ItemsQuery::default()).await.unwrap();
            let arts = store.artifacts_with_ids(run.id, None, 100).await.unwrap();
            let unc = store.uncertain_for_run(run.id).await.unwrap();
            (counts, items.rows.len(), arts.rows.len(), unc)
        };
        time("whole run page (the five above, in turn)", page).await;

        println!("overview and lists ({} workflows x {} runs):", WORKFLOWS, RUNS_EACH);
        let names: Vec<String> = (0..WORKFLOWS).map(|i| format!("workflow-{i:04}")).collect();
        time("workflow_summaries for 1,000 workflows", || store.workflow_summaries(&names, Utc::now())).await;
        let newest = RunsQuery { limit: 50, ..Default::default() };
        time("runs_page newest 50", || store.runs_page(&newest)).await;
        let q = RunsQuery { before: Some(15_000), limit: 50, ..Default::default() };
        time("runs_page 50 before id 15,000", || store.runs_page(&q)).await;
        let q = RunsQuery { workflow: Some("workflow-0007".into()), status: Some(RunStatus::Succeeded), limit: 50, ..Default::default() };
        time("runs_page workflow + status", || store.runs_page(&q)).await;
        let q = RunsQuery { status: Some(RunStatus::Failed), limit: 50, ..Default::default() };
        time("runs_page status=failed", || store.runs_page(&q)).await;
        time("digest_teams", || store.digest_teams()).await;
        time("digest_history (30 points)", || store.digest_history("workflow-0001/route", "team-3", 100)).await;
        time("run_log_stats (counts every item)", || store.run_log_stats()).await;
    });
}
