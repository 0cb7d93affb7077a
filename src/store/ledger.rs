//! The exactly-once ledger. A step claims a key before its side effect (the claim is committed
//! before anything leaves the process), marks it sent after, and releases it when the effect
//! certainly did not happen. A key found still `sending` was interrupted mid-effect: uncertain.

use super::{now, Result, Store};
use crate::engine::log::Claim;

impl Store {
    pub async fn claim_key(&self, key: &str, workflow: &str, run_id: i64, step_id: &str, item_key: &str) -> Result<Claim> {
        let inserted = sqlx::query(
            "INSERT INTO ledger (key, workflow, run_id, step_id, item_key, state, updated_at)
             VALUES (?, ?, ?, ?, ?, 'sending', ?) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(workflow)
        .bind(run_id)
        .bind(step_id)
        .bind(item_key)
        .bind(now())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Claim::Fresh);
        }
        let (state, by): (String, i64) =
            sqlx::query_as("SELECT state, run_id FROM ledger WHERE key = ?").bind(key).fetch_one(&self.pool).await?;
        Ok(if state == "sent" { Claim::AlreadySent { run_id: by } } else { Claim::Uncertain { run_id: by } })
    }

    /// Take over an uncertain key for a deliberate resend (the workflow said `uncertain: resend`).
    pub async fn reclaim_key(&self, key: &str, run_id: i64) -> Result<()> {
        sqlx::query("UPDATE ledger SET state = 'sending', run_id = ?, updated_at = ? WHERE key = ? AND state = 'sending'")
            .bind(run_id)
            .bind(now())
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn mark_sent(&self, key: &str, detail: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE ledger SET state = 'sent', detail = ?, updated_at = ? WHERE key = ?")
            .bind(detail)
            .bind(now())
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The side effect certainly did not happen (refused, invalid): forget the claim so a later run may try.
    pub async fn release_key(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM ledger WHERE key = ? AND state = 'sending'").bind(key).execute(&self.pool).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_new_run_log_can_give_space_back_and_reopens_without_locking() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("v.db").display());
        let store = Store::open(&url).await.unwrap();
        let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum").fetch_one(store.pool()).await.unwrap();
        assert_eq!(mode, 2, "incremental");
        // A writer holding the lock must not stop a second open (another process, a new connection).
        let mut tx = store.pool().begin().await.unwrap();
        sqlx::query("INSERT INTO ledger (key, workflow, run_id, step_id, item_key, state, updated_at) VALUES ('k', 'w', 1, 's', 'i', 'sending', 'now')")
            .execute(&mut *tx)
            .await
            .unwrap();
        let t = std::time::Instant::now();
        let again = Store::open(&url).await.unwrap();
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        drop(again);
        tx.commit().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn several_opens_of_one_new_run_log_all_work() {
        for trial in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("new.db").display());
            let opens: Vec<_> = (0..4)
                .map(|_| {
                    let url = url.clone();
                    tokio::spawn(async move { Store::open(&url).await })
                })
                .collect();
            for o in opens {
                let store = o.await.unwrap().unwrap_or_else(|e| panic!("trial {trial}: {e}"));
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations").fetch_one(store.pool()).await.unwrap();
                assert!(n >= 3, "trial {trial}: {n} migrations applied");
            }
        }
    }

    #[tokio::test]
    async fn claim_send_and_uncertain() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("l.db").display())).await.unwrap();
        assert_eq!(store.claim_key("k1", "w", 1, "s", "a").await.unwrap(), Claim::Fresh);
        assert_eq!(store.claim_key("k1", "w", 2, "s", "a").await.unwrap(), Claim::Uncertain { run_id: 1 });
        store.mark_sent("k1", Some("250 ok")).await.unwrap();
        assert_eq!(store.claim_key("k1", "w", 3, "s", "a").await.unwrap(), Claim::AlreadySent { run_id: 1 });
        assert_eq!(store.claim_key("k2", "w", 1, "s", "b").await.unwrap(), Claim::Fresh);
        store.release_key("k2").await.unwrap();
        assert_eq!(store.claim_key("k2", "w", 1, "s", "b").await.unwrap(), Claim::Fresh);
    }
}
