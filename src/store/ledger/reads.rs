//! The ledger's read before each send (`check_key`), batched. Alone, each check took a
//! connection from the pool and its own hand-off to SQLite's thread: 15% of the CPU of an email
//! (issue 14, measured with the check switched off). Checks that arrive together are answered by
//! one query on one connection kept for it. Reads take no write lock, so they stay apart from the
//! group commit (`group_commit.rs`): riding its batches, a check waited for their syncs, and the
//! step slowed down. PostgreSQL gets the same batches, with its own spelling of the query.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::Pool;
use tokio::sync::{mpsc, oneshot, OnceCell};

use super::Held;
use crate::store::db::Db;
use crate::store::{Result, StoreError};

struct Lookup {
    key: String,
    done: oneshot::Sender<Result<Option<Held>>>,
}

/// The queue to the reader task, started on first use.
#[derive(Clone, Debug, Default)]
pub(crate) struct Lookups {
    tx: Arc<OnceCell<mpsc::Sender<Lookup>>>,
}

/// Keys in one query at most.
const MAX_BATCH: usize = 256;

impl Lookups {
    /// The ledger's row of `key`, read in the next batch.
    pub(super) async fn held(&self, db: &Db, key: &str) -> Result<Option<Held>> {
        let tx = self
            .tx
            .get_or_init(|| async {
                let (tx, rx) = mpsc::channel(1024);
                // One statement for any number of keys (one prepared form), the keys the outer
                // loop: each is one search of the primary key, never a scan of the ledger
                // (SQLite's CROSS JOIN fixes that order; PostgreSQL's planner picks it).
                match db {
                    Db::Sqlite(pool) => tokio::spawn(reader(
                        pool.clone(),
                        "SELECT j.value AS key, l.state, l.run_id, l.owner FROM json_each($1) AS j CROSS JOIN ledger AS l ON l.key = j.value",
                        rx,
                    )),
                    Db::Pg(pool) => tokio::spawn(reader(
                        pool.clone(),
                        "SELECT j.value AS key, l.state, l.run_id, l.owner
                         FROM json_array_elements_text($1::json) AS j (value) JOIN ledger AS l ON l.key = j.value",
                        rx,
                    )),
                };
                tx
            })
            .await;
        let stopped = || StoreError::Batch("the ledger reader stopped".into());
        let (done, answer) = oneshot::channel();
        tx.send(Lookup { key: key.to_string(), done }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Answers the lookups that queue up with one query (`sql`) on a connection kept for it.
async fn reader<DB: sqlx::Database>(pool: Pool<DB>, sql: &'static str, mut rx: mpsc::Receiver<Lookup>)
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'r> Found: sqlx::FromRow<'r, DB::Row>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    let mut held: Option<PoolConnection<DB>> = None;
    let mut batch: Vec<Lookup> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(l) => batch.push(l),
                Err(_) => break,
            }
        }
        let found = read(&pool, &mut held, sql, &batch).await;
        for l in batch.drain(..) {
            let answer = match &found {
                Ok(rows) => Ok(rows.get(&l.key).cloned()),
                Err(e) => Err(StoreError::Batch(format!("cannot read the ledger: {e}"))),
            };
            let _ = l.done.send(answer);
        }
    }
}

#[derive(sqlx::FromRow)]
struct Found {
    key: String,
    state: String,
    run_id: i64,
    owner: Option<String>,
}

async fn read<DB: sqlx::Database>(
    pool: &Pool<DB>,
    held: &mut Option<PoolConnection<DB>>,
    sql: &'static str,
    batch: &[Lookup],
) -> std::result::Result<HashMap<String, Held>, String>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'r> Found: sqlx::FromRow<'r, DB::Row>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
{
    let mut conn = match held.take() {
        Some(c) => c,
        None => pool.acquire().await.map_err(|e| e.to_string())?,
    };
    let keys = serde_json::to_string(&batch.iter().map(|l| l.key.as_str()).collect::<Vec<_>>()).map_err(|e| e.to_string())?;
    let rows: Vec<Found> = sqlx::query_as(sql).bind(keys).fetch_all(&mut *conn).await.map_err(|e| e.to_string())?;
    *held = Some(conn);
    Ok(rows.into_iter().map(|f| (f.key, Held { state: f.state, run_id: f.run_id, owner: f.owner, item_key: None })).collect())
}
