//! Group commit for the ledger. Every claim must be on disk before its email leaves, and with
//! `synchronous = FULL` each commit is a sync of the log; eight emails in flight would queue for
//! eight syncs in a row. Claims that arrive together are written in one transaction by one task
//! instead: one sync for all of them, and each caller still gets its answer only once that sync
//! is done.
//! Confirms and releases share the queue: a second, unsynced queue for them was measured slower
//! (the two writers then take turns at the write lock instead of sharing a commit).
//! On PostgreSQL the batch is one transaction of its statements, sent one by one (a query with
//! arguments holds one statement there): one commit, so one flush of the WAL, for all of them.

use std::borrow::Borrow;
use std::sync::{Arc, OnceLock};

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool};
use tokio::sync::{mpsc, oneshot, Mutex, OnceCell};

use super::db::Db;
use super::{Result, StoreError};

/// A ledger statement, written once with `$1, $2, …`: each number once, in the order they
/// appear, so that the same arguments, in order, bind to it on both databases. PostgreSQL runs
/// this text. SQLite runs it with a plain `?` for each: a batch's statements are joined into one
/// query whose arguments bind in sequence across them, where `$N` would count from the start of
/// the whole query.
pub(crate) struct Statement {
    text: &'static str,
    sqlite: OnceLock<String>,
}

impl Statement {
    pub(crate) const fn new(text: &'static str) -> Statement {
        Statement { text, sqlite: OnceLock::new() }
    }

    /// PostgreSQL's text (`$1, $2, …`).
    pub(crate) fn pg(&'static self) -> &'static str {
        self.text
    }

    /// SQLite's text (`?`), made on first use.
    pub(crate) fn sqlite(&'static self) -> &'static str {
        self.sqlite.get_or_init(|| plain_placeholders(self.text))
    }
}

/// `sql` with each `$N` replaced by `?`; panics unless they are `$1, $2, …` in order, each once
/// (a mistake in a statement of this module, which every ledger test would meet at once).
fn plain_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut next = 1;
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..].bytes().take_while(u8::is_ascii_digit).count();
        let n: usize = rest[at + 1..at + 1 + digits].parse().unwrap_or(0);
        assert_eq!(n, next, "ledger statement placeholders must be $1, $2, … in order, each once: {sql}");
        out.push('?');
        next += 1;
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    out
}

/// One ledger statement with its text/integer arguments, in order, and the delivery key it
/// writes (PostgreSQL's batches take the keys' row locks in key order).
pub(crate) struct Write {
    pub sql: &'static Statement,
    pub key: String,
    pub args: Vec<Arg>,
}

pub(crate) enum Arg {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
}

struct Job {
    write: Write,
    /// Rows the statement changed, once committed.
    done: oneshot::Sender<Result<u64>>,
}

impl Borrow<Write> for Job {
    fn borrow(&self) -> &Write {
        &self.write
    }
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
    pub(crate) async fn write(&self, db: &Db, gate: &Arc<Mutex<()>>, write: Write) -> Result<u64> {
        let tx = self
            .tx
            .get_or_init(|| async {
                let (tx, rx) = mpsc::channel(1024);
                let to = match db {
                    Db::Sqlite(pool) => Committer::Sqlite { pool: pool.clone(), gate: gate.clone(), held: None },
                    Db::Pg(pool) => Committer::Pg { pool: pool.clone(), held: None },
                };
                tokio::spawn(writer(to, rx));
                tx
            })
            .await;
        let (done, answer) = oneshot::channel();
        tx.send(Job { write, done }).await.map_err(|_| StoreError::Batch("the ledger writer stopped".into()))?;
        answer.await.map_err(|_| StoreError::Batch("the ledger writer stopped".into()))?
    }
}

/// Where the writer commits its batches. Each keeps one connection of its own between batches:
/// taking one from the pool each time put a wait for the pool on the path of every email.
enum Committer {
    Sqlite { pool: SqlitePool, gate: Arc<Mutex<()>>, held: Option<PoolConnection<Sqlite>> },
    Pg { pool: PgPool, held: Option<PoolConnection<Postgres>> },
}

