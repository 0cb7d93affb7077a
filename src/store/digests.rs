//! Run log side of the `route` step: ids already routed (read once per run, written in batches
//! while routing streams) and per-team digest figures for "change since the previous digest".

use std::borrow::Cow;
use std::collections::HashMap;

use futures::TryStreamExt;
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
    /// it routes its records again; an id is owned by the run that routed it last.
    pub async fn routed_ids(&self, scope: &str, run_id: i64) -> Result<Option<String>> {
        let probe = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql).bind(scope).bind(run_id).fetch_optional(self.pool());
        if probe("SELECT 1 FROM route_routed_ids WHERE scope = ? AND run_id <> ? LIMIT 1").await?.is_none() {
            return Ok(None);
        }
        let own = probe("SELECT 1 FROM route_routed_ids WHERE scope = ? AND run_id = ? LIMIT 1").await?.is_some();
        let mut rows = sqlx::query_as::<_, (i64, String)>("SELECT run_id, ids FROM route_routed_ids WHERE scope = ? ORDER BY id")
            .bind(scope)
            .fetch(self.pool());
        if !own {
            // Every stored id belongs to another run: no owner to work out, batches are joined as they come.
            let mut joined = String::new();
            while let Some((_, ids)) = rows.try_next().await? {
                for id in parse_ids(&ids)? {
                    joined.push_str(&id.0);
                    joined.push('\n');
                }
            }
            return Ok(Some(joined));
        }
        // A resumed run that stored ids before: an id counts unless this run routed it last.
        let mut owner: HashMap<String, i64> = HashMap::new();
        let mut order = Vec::new();
        while let Some((run, ids)) = rows.try_next().await? {
            for id in parse_ids(&ids)? {
                let id = id.0.into_owned();
                if owner.insert(id.clone(), run).is_none() {
                    order.push(id);
                }
            }
        }
        let mut joined = String::new();
        for id in order.iter().filter(|id| owner[*id] != run_id) {
            joined.push_str(id);
            joined.push('\n');
        }
        Ok(Some(joined))
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
        .fetch_optional(self.pool())
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
    let mut tx = store.pool().begin().await?;
    let mut stored = 0u64;
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Ids(json) => {
                // Checked here so that what is stored always reads back (`routed_ids`).
                let count = parse_ids(&json)?.len() as u64;
                sqlx::query("INSERT INTO route_routed_ids (scope, run_id, ids) VALUES (?, ?, ?)")
                    .bind(&scope)
                    .bind(run_id)
                    .bind(json)
                    .execute(&mut *tx)
                    .await?;
                stored += count;
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

/// One stored id; borrowed from the batch unless it has escapes.
#[derive(serde::Deserialize)]
struct Id<'a>(#[serde(borrow)] Cow<'a, str>);

/// The ids of one stored batch (a JSON array of strings).
fn parse_ids(json: &str) -> Result<Vec<Id<'_>>> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Query(sqlx::Error::Decode(format!("routed ids batch is not a JSON array of strings: {e}").into())))
}

#[cfg(test)]
#[path = "digests_tests.rs"]
mod tests;
