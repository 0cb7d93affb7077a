//! Run log side of the `route` step: ids already routed (read once per run, written in bulk
//! while routing streams) and per-team digest figures for "change since the previous digest".

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{now, Result, Store, StoreError};
use crate::engine::log::{DigestFigures, PreviousDigest};

enum Msg {
    /// A JSON array of ids.
    Ids(String),
    Finish(Vec<DigestFigures>),
}

/// Writes routed ids while routing runs, then the digest figures, in one transaction: if the
/// step fails half-way nothing is remembered and the next run routes the same records again.
pub struct RoutingWriter {
    tx: mpsc::Sender<Msg>,
    task: JoinHandle<Result<u64>>,
}

/// Cloneable handle for routing threads (blocking send; never call from async code).
#[derive(Clone)]
pub struct IdsSender(mpsc::Sender<Msg>);

impl IdsSender {
    /// Queues a JSON array of ids; false if the writer has stopped (its error comes from `finish`).
    pub fn send_blocking(&self, json_array: String) -> bool {
        self.0.blocking_send(Msg::Ids(json_array)).is_ok()
    }
}

impl Store {
    /// Ids routed in `scope` by runs other than `run_id`, newline-separated; `None` when there are
    /// none (the common first run costs one indexed probe). A resumed run ignores its own ids so
    /// it routes its records again.
    pub async fn routed_ids(&self, scope: &str, run_id: i64) -> Result<Option<String>> {
        let any: Option<i64> = sqlx::query_scalar("SELECT 1 FROM route_routed WHERE scope = ? AND run_id <> ? LIMIT 1")
            .bind(scope)
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        if any.is_none() {
            return Ok(None);
        }
        // One row instead of a million: row-by-row decoding would cost more than the lookup.
        let joined: Option<String> =
            sqlx::query_scalar("SELECT group_concat(record_id, char(10)) FROM route_routed WHERE scope = ? AND run_id <> ?")
                .bind(scope)
                .bind(run_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(joined)
    }

    pub async fn previous_digest(&self, scope: &str, team: &str, before_run: i64) -> Result<Option<PreviousDigest>> {
        type Row = (i64, i64, Option<f64>, Option<f64>, String);
        let row: Option<Row> = sqlx::query_as(
            "SELECT run_id, count, avg_rating, csat, created_at FROM route_digests
             WHERE scope = ? AND team = ? AND run_id < ? ORDER BY run_id DESC LIMIT 1",
        )
        .bind(scope)
        .bind(team)
        .bind(before_run)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(run_id, count, avg_rating, csat, created_at)| PreviousDigest {
            run_id,
            count: count.max(0) as u64,
            avg_rating,
            csat,
            created_at,
        }))
    }

    /// Starts the writer for one route step of one run.
    pub fn routing_writer(&self, scope: &str, run_id: i64) -> (RoutingWriter, IdsSender) {
        let (tx, rx) = mpsc::channel(8);
        let task = tokio::spawn(write_routing(self.clone(), scope.to_string(), run_id, rx));
        (RoutingWriter { tx: tx.clone(), task }, IdsSender(tx))
    }
}

impl RoutingWriter {
    /// Stores the digest figures and commits everything; returns the number of ids stored.
    pub async fn finish(self, digests: Vec<DigestFigures>) -> Result<u64> {
        // If the task already stopped on an error, the send fails and the join returns that error.
        let _ = self.tx.send(Msg::Finish(digests)).await;
        drop(self.tx);
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(StoreError::Query(sqlx::Error::Protocol(format!("routing writer stopped: {e}")))),
        }
    }
}

async fn write_routing(store: Store, scope: String, run_id: i64, mut rx: mpsc::Receiver<Msg>) -> Result<u64> {
    let mut tx = store.pool.begin().await?;
    let mut stored = 0u64;
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Ids(json) => {
                // `WHERE true` lets SQLite parse the upsert after a SELECT; a rerouted id moves to
                // this run.
                let r = sqlx::query(
                    "INSERT INTO route_routed (scope, record_id, run_id) SELECT ?, value, ? FROM json_each(?) WHERE true
                     ON CONFLICT (scope, record_id) DO UPDATE SET run_id = excluded.run_id",
                )
                .bind(&scope)
                .bind(run_id)
                .bind(json)
                .execute(&mut *tx)
                .await?;
                stored += r.rows_affected();
            }
            Msg::Finish(digests) => {
                for d in &digests {
                    sqlx::query(
                        "INSERT INTO route_digests (run_id, scope, team, count, urgent, rated, avg_rating, csat, created_at)
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                         ON CONFLICT (run_id, scope, team) DO UPDATE SET count = excluded.count, urgent = excluded.urgent,
                           rated = excluded.rated, avg_rating = excluded.avg_rating, csat = excluded.csat,
                           created_at = excluded.created_at",
                    )
                    .bind(run_id)
                    .bind(&scope)
                    .bind(&d.team)
                    .bind(d.count as i64)
                    .bind(d.urgent as i64)
                    .bind(d.rated as i64)
                    .bind(d.avg_rating)
                    .bind(d.csat)
                    .bind(now())
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                return Ok(stored);
            }
        }
    }
    // The step dropped the writer without finishing: roll back (by dropping the transaction).
    Ok(0)
}
