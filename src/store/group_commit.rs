//! Group commit for the ledger. Every claim must be on disk before its email leaves, and with
//! `synchronous = FULL` each commit is a sync of the log; eight emails in flight would queue for
//! eight syncs in a row. Claims that arrive together are written in one transaction by one task
//! instead: one sync for all of them, and each caller still gets its answer only once that sync
//! is done.
//! Confirms and releases share the queue: a second, unsynced queue for them was measured slower
//! (the two writers then take turns at the write lock instead of sharing a commit).

use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqlitePool};
use tokio::sync::{mpsc, oneshot, Mutex, OnceCell};

use super::{Result, StoreError};

/// One ledger statement: SQL and its text/integer arguments, in order. Plain `?` placeholders
/// only, never `?N`: a batch's statements are sent as one query and bound in sequence.
pub(crate) struct Write {
    pub sql: &'static str,
    pub args: Vec<Arg>,
}

pub(crate) enum Arg {
    Text(String),
    OptText(Option<String>),
    Int(i64),
}

struct Job {
    write: Write,
    /// Rows the statement changed, once committed.
    done: oneshot::Sender<Result<u64>>,
}

/// The queue to the writer task, started on first use.
#[derive(Clone, Debug, Default)]
pub(crate) struct GroupCommit {
    tx: Arc<OnceCell<mpsc::Sender<Job>>>,
    /// The ledger's reads before a send, batched on their own (`ledger/reads.rs`).
    pub(crate) reads: super::ledger::Lookups,
}

/// Writes in one transaction at most: enough to amortise the sync, small enough that a batch
/// never holds the write lock for long.
const MAX_BATCH: usize = 64;

impl GroupCommit {
    /// Runs `write` in the next batch; returns the rows it changed once the batch is committed.
    pub(crate) async fn write(&self, pool: &SqlitePool, gate: &Arc<Mutex<()>>, write: Write) -> Result<u64> {
        let tx = self
            .tx
            .get_or_init(|| async {
                let (tx, rx) = mpsc::channel(1024);
                tokio::spawn(writer(pool.clone(), gate.clone(), rx));
                tx
            })
            .await;
        let (done, answer) = oneshot::channel();
        tx.send(Job { write, done }).await.map_err(|_| StoreError::Batch("the ledger writer stopped".into()))?;
        answer.await.map_err(|_| StoreError::Batch("the ledger writer stopped".into()))?
    }
}

async fn writer(pool: SqlitePool, gate: Arc<Mutex<()>>, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::new();
    // One connection of its own, kept between batches: taking one from the pool each time
    // put a wait for the pool on the path of every email.
    let mut held: Option<PoolConnection<Sqlite>> = None;
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        // Like statements together, so a batch is one of few distinct queries and its prepared
        // form is reused. Jobs in one batch were sent concurrently, so any order is one they
        // could have arrived in (a key's confirm is only sent once its claim was answered).
        batch.sort_by_key(|j| j.write.sql.as_ptr() as usize);
        let results = {
            let _gate = gate.lock().await;
            commit(&pool, &mut held, &batch).await
        };
        for (job, r) in batch.drain(..).zip(results) {
            let _ = job.done.send(r);
        }
    }
}

/// Each statement's own result, or the commit's error for all of them: when the commit fails,
/// none of them happened.
async fn commit(pool: &SqlitePool, held: &mut Option<PoolConnection<Sqlite>>, batch: &[Job]) -> Vec<Result<u64>> {
    let fail_all = |e: &dyn std::fmt::Display| batch.iter().map(|_| Err(StoreError::Batch(e.to_string()))).collect();
    let mut conn = match held.take() {
        Some(c) => c,
        None => match pool.acquire().await {
            Ok(c) => c,
            Err(e) => return fail_all(&e),
        },
    };
    let results = commit_on(&mut conn, batch).await;
    // A connection whose transaction failed (a full disk) may still hold the write lock: it is
    // closed, not kept or returned to the pool (see `write_items`).
    if results.iter().any(Result::is_err) {
        conn.close_on_drop();
    } else {
        *held = Some(conn);
    }
    results
}

async fn commit_on(conn: &mut sqlx::SqliteConnection, batch: &[Job]) -> Vec<Result<u64>> {
    use futures::TryStreamExt;
    use sqlx::Executor;
    let fail_all = |e: &dyn std::fmt::Display| batch.iter().map(|_| Err(StoreError::Batch(e.to_string()))).collect();
    // Alone, a statement commits by itself: the same sync, two statements fewer.
    if let [job] = batch {
        let mut q = sqlx::query(job.write.sql);
        for a in &job.write.args {
            q = bind(q, a);
        }
        return vec![q.execute(&mut *conn).await.map(|r| r.rows_affected()).map_err(StoreError::from)];
    }
    // The whole batch as one multi-statement query: sqlx hands each query to the connection's
    // worker thread and waits for its answer, and that hop, not SQLite, was the cost of a batch
    // sent statement by statement. The statements' `?` are bound in order across them.
    let mut sql = String::from("BEGIN IMMEDIATE;");
    let mut q_args = sqlx::sqlite::SqliteArguments::default();
    for job in batch {
        sql.push_str(job.write.sql);
        sql.push(';');
        for a in &job.write.args {
            add(&mut q_args, a);
        }
    }
    sql.push_str("COMMIT;");
    // BEGIN's result, one per statement, COMMIT's. A failed statement ends the stream with its
    // error and leaves the transaction open: the caller closes the connection, which rolls it back.
    let changed: std::result::Result<Vec<u64>, sqlx::Error> = conn
        // Only the `&'static str` statements of `Write` are joined: no data is in the text.
        .fetch_many(sqlx::query_with(sqlx::AssertSqlSafe(sql), q_args))
        .try_filter_map(|e| futures::future::ready(Ok(e.left().map(|r| r.rows_affected()))))
        .try_collect()
        .await;
    match changed {
        Ok(c) if c.len() == batch.len() + 2 => c[1..=batch.len()].iter().map(|n| Ok(*n)).collect(),
        Ok(c) => fail_all(&format!("a batch of {} ledger writes gave {} results", batch.len(), c.len().saturating_sub(2))),
        Err(e) => fail_all(&e),
    }
}

fn bind<'q>(
    q: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>,
    a: &Arg,
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments> {
    match a {
        Arg::Text(s) => q.bind(s.as_str()),
        Arg::OptText(s) => q.bind(s.as_deref()),
        Arg::Int(n) => q.bind(*n),
    }
}

fn add(args: &mut sqlx::sqlite::SqliteArguments, a: &Arg) {
    use sqlx::Arguments;
    // Encoding a text or an integer cannot fail.
    let _ = match a {
        Arg::Text(s) => args.add(s.as_str()),
        Arg::OptText(s) => args.add(s.as_deref()),
        Arg::Int(n) => args.add(*n),
    };
}
