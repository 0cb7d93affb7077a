//! Run log side of the `route` step: ids already routed (read once per run, written in batches
//! while routing streams) and per-team digest figures for "change since the previous digest".

use std::borrow::Cow;
use std::collections::HashMap;

use futures::TryStreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::db::on_db;
use super::{now, Backend, Result, Store, StoreError};
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
        let probe = |sql: &'static str| async move {
            on_db!(&self.db, pool => sqlx::query_scalar::<_, i64>(sql).bind(scope).bind(run_id).fetch_optional(pool).await)
        };
        if probe("SELECT run_id FROM route_routed_ids WHERE scope = $1 AND run_id <> $2 LIMIT 1").await?.is_none() {
            return Ok(None);
        }
        let own = probe("SELECT run_id FROM route_routed_ids WHERE scope = $1 AND run_id = $2 LIMIT 1").await?.is_some();
        // Batches in the order they were stored (on PostgreSQL, committed: see `write_routing`),
        // parsed here rather than unnested in SQL: a batch is one row to fetch, not 5,000.
        let mut joined = Joined::new(run_id, own);
        on_db!(&self.db, pool => {
            let mut rows = sqlx::query_as::<_, (i64, String)>("SELECT run_id, ids FROM route_routed_ids WHERE scope = $1 ORDER BY id")
                .bind(scope)
                .fetch(pool);
            while let Some((run, ids)) = rows.try_next().await? {
                joined.push(run, &ids)?;
            }
            Ok::<(), StoreError>(())
        })?;
        Ok(Some(joined.finish()))
    }

    pub async fn previous_digest(&self, scope: &str, team: &str, before_run: i64) -> Result<Option<PreviousDigest>> {
        type Row = (i64, i64, Option<f64>, Option<f64>, String);
        let row: Option<Row> = on_db!(&self.db, pool => sqlx::query_as(
            "SELECT run_id, count, avg_rating, csat, created_at FROM route_digests
             WHERE scope = $1 AND team = $2 AND run_id < $3 ORDER BY run_id DESC LIMIT 1",
        )
        .bind(scope)
        .bind(team)
        .bind(before_run)
        .fetch_optional(pool)
        .await)?;
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

/// The ids of stored batches, read in order, joined for `routed_ids`.
struct Joined {
    run_id: i64,
    /// Whether `run_id` stored batches too: then each id's owner (the run of its latest batch)
    /// must be known before it can be counted.
    own: bool,
    joined: String,
    owner: HashMap<String, i64>,
    order: Vec<String>,
}

impl Joined {
    fn new(run_id: i64, own: bool) -> Joined {
        Joined { run_id, own, joined: String::new(), owner: HashMap::new(), order: Vec::new() }
    }

    fn push(&mut self, run: i64, ids: &str) -> Result<()> {
        for id in parse_ids(ids)? {
            if !self.own {
                // Every stored id belongs to another run: no owner to work out, batches are joined as they come.
                self.joined.push_str(&id.0);
                self.joined.push('\n');
                continue;
            }
            let id = id.0.into_owned();
            if self.owner.insert(id.clone(), run).is_none() {
                self.order.push(id);
            }
        }
        Ok(())
    }

    fn finish(mut self) -> String {
        // A resumed run that stored ids before: an id counts unless this run routed it last.
        for id in self.order.iter().filter(|id| self.owner[*id] != self.run_id) {
            self.joined.push_str(id);
            self.joined.push('\n');
        }
        self.joined
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

/// Routing's one transaction. An id belongs to the run of its latest batch, the batch with the
/// highest `id`. On SQLite the first insert takes the write lock until the commit, so ids follow
/// the order of commits. On PostgreSQL two runs of one step can route at once, and a sequence
/// hands out ids as rows are inserted, not as they commit: so before committing, this writer
/// takes the scope's lock (held to the commit) and gives its batches new ids, after those of
/// every batch committed before it. The last run to commit owns the ids, as on SQLite.
async fn write_routing(store: Store, scope: String, run_id: i64, mut rx: mpsc::Receiver<Msg>) -> Result<u64> {
    let pg = store.backend() == Backend::Postgres;
    on_db!(&store.db, pool => {
        let mut tx = pool.begin().await?;
        let mut stored = 0u64;
        // PostgreSQL: the ids of this writer's batches, renumbered at the end.
        let mut batches: Vec<i64> = Vec::new();
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Ids(json) => {
                    // Checked here so that what is stored always reads back (`routed_ids`).
                    let count = parse_ids(&json)?.len() as u64;
                    let insert = store.db.sql(
                        "INSERT INTO route_routed_ids (scope, run_id, ids) VALUES ($1, $2, $3)",
                        "INSERT INTO route_routed_ids (scope, run_id, ids) VALUES ($1, $2, $3) RETURNING id",
                    );
                    if pg {
                        batches.push(sqlx::query_scalar(insert).bind(&scope).bind(run_id).bind(json).fetch_one(&mut *tx).await?);
                    } else {
                        sqlx::query(insert).bind(&scope).bind(run_id).bind(json).execute(&mut *tx).await?;
                    }
                    stored += count;
                }
                Msg::Finish(digests) => {
                    if pg && !batches.is_empty() {
                        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('cxflow route_routed_ids ' || $1, 0))")
                            .bind(&scope)
                            .execute(&mut *tx)
                            .await?;
                        // Ids read back from the database: the list is digits and commas, nothing to inject.
                        let list = batches.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "UPDATE route_routed_ids SET id = nextval(pg_get_serial_sequence('route_routed_ids', 'id'))
                             WHERE id IN ({list})"
                        )))
                        .execute(&mut *tx)
                        .await?;
                    }
                    for d in &digests {
                        sqlx::query(
                            "INSERT INTO route_digests (run_id, scope, team, count, urgent, rated, avg_rating, csat, created_at)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
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
    })
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
