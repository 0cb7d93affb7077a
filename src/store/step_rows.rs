//! The `steps` rows of a run: one when a step starts, updated when it ends; and a batch step's
//! artifacts. The engine queues them (`StepRowWriter`); `start_step` and `finish_step` write one
//! at once (tests and tools that build a run log by hand).

use std::sync::{Arc, OnceLock};

use sqlx::query::Query;
use sqlx::{Database, PgPool, Postgres, Sqlite, SqlitePool};
use tokio::sync::{mpsc, oneshot, Notify};

use super::db::{on_db, Db};
use super::group_commit::{self, Arg, Statement, Write};
use super::{now, Result, Store, StoreError};
use crate::engine::log::{NewArtifact, StepEnd, StepRows};

// The statements, the same text on both databases.
macro_rules! start_step_sql {
    () => {
        "INSERT INTO steps (run_id, step_id, position, kind, status, started_at) VALUES ($1, $2, $3, $4, 'running', $5)
         ON CONFLICT (run_id, step_id) DO UPDATE SET status = 'running', started_at = excluded.started_at,
           finished_at = NULL, error = NULL"
    };
}
macro_rules! finish_step_sql {
    () => {
        "UPDATE steps SET status = $1, error = $2, output = $3, finished_at = $4,
           ok = coalesce($5, (SELECT count(*) FROM items i WHERE i.run_id = steps.run_id AND i.step_id = steps.step_id AND i.status = 'ok')),
           failed = (SELECT count(*) FROM items i WHERE i.run_id = steps.run_id AND i.step_id = steps.step_id AND i.status = 'failed'),
           skipped = (SELECT count(*) FROM items i WHERE i.run_id = steps.run_id AND i.step_id = steps.step_id AND i.status = 'skipped')
         WHERE run_id = $6 AND step_id = $7"
    };
}

macro_rules! add_artifact_sql {
    () => {
        "INSERT INTO artifacts (run_id, step_id, item_key, kind, path, created_at) VALUES ($1, $2, $3, $4, $5, $6)"
    };
}

static START: Statement = Statement::new(start_step_sql!());
static FINISH: Statement = Statement::new(finish_step_sql!());
static ARTIFACT: Statement = Statement::new(add_artifact_sql!());

/// Rows written in one commit at most.
const MAX_BATCH: usize = 500;
/// How long rows gather before they are written, unless a flush is waiting: written as they came,
/// the writer's wake-ups cost a small step a fifth of its time.
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

enum Msg {
    Write(Write),
    Flush(oneshot::Sender<Result<()>>),
}

/// One run's queue of step rows (`engine::log::StepRows`), with a task of its own writing them.
pub struct StepRowWriter {
    run_id: i64,
    tx: mpsc::UnboundedSender<Msg>,
    /// Ends the writer's gathering early for a flush.
    flushing: Arc<Notify>,
    failed: Arc<OnceLock<String>>,
}

impl StepRowWriter {
    fn queue(&self, sql: &'static Statement, args: Vec<Arg>) {
        // The task ends only when this sender is gone.
        let _ = self.tx.send(Msg::Write(Write { sql, key: String::new(), args }));
    }
}

#[async_trait::async_trait]
impl StepRows for StepRowWriter {
    fn start(&self, step_id: &str, position: usize, kind: &str) {
        let args =
            vec![Arg::Int(self.run_id), Arg::Text(step_id.into()), Arg::Int(position as i64), Arg::Text(kind.into()), Arg::Text(now())];
        self.queue(&START, args);
    }

    fn finish(&self, step_id: &str, end: StepEnd<'_>) {
        let StepEnd { status, error, output, records } = end;
        let records = match records {
            Some(n) => Arg::OptInt(Some(n as i64)),
            None => Arg::OptInt(None),
        };
        let args = vec![
            Arg::Text(status.as_str().into()),
            Arg::OptText(error.map(str::to_string)),
            Arg::OptText(output.map(|o| o.to_string())),
            Arg::Text(now()),
            records,
            Arg::Int(self.run_id),
            Arg::Text(step_id.into()),
        ];
        self.queue(&FINISH, args);
    }

    fn artifacts(&self, artifacts: &[NewArtifact]) {
        let at = now();
        for a in artifacts {
            let args = vec![
                Arg::Int(self.run_id),
                Arg::Text(a.step_id.clone()),
                Arg::OptText(a.item_key.clone()),
                Arg::Text(a.kind.clone()),
                Arg::Text(a.path.clone()),
                Arg::Text(at.clone()),
            ];
            self.queue(&ARTIFACT, args);
        }
    }

