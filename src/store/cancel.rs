//! Requests to cancel a running run. Any process may write one; the process running the run
//! polls for it (`RunLog::cancel_requested`) and stops as on SIGTERM. A resume clears the
//! request of the run it reopens (`reopen_run`).

use super::db::on_db;
use super::{now, Result, Store, StoreError};
pub use crate::engine::log::CancelRequest;

impl Store {
    /// Ask for run `run_id` to stop. The first request stands (its author and time are what
    /// the run's error names); returns it.
    pub async fn request_cancel(&self, run_id: i64, by: &str) -> Result<CancelRequest> {
        self.require_run(run_id).await?;
        on_db!(&self.db, pool => sqlx::query(
            "INSERT INTO run_cancels (run_id, requested_by, requested_at) VALUES ($1, $2, $3) ON CONFLICT (run_id) DO NOTHING",
        )
        .bind(run_id)
        .bind(by)
        .bind(now())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(self.cancel_requested(run_id).await?.unwrap_or_else(|| CancelRequest { by: by.into(), at: now() }))
    }

    /// The cancel request standing for run `run_id`, if any.
    pub async fn cancel_requested(&self, run_id: i64) -> Result<Option<CancelRequest>> {
        let row: Option<(String, String)> = on_db!(&self.db, pool => sqlx::query_as("SELECT requested_by, requested_at FROM run_cancels WHERE run_id = $1")
                .bind(run_id)
                .fetch_optional(pool)
                .await)?;
        Ok(row.map(|(by, at)| CancelRequest { by, at }))
    }

    /// Forget the cancel request of run `run_id` (it is being resumed).
    pub(super) async fn clear_cancel(&self, run_id: i64) -> Result<()> {
        on_db!(&self.db, pool => sqlx::query("DELETE FROM run_cancels WHERE run_id = $1")
            .bind(run_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// `NoSuchRun` unless run `run_id` exists.
    pub(super) async fn require_run(&self, run_id: i64) -> Result<()> {
        let found: Option<i64> =
            on_db!(&self.db, pool => sqlx::query_scalar("SELECT id FROM runs WHERE id = $1").bind(run_id).fetch_optional(pool).await)?;
        found.map(|_| ()).ok_or(StoreError::NoSuchRun(run_id))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::StoreError;

    crate::store::testing::store_test! {
    #[tokio::test]
    async fn the_first_request_stands_and_a_reopen_clears_it(fresh) {
        let (a, b) = (fresh.open().await, fresh.open().await);
        let run = crate::store::testing::manual_run(&a).await;
        assert_eq!(a.cancel_requested(run).await.unwrap(), None);
        let first = b.request_cancel(run, "ana").await.unwrap();
        assert_eq!(first.by, "ana");
        assert_eq!(b.request_cancel(run, "bo").await.unwrap(), first);
        assert_eq!(a.cancel_requested(run).await.unwrap(), Some(first));
        assert!(matches!(b.request_cancel(run + 1, "ana").await, Err(StoreError::NoSuchRun(_))));
        a.finish_run(run, crate::store::RunStatus::Interrupted, None).await.unwrap();
        a.reopen_run(run).await.unwrap();
        assert_eq!(a.cancel_requested(run).await.unwrap(), None);
    }
    }
}
