//! The big run log both dashboard benchmarks read (`dashboard_reads`: the store calls alone;
//! `dashboard`: the pages through the server): 1,000 workflows of 30 runs each and one run of
//! 1,000,000 items over three steps, the last still running, with the errors, outputs,
//! screenshots and uncertain deliveries a real run leaves.

use cxflow::store::{ItemCursor, Store};

pub(crate) const WORKFLOWS: i64 = 1_000;
pub(crate) const RUNS_EACH: i64 = 30;
pub(crate) const ITEMS: i64 = 1_000_000;

/// The name of workflow `i` in the run log (and of its file, in `dashboard`).
pub(crate) fn workflow_name(i: i64) -> String {
    format!("workflow-{i:04}")
}

/// Writes the run log in one transaction by SQL alone (recursive CTEs): a million item results
/// through the engine would take minutes, and only the reads are measured. Returns the big
/// run's id; its workflow is `big`.
pub(crate) async fn seed(store: &Store) -> i64 {
    let mut tx = store.sqlite_pool().expect("the benchmark seeds a SQLite run log").begin().await.unwrap();
    // Runs of the 1,000 workflows, interleaved as a scheduler starts them: one a minute.
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 - 1)
         INSERT INTO runs (workflow, file, trigger, params, started_at, finished_at, status, error)
         SELECT 'workflow-' || printf('%04d', i % ?2), 'workflows/workflow-' || printf('%04d', i % ?2) || '.yaml',
           CASE WHEN i % 10 = 0 THEN 'manual' ELSE 'schedule' END,
           CASE WHEN i % 10 = 0 THEN '{\"since\":\"2024-05-01\",\"dry\":false}' ELSE '{}' END,
           strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-30 days', '+' || i || ' minutes'),
           strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-30 days', '+' || i || ' minutes', '+' || (i % 50) || ' seconds'),
           CASE WHEN i % 17 = 0 THEN 'failed' WHEN i % 11 = 0 THEN 'partial' ELSE 'succeeded' END,
           CASE WHEN i % 17 = 0 THEN 'step `mail` failed: smtp: connection to mail.example.test:587 timed out after 30 s; check smtp_url' END
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
    // Outputs as the steps record them: a portal confirmation (about 200 bytes), an SMTP
    // handover (about 300 bytes); errors as long as the steps' own messages.
    for (step, first) in [("fill", 0), ("mail", ITEMS / 2)] {
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT ?2 UNION ALL SELECT i + 1 FROM n WHERE i < ?3 - 1)
             INSERT INTO items (run_id, step_id, item_key, seq, status, attempts, error, output, finished_at)
             SELECT ?1, ?4, k, i - ?2 + 1, st, CASE WHEN st = 'failed' THEN 3 ELSE 1 END,
               CASE WHEN st <> 'failed' THEN NULL
                    WHEN ?4 = 'fill' THEN 'element `#refund-method` not found after 10 s on https://portal.example.test/returns/' || k || '/form (attempt 3 of 3); a screenshot was kept'
                    ELSE '550 5.1.1 <c' || i || '@example.test>: Recipient address rejected: User unknown in virtual mailbox table (attempt 3 of 3)' END,
               CASE WHEN st = 'skipped' THEN NULL
                    WHEN ?4 = 'fill' THEN '{\"url\":\"https://portal.example.test/returns/' || k || '/confirm\",\"confirmation\":\"RMA-' || printf('%08d', (i * 7919) % 100000000)
                      || '\",\"fields\":{\"order\":\"O-' || printf('%09d', i * 31) || '\",\"reason\":\"damaged in transit\",\"refund\":\"card\"},\"elapsed_ms\":' || (800 + i % 700) || '}'
                    ELSE '{\"message_id\":\"<' || lower(hex(randomblob(8))) || '.' || i || '@cxflow.example.test>\",\"to\":\"Customer ' || i || ' <c' || i || '@example.test>\",'
                      || '\"subject\":\"Your return ' || k || ' has been received\",\"template\":\"templates/return-received.hbs\",'
                      || '\"smtp\":\"250 2.0.0 Ok: queued as ' || upper(hex(randomblob(5))) || '\",\"bytes\":' || (14000 + i % 3000) || ',\"attachments\":[]}' END,
               strftime('%Y-%m-%dT%H:%M:%fZ', '2024-06-01T00:00:01.000Z', '+' || (i / 200) || ' seconds')
             FROM (SELECT i, 'T-' || printf('%07d', i - ?2) AS k,
                     CASE WHEN i % 97 = 0 THEN 'failed' WHEN i % 13 = 0 THEN 'skipped' ELSE 'ok' END AS st FROM n)",
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
    // A screenshot of every failed browser item (about 5,000), every 100th email's exactly-once
    // claim, ten of them left uncertain (`sending`) as a crash leaves them, a year of digests.
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
         SELECT 'big/mail/' || item_key, 'big', run_id, step_id, item_key, CASE WHEN seq % 50000 = 0 THEN 'sending' ELSE 'sent' END, finished_at
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

/// The cursor halfway through the running step (item 750,000 of the run): where a reader
/// paging on would be.
pub(crate) async fn deep_cursor(store: &Store, run: i64) -> ItemCursor {
    let (row, seq): (i64, i64) =
        sqlx::query_as("SELECT rowid, seq FROM items WHERE run_id = ? AND step_id = 'mail' AND item_key = 'T-0250000'")
            .bind(run)
            .fetch_one(store.sqlite_pool().expect("the benchmark seeds a SQLite run log"))
            .await
            .unwrap();
    ItemCursor { position: 2, seq, row }
}