    async fn flush(&self) -> anyhow::Result<()> {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Msg::Flush(tx));
        self.flushing.notify_one();
        Ok(rx.await.unwrap_or(Ok(()))?)
    }

    fn failure(&self) -> Option<String> {
        self.failed.get().cloned()
    }
}

impl Store {
    /// Starts run `run_id`'s step-row writer: each batch is what queued in a few milliseconds
    /// (`GATHER`), or until a flush.
    pub fn step_row_writer(&self, run_id: i64) -> StepRowWriter {
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        let failed: Arc<OnceLock<String>> = Arc::default();
        let first_failure = failed.clone();
        let flushing = Arc::new(Notify::new());
        let flush_asked = flushing.clone();
        let db = self.unsynced.clone();
        tokio::spawn(async move {
            let mut failure: Option<StoreError> = None;
            let mut batch: Vec<Write> = Vec::new();
            while let Some(first) = rx.recv().await {
                if matches!(first, Msg::Write(_)) {
                    // A flush sent meanwhile ends the wait (or a permit left by an earlier one,
                    // which only makes this batch smaller).
                    tokio::select! {
                        _ = tokio::time::sleep(GATHER) => {}
                        _ = flush_asked.notified() => {}
                    }
                }
                let mut flushes = Vec::new();
                let mut next = Some(first);
                while let Some(m) = next.take() {
                    match m {
                        Msg::Write(w) => batch.push(w),
                        Msg::Flush(done) => flushes.push(done),
                    }
                    if batch.len() < MAX_BATCH {
                        next = rx.try_recv().ok();
                    }
                }
                if !batch.is_empty() {
                    match write_rows(&db, &batch).await {
                        Ok(()) => batch.clear(),
                        Err(e) => {
                            tracing::error!("cannot write {} step rows to the run log: {e}", batch.len());
                            let _ = first_failure.set(e.to_string());
                            // Kept for the next write: a run log that is back before the run
                            // ends still gets every step's end.
                            failure.get_or_insert(e);
                        }
                    }
                }
                for done in flushes {
                    let _ = done.send(failure.take().map_or(Ok(()), Err));
                }
            }
        });
        StepRowWriter { run_id, tx, flushing, failed }
    }

    pub async fn start_step(&self, run_id: i64, step_id: &str, position: usize, kind: &str) -> Result<()> {
        on_db!(&self.unsynced, pool => {
            let q = sqlx::query(start_step_sql!()).bind(run_id).bind(step_id).bind(position as i64).bind(kind).bind(now());
            pool.unsynced(q).await
        })
    }

    /// Close a step. Item counts are recomputed from the items table so a resume adds up;
    /// batch steps (no items) give their record count as `records`.
    pub async fn finish_step(&self, run_id: i64, step_id: &str, end: StepEnd<'_>) -> Result<()> {
        let StepEnd { status, error, output, records } = end;
        on_db!(&self.unsynced, pool => {
            let q = sqlx::query(finish_step_sql!())
                .bind(status.as_str())
                .bind(error)
                .bind(output.map(|o| o.to_string()))
                .bind(now())
                .bind(records.map(|n| n as i64))
                .bind(run_id)
                .bind(step_id);
            pool.unsynced(q).await
        })
    }
}

