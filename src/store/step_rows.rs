//! The `steps` rows of a run: one when a step starts, updated when it ends.

use sqlx::query::Query;
use sqlx::{Database, PgPool, Postgres, Sqlite, SqlitePool};

use super::db::on_db;
use super::{now, Result, Store};
use crate::engine::log::StepEnd;

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

impl Store {
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