async fn writer(mut to: Committer, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        // Jobs in one batch were sent concurrently, so any order is one they could have arrived
        // in (a key's confirm is only sent once its claim was answered).
        let results = match &mut to {
            Committer::Sqlite { pool, gate, held } => {
                // Like statements together, so a batch is one of few distinct queries and its
                // prepared form is reused.
                batch.sort_by_key(|j| j.write.sql as *const Statement as usize);
                let _gate = gate.lock().await;
                commit(pool, held, &batch).await
            }
            Committer::Pg { pool, held } => {
                // In key order (stable: a key's writes keep theirs): every batch, of this process
                // or another, then takes its row locks in one order, and no two wait for each
                // other in a circle (a deadlock, which PostgreSQL breaks by failing one of them).
                batch.sort_by(|a, b| a.write.key.cmp(&b.write.key));
                commit_pg(pool, held, &batch).await
            }
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

/// One statement's result per write, in order (the ledger's batches here, step rows in `step_rows.rs`).
pub(crate) async fn commit_on<W: Borrow<Write>>(conn: &mut sqlx::SqliteConnection, batch: &[W]) -> Vec<Result<u64>> {
    use futures::TryStreamExt;
    use sqlx::Executor;
    let fail_all = |e: &dyn std::fmt::Display| batch.iter().map(|_| Err(StoreError::Batch(e.to_string()))).collect();
    // Alone, a statement commits by itself: the same sync, two statements fewer.
    if let [job] = batch {
        let write = job.borrow();
        let q = bind_all(sqlx::query(write.sql.sqlite()), &write.args);
        return vec![q.execute(&mut *conn).await.map(|r| r.rows_affected()).map_err(StoreError::from)];
    }
    // The whole batch as one multi-statement query: sqlx hands each query to the connection's
    // worker thread and waits for its answer, and that hop, not SQLite, was the cost of a batch
    // sent statement by statement. The statements' `?` are bound in order across them.
    let mut sql = String::from("BEGIN IMMEDIATE;");
    let mut q_args = sqlx::sqlite::SqliteArguments::default();
    for job in batch {
        let write = job.borrow();
        sql.push_str(write.sql.sqlite());
        sql.push(';');
        for a in &write.args {
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
        Ok(c) => fail_all(&format!("a batch of {} writes gave {} results", batch.len(), c.len().saturating_sub(2))),
        Err(e) => fail_all(&e),
    }
}

/// On PostgreSQL: the batch's statements one by one in one transaction (one statement alone
/// commits by itself). A deadlock or serialization failure rolled all of it back: it is tried
/// again. Any other failure fails every statement of the batch, none of which happened.
async fn commit_pg(pool: &PgPool, held: &mut Option<PoolConnection<Postgres>>, batch: &[Job]) -> Vec<Result<u64>> {
    let fail_all = |e: &dyn std::fmt::Display| batch.iter().map(|_| Err(StoreError::Batch(e.to_string()))).collect();
    let mut conn = match held.take() {
        Some(c) => c,
        None => match pool.acquire().await {
            Ok(c) => c,
            Err(e) => return fail_all(&e),
        },
    };
    let mut tries = 0;
    let changed = loop {
        match commit_pg_on(&mut conn, batch).await {
            Err(e) if tries < 5 && retryable(&e) => tries += 1,
            r => break r,
        }
    };
    match changed {
        Ok(c) => {
            *held = Some(conn);
            c.into_iter().map(Ok).collect()
        }
        Err(e) => {
            // The connection may be what failed: a new one next time.
            conn.close_on_drop();
            fail_all(&e)
        }
    }
}

async fn commit_pg_on(conn: &mut sqlx::PgConnection, batch: &[Job]) -> std::result::Result<Vec<u64>, sqlx::Error> {
    use sqlx::Connection;
    if let [job] = batch {
        let q = bind_all(sqlx::query(job.write.sql.pg()), &job.write.args);
        return Ok(vec![q.execute(&mut *conn).await?.rows_affected()]);
    }
    let mut tx = conn.begin().await?;
    let mut changed = Vec::with_capacity(batch.len());
    for job in batch {
        let q = bind_all(sqlx::query(job.write.sql.pg()), &job.write.args);
        changed.push(q.execute(&mut *tx).await?.rows_affected());
    }
    tx.commit().await?;
    Ok(changed)
}

/// PostgreSQL rolled the transaction back for its own reasons: a deadlock (40P01) or a
/// serialization failure (40001).
fn retryable(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "40P01" || c == "40001")
}

/// `attempt` (one whole transaction, or one statement) again while PostgreSQL rolls it back
/// for a deadlock or serialization failure, up to five more times: nothing of it happened.
pub(super) async fn again_on_deadlock<T, F, Fut>(mut attempt: F) -> std::result::Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, sqlx::Error>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(e) if tries < 5 && retryable(&e) => tries += 1,
            r => return r,
        }
    }
}

pub(crate) fn bind_all<'q, DB: sqlx::Database>(
    mut q: sqlx::query::Query<'q, DB, DB::Arguments>,
    args: &'q [Arg],
) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for a in args {
        q = match a {
            Arg::Text(s) => q.bind(s.as_str()),
            Arg::OptText(s) => q.bind(s.as_deref()),
            Arg::Int(n) => q.bind(*n),
            Arg::OptInt(n) => q.bind(*n),
        };
    }
    q
}

fn add(args: &mut sqlx::sqlite::SqliteArguments, a: &Arg) {
    use sqlx::Arguments;
    // Encoding a text or an integer cannot fail.
    let _ = match a {
        Arg::Text(s) => args.add(s.as_str()),
        Arg::OptText(s) => args.add(s.as_deref()),
        Arg::Int(n) => args.add(*n),
        Arg::OptInt(n) => args.add(*n),
    };
}

#[cfg(test)]
mod tests {
    use super::plain_placeholders;

    #[test]
    fn sqlite_spells_each_numbered_placeholder_as_a_plain_one() {
        assert_eq!(
            plain_placeholders("SELECT $1, $2 WHERE a = $3 AND b IS NOT DISTINCT FROM $4"),
            "SELECT ?, ? WHERE a = ? AND b IS NOT DISTINCT FROM ?"
        );
        assert_eq!(plain_placeholders("SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11"), "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?");
        assert_eq!(plain_placeholders("DELETE FROM t"), "DELETE FROM t");
    }

    #[test]
    #[should_panic(expected = "in order, each once")]
    fn a_placeholder_out_of_order_is_refused() {
        plain_placeholders("SELECT $2, $1");
    }

    #[test]
    #[should_panic(expected = "in order, each once")]
    fn a_placeholder_used_twice_is_refused() {
        plain_placeholders("SELECT $1, $1");
    }
}