/// One batch of step rows in one transaction without a sync of its own (`Unsynced`).
async fn write_rows(db: &Db, batch: &[Write]) -> Result<()> {
    match db {
        Db::Sqlite(pool) => {
            let mut conn = pool.acquire().await?;
            let results = group_commit::commit_on(&mut conn, batch).await;
            if let Some(e) = results.into_iter().find_map(Result::err) {
                // As for the ledger's batches: a connection whose transaction failed may still hold
                // the write lock.
                conn.close_on_drop();
                return Err(e);
            }
            Ok(())
        }
        Db::Pg(pool) => {
            let mut tx = pool.begin_with("BEGIN; SET LOCAL synchronous_commit = off").await?;
            for w in batch {
                group_commit::bind_all(sqlx::query(w.sql.pg()), &w.args).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        }
    }
}

/// Runs a step row's statement without a sync of its own. A step row needs none: a kill -9
/// loses nothing committed (SQLite's WAL is in the page cache; PostgreSQL's server is another
/// process), and what a power cut could lose is the last rows, which a resume writes again
/// (batch steps run again, per-item steps go by their items). Every later synced commit (a
/// ledger claim, the run's end) makes these durable too, in order. With a sync each, a workflow
/// of 10,000 small steps spent most of its time in 20,000 fsyncs.
pub(super) trait Unsynced {
    type Db: Database;
    async fn unsynced(&self, q: Query<'_, Self::Db, <Self::Db as Database>::Arguments>) -> Result<()>;
}

impl Unsynced for SqlitePool {
    type Db = Sqlite;
    /// On the store's own connection for these (`Store::unsynced`), opened at `synchronous =
    /// NORMAL`: one statement, where framing it with `PRAGMA synchronous` on a pooled connection
    /// took three results back from SQLite's thread, each a wake-up (a third of a small step's
    /// time), and could leave a connection at NORMAL for a claim.
    async fn unsynced(&self, q: Query<'_, Sqlite, <Sqlite as Database>::Arguments>) -> Result<()> {
        q.execute(self).await?;
        Ok(())
    }
}

impl Unsynced for PgPool {
    type Db = Postgres;
    /// In a transaction of its own with `SET LOCAL synchronous_commit = off`: the setting ends
    /// with the transaction, however it ends (commit, error, or this future dropped: sqlx then
    /// rolls back), so a connection goes back to the pool as it came.
    async fn unsynced(&self, q: Query<'_, Postgres, <Postgres as Database>::Arguments>) -> Result<()> {
        let mut tx = self.begin_with("BEGIN; SET LOCAL synchronous_commit = off").await?;
        q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::log::{ItemResult, ItemStatus, StepStatus};
    use crate::store::db::Db;

    type Row = (String, i64, i64, i64, Option<String>, Option<String>, Option<String>);

    async fn step(store: &Store, run_id: i64, step_id: &str) -> Row {
        on_db!(&store.db, pool => sqlx::query_as(
            "SELECT status, ok, failed, skipped, error, output, finished_at FROM steps WHERE run_id = $1 AND step_id = $2",
        )
        .bind(run_id)
        .bind(step_id)
        .fetch_one(pool)
        .await)
        .unwrap()
    }

    fn item(run_id: i64, key: &str, status: ItemStatus) -> ItemResult {
        ItemResult { run_id, step_id: "mail".into(), key: key.into(), seq: 0, status, attempts: 1, error: None, output: None, claim: None }
    }

    crate::store::testing::store_test! {
    #[tokio::test]
    async fn a_step_row_counts_its_items_and_starts_again_on_a_resume(fresh) {
        let store = fresh.open().await;
        let run = crate::store::testing::manual_run(&store).await;
        store.start_step(run, "mail", 0, "email").await.unwrap();
        assert_eq!(step(&store, run, "mail").await.0, "running");
        let w = store.item_writer();
        for (k, s) in [("a", ItemStatus::Ok), ("b", ItemStatus::Ok), ("c", ItemStatus::Failed), ("d", ItemStatus::Skipped)] {
            w.write(item(run, k, s)).await;
        }
        w.flush().await.unwrap();
        let out = serde_json::json!({"sent": 2});
        let end = StepEnd { status: StepStatus::Partial, error: Some("1 failed"), output: Some(&out), records: None };
        store.finish_step(run, "mail", end).await.unwrap();
        let (status, ok, failed, skipped, error, output, finished) = step(&store, run, "mail").await;
        assert_eq!((status.as_str(), ok, failed, skipped, error.as_deref()), ("partial", 2, 1, 1, Some("1 failed")));
        assert_eq!(output.map(|o| serde_json::from_str::<serde_json::Value>(&o).unwrap()), Some(out));
        assert!(finished.is_some());
        // A batch step gives its record count.
        store.start_step(run, "load", 1, "csv").await.unwrap();
        let end = StepEnd { status: StepStatus::Succeeded, error: None, output: None, records: Some(40) };
        store.finish_step(run, "load", end).await.unwrap();
        assert_eq!(step(&store, run, "load").await.1, 40);
        // Started again (a resume): running, its end forgotten.
        store.start_step(run, "mail", 0, "email").await.unwrap();
        let (status, _, _, _, error, _, finished) = step(&store, run, "mail").await;
        assert_eq!((status.as_str(), error, finished), ("running", None, None));
    }
    }

    crate::store::testing::store_test! {
    #[tokio::test]
    async fn queued_step_rows_and_artifacts_land_in_order_and_a_failed_write_is_reported(fresh) {
        let store = fresh.open().await;
        let run = crate::store::testing::manual_run(&store).await;
        let rows = store.step_row_writer(run);
        rows.start("load", 0, "read_csv");
        let art = NewArtifact { step_id: "load".into(), item_key: None, kind: "csv".into(), path: "out/a.csv".into() };
        rows.artifacts(&[art.clone(), NewArtifact { path: "out/b.csv".into(), ..art }]);
        rows.finish("load", StepEnd { status: StepStatus::Succeeded, error: None, output: None, records: Some(7) });
        rows.start("mail", 1, "send_email");
        rows.flush().await.unwrap();
        assert_eq!(rows.failure(), None);
        let (status, ok, ..) = step(&store, run, "load").await;
        assert_eq!((status.as_str(), ok), ("succeeded", 7));
        assert_eq!(step(&store, run, "mail").await.0, "running");
        let paths: Vec<String> = on_db!(&store.db, pool => sqlx::query_scalar(
            "SELECT path FROM artifacts WHERE run_id = $1 AND step_id = 'load' ORDER BY path",
        )
        .bind(run)
        .fetch_all(pool)
        .await)
        .unwrap();
        assert_eq!(paths, ["out/a.csv", "out/b.csv"]);
        // No run 99: the foreign key refuses its rows, and the flush and `failure` say so.
        let orphan = store.step_row_writer(99);
        orphan.start("load", 0, "read_csv");
        let err = orphan.flush().await.unwrap_err().to_string();
        assert!(err.to_lowercase().contains("foreign key"), "{err}");
        assert!(orphan.failure().is_some_and(|f| f.to_lowercase().contains("foreign key")), "{:?}", orphan.failure());
        // Another run's writer is not affected.
        rows.finish("mail", StepEnd { status: StepStatus::Failed, error: Some("boom"), output: None, records: None });
        rows.flush().await.unwrap();
        assert_eq!(step(&store, run, "mail").await.0, "failed");
    }
    }

    /// Step rows are written at `synchronous = NORMAL` on a connection of their own; one that
    /// fails leaves no connection behind at NORMAL: every connection the pool hands out for
    /// claims syncs its commits (FULL, 2).
    #[tokio::test]
    async fn a_failed_step_row_leaves_no_unsynced_connection_in_the_pool() {
        let fresh = crate::store::testing::sqlite().await;
        let store = fresh.open().await;
        let (Db::Sqlite(pool), Db::Sqlite(unsynced)) = (&store.db, &store.unsynced) else { unreachable!() };
        let run = crate::store::testing::manual_run(&store).await;
        store.start_step(run, "mail", 0, "email").await.unwrap();
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(unsynced).await.unwrap();
        assert_eq!(sync, 1, "step rows are written at NORMAL");
        for _ in 0..3 {
            // No run 99: the foreign key refuses the row, between the two pragmas.
            assert!(store.start_step(99, "mail", 0, "email").await.is_err());
            let end = StepEnd { status: StepStatus::Succeeded, error: None, output: None, records: None };
            assert!(store.finish_step(99, "mail", end).await.is_ok(), "an update of no row is no failure");
        }
        // Every connection the pool can hold at once, so the one that failed is among them if it
        // went back.
        let mut conns = Vec::new();
        for _ in 0..pool.options().get_max_connections() {
            let mut c = pool.acquire().await.unwrap();
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut *c).await.unwrap();
            assert_eq!(sync, 2, "a pooled connection at synchronous {sync}");
            conns.push(c);
        }
    }

    /// PostgreSQL's counterpart: `SET LOCAL` ends with its transaction, so a failed step row
    /// leaves every pooled connection at the database's own `synchronous_commit`.
    #[tokio::test]
    async fn a_failed_step_row_leaves_no_unsynced_connection_in_the_postgres_pool() {
        let fresh = crate::store::testing::postgres().await;
        // The test server runs with `synchronous_commit = off`; this database syncs, so that a
        // connection left unsynced would show.
        {
            use sqlx::Connection;
            let mut admin = sqlx::PgConnection::connect(&fresh.url).await.unwrap();
            let name: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&mut admin).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("ALTER DATABASE {name} SET synchronous_commit = on")))
                .execute(&mut admin)
                .await
                .unwrap();
            admin.close().await.unwrap();
        }
        let store = fresh.open().await;
        let Db::Pg(pool) = &store.db else { unreachable!() };
        for _ in 0..3 {
            assert!(store.start_step(99, "mail", 0, "email").await.is_err());
        }
        let run = crate::store::testing::manual_run(&store).await;
        store.start_step(run, "mail", 0, "email").await.unwrap();
        let mut conns = Vec::new();
        for _ in 0..pool.options().get_max_connections() {
            let mut c = pool.acquire().await.unwrap();
            let sync: String = sqlx::query_scalar("SHOW synchronous_commit").fetch_one(&mut *c).await.unwrap();
            assert_eq!(sync, "on");
            conns.push(c);
        }
    }
}
