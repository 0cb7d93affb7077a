//! The `steps` rows of a run: one when a step starts, updated when it ends.

use sqlx::pool::PoolConnection;
use sqlx::sqlite::SqliteArguments;
use sqlx::Sqlite;

use super::{now, Result, Store};
use crate::engine::log::StepEnd;

impl Store {
    pub async fn start_step(&self, run_id: i64, step_id: &str, position: usize, kind: &str) -> Result<()> {
        let q = sqlx::query(concat!(
            "PRAGMA synchronous = NORMAL;",
            "INSERT INTO steps (run_id, step_id, position, kind, status, started_at) VALUES (?, ?, ?, ?, 'running', ?)
             ON CONFLICT (run_id, step_id) DO UPDATE SET status = 'running', started_at = excluded.started_at,
               finished_at = NULL, error = NULL;",
            "PRAGMA synchronous = FULL;"
        ))
        .bind(run_id)
        .bind(step_id)
        .bind(position as i64)
        .bind(kind)
        .bind(now());
        self.unsynced(q).await
    }

    /// Close a step. Item counts are recomputed from the items table so a resume adds up;
    /// batch steps (no items) give their record count as `records`.
    pub async fn finish_step(&self, run_id: i64, step_id: &str, end: StepEnd<'_>) -> Result<()> {
        let StepEnd { status, error, output, records } = end;
        let q = sqlx::query(concat!(
            "PRAGMA synchronous = NORMAL;",
            "UPDATE steps SET status = ?, error = ?, output = ?, finished_at = ?,
               ok = coalesce(?, (SELECT count(*) FROM items i WHERE i.run_id = steps.run_id AND i.step_id = steps.step_id AND i.status = 'ok')),
               failed = (SELECT count(*) FROM items i WHERE i.run_id = steps.run_id AND i.step_id = steps.step_id AND i.status = 'failed'),
               skipped = (SELECT count(*) FROM items i WHERE i.run_id = steps.run_id AND i.step_id = steps.step_id AND i.status = 'skipped')
             WHERE run_id = ? AND step_id = ?;",
            "PRAGMA synchronous = FULL;"
        ))
        .bind(status.as_str())
        .bind(error)
        .bind(output.map(|o| o.to_string()))
        .bind(now())
        .bind(records.map(|n| n as i64))
        .bind(run_id)
        .bind(step_id);
        self.unsynced(q).await
    }

    /// Runs a step row's statement, framed by `PRAGMA synchronous = NORMAL` and `= FULL`, in one
    /// round trip. A step row needs no sync of its own: a kill -9 loses nothing committed (the
    /// WAL is in the page cache), and what a power cut could lose is the last rows, which a
    /// resume writes again (batch steps run again, per-item steps go by their items). Every later
    /// synced commit (a ledger claim, the run's end) makes these durable too, in order. With a
    /// sync each, a workflow of 10,000 small steps spent most of its time in 20,000 fsyncs.
    async fn unsynced<'q>(&self, q: sqlx::query::Query<'q, Sqlite, SqliteArguments>) -> Result<()> {
        let mut conn = Unsynced { conn: self.pool().acquire().await?, restored: false };
        q.execute(&mut *conn.conn).await?;
        conn.restored = true;
        Ok(())
    }
}

/// A connection whose `synchronous = FULL` may not have been restored leaves the pool: it must
/// never write a claim unsynced. That is the case when the statement failed (SQLite stops at the
/// failing one), or when this future was dropped before the end (sqlx's worker then stops between
/// statements). Closing also lets go of a write lock SQLite may keep after a failed write (see
/// `write_items`).
struct Unsynced {
    conn: PoolConnection<Sqlite>,
    restored: bool,
}

impl Drop for Unsynced {
    fn drop(&mut self) {
        if !self.restored {
            self.conn.close_on_drop();
        }
    }
}
