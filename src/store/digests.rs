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
    /// A batch as stored, with the number of ids in it; or why it cannot be.
    Ids(Result<(Stored, u64)>),
    Finish(Vec<DigestFigures>),
}

/// A batch of ids as the backend stores it. SQLite has no compression of its own, so there the
/// JSON array is compressed (a million ids: 13 MB of run log written in the step's transaction,
/// then copied again by the checkpoint after it, and ids are never pruned; compressed, 0.7 MB).
/// PostgreSQL compresses large values itself (TOAST) and keeps the text, which its view
/// `route_routed` reads.
enum Stored {
    Json(String),
    Zstd(Vec<u8>),
}

/// zstd's fast level: the ids of a batch repeat each other, so it already compresses them 19 to 1.
const ZSTD_LEVEL: i32 = 1;
/// Every zstd frame begins with these bytes; a stored JSON array begins with `[`.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Writes routed ids while routing runs, then the digest figures, in one transaction: if the
/// step fails half-way nothing is remembered and the next run routes the same records again.
pub struct RoutingWriter {
    tx: mpsc::Sender<Msg>,
    task: JoinHandle<Result<u64>>,
}

/// Cloneable handle for routing threads (blocking send; never call from async code).
#[derive(Clone)]
pub struct IdsSender {
    tx: mpsc::Sender<Msg>,
    compress: bool,
}

impl IdsSender {
    /// Queues a JSON array of ids; false if the writer has stopped (its error comes from `finish`).
    /// The batch is checked and compressed here, on the routing thread that calls, rather than
    /// on the writer's, which the routing threads share.
    pub fn send_blocking(&self, json_array: String) -> bool {
        // Checked here so that what is stored always reads back (`routed_ids`).
        let batch = parse_ids(&json_array)
            .map(|ids| ids.len() as u64)
            .map_err(|why| StoreError::Query(sqlx::Error::Decode(format!("a batch of routed ids {why}").into())));
        let batch = batch.and_then(|count| {
            if !self.compress {
                return Ok((Stored::Json(json_array), count));
            }
            let packed = zstd::bulk::compress(json_array.as_bytes(), ZSTD_LEVEL)
                .map_err(|e| StoreError::Query(sqlx::Error::Encode(format!("compressing a batch of routed ids: {e}").into())))?;
            Ok((Stored::Zstd(packed), count))
        });
        self.tx.blocking_send(Msg::Ids(batch)).is_ok()
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
        let mut joined = Joined::new(run_id, own);
        self.each_batch(scope, |run, ids| joined.push(run, ids)).await?;
        Ok(Some(joined.finish()))
    }

    /// Every id routed in `scope` with the run that owns it (the run that routed it last), in
    /// the order they were first routed (`cxflow routed`).
    pub async fn routed_owners(&self, scope: &str) -> Result<Vec<(String, i64)>> {
        let mut all = Joined::new(0, true);
        self.each_batch(scope, |run, ids| all.push(run, ids)).await?;
        let Joined { owner, order, .. } = all;
        Ok(order
            .into_iter()
            .map(|id| {
                let run = owner[&id];
                (id, run)
            })
            .collect())
    }

    /// Calls `f` with each stored batch of `scope` (its run and its JSON array), in the order
    /// they were stored (on PostgreSQL, committed: see `write_routing`). Batches are parsed here
    /// rather than unnested in SQL: a batch is one row to fetch, not 5,000.
    async fn each_batch(&self, scope: &str, mut f: impl FnMut(i64, &str) -> std::result::Result<(), String>) -> Result<()> {
        on_db!(&self.db, pool => {
            let select = self.db.sql(
                "SELECT id, run_id, CAST(ids AS BLOB) FROM route_routed_ids WHERE scope = $1 ORDER BY id",
                "SELECT id, run_id, convert_to(ids, 'UTF8') FROM route_routed_ids WHERE scope = $1 ORDER BY id",
            );
            let mut rows = sqlx::query_as::<_, (i64, i64, Vec<u8>)>(select).bind(scope).fetch(pool);
            while let Some((id, run, ids)) = rows.try_next().await? {
                unpack(ids).and_then(|json| f(run, &json)).map_err(|why| StoreError::DamagedIds { id, scope: scope.to_string(), why })?;
            }
            Ok::<(), StoreError>(())
        })
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
        let compress = self.backend() == Backend::Sqlite;
        (RoutingWriter { tx: tx.clone(), task }, IdsSender { tx, compress })
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

    fn push(&mut self, run: i64, ids: &str) -> std::result::Result<(), String> {
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
                Msg::Ids(batch) => {
                    let (batch, count) = batch?;
                    let insert = store.db.sql(
                        "INSERT INTO route_routed_ids (scope, run_id, ids) VALUES ($1, $2, $3)",
                        "INSERT INTO route_routed_ids (scope, run_id, ids) VALUES ($1, $2, $3) RETURNING id",
                    );
                    if pg {
                        let q = sqlx::query_scalar(insert).bind(&scope).bind(run_id);
                        let q = match batch {
                            Stored::Json(json) => q.bind(json),
                            Stored::Zstd(packed) => q.bind(packed),
                        };
                        batches.push(q.fetch_one(&mut *tx).await?);
                    } else {
                        let q = sqlx::query(insert).bind(&scope).bind(run_id);
                        let q = match batch {
                            Stored::Json(json) => q.bind(json),
                            Stored::Zstd(packed) => q.bind(packed),
                        };
                        q.execute(&mut *tx).await?;
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

/// A stored batch as the JSON array it holds: compressed (SQLite, from migration 0014 on) or as
/// written; or what is wrong with it.
pub(super) fn unpack(stored: Vec<u8>) -> std::result::Result<String, String> {
    let json = if stored.starts_with(&ZSTD_MAGIC) {
        zstd::stream::decode_all(stored.as_slice()).map_err(|e| format!("cannot be decompressed ({e})"))?
    } else {
        stored
    };
    String::from_utf8(json).map_err(|_| "is not UTF-8".to_string())
}

/// The ids of one stored batch (a JSON array of strings); or what is wrong with it.
fn parse_ids(json: &str) -> std::result::Result<Vec<Id<'_>>, String> {
    serde_json::from_str(json).map_err(|e| format!("is not a JSON array of strings ({e})"))
}

#[cfg(test)]
#[path = "digests_tests.rs"]
mod tests;
