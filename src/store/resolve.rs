//! A person's decision about uncertain deliveries (`cxflow resolve`): each is recorded with who
//! and when; `sent` marks the key sent, `not-sent` frees it so the next resume delivers it.

use super::{now, LedgerRow, Result, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Sent,
    NotSent,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Sent => "sent",
            Resolution::NotSent => "not-sent",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("run {run_id} has no uncertain delivery for item(s) {}; `cxflow show {run_id}` lists the uncertain ones", .missing.join(", "))]
    NotUncertain { run_id: i64, missing: Vec<String> },
    #[error("run {0} has no uncertain deliveries")]
    NoneUncertain(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Resolve the uncertain deliveries of run `run_id`: those of `item_keys`, or all when it is
    /// empty. A key a live run still holds is refused: it is in flight, not uncertain.
    pub async fn resolve(
        &self,
        run_id: i64,
        item_keys: &[String],
        decision: Resolution,
        by: &str,
    ) -> std::result::Result<Vec<LedgerRow>, ResolveError> {
        self.run(run_id).await?;
        let held: Vec<(String, String, String, Option<String>)> =
            sqlx::query_as("SELECT key, step_id, item_key, owner FROM ledger WHERE run_id = ? AND state = 'sending' ORDER BY key")
                .bind(run_id)
                .fetch_all(self.pool())
                .await
                .map_err(StoreError::from)?;
        let picked: Vec<_> = held.into_iter().filter(|h| item_keys.is_empty() || item_keys.contains(&h.2)).collect();
        let missing: Vec<String> = item_keys.iter().filter(|k| !picked.iter().any(|h| &h.2 == *k)).map(|k| format!("`{k}`")).collect();
        if !missing.is_empty() {
            return Err(ResolveError::NotUncertain { run_id, missing });
        }
        if picked.is_empty() {
            return Err(ResolveError::NoneUncertain(run_id));
        }
        for (_, _, _, owner) in &picked {
            if self.owner_alive(owner.as_deref()).await? {
                let o = self.owner(owner.as_deref().unwrap_or_default()).await?;
                return Err(StoreError::StillRunning {
                    run_id,
                    pid: o.as_ref().map_or(0, |o| o.pid),
                    host: o.map(|o| o.host).unwrap_or_default(),
                }
                .into());
            }
        }
        let at = now();
        let mut tx = self.pool().begin().await.map_err(StoreError::from)?;
        for (key, step_id, item_key, _) in &picked {
            match decision {
                Resolution::Sent => {
                    sqlx::query("UPDATE ledger SET state = 'sent', detail = ?, updated_at = ? WHERE key = ? AND state = 'sending'")
                        .bind(format!("resolved as sent by {by} at {at}"))
                        .bind(&at)
                        .bind(key)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::from)?;
                }
                Resolution::NotSent => {
                    sqlx::query("DELETE FROM ledger WHERE key = ? AND state = 'sending'")
                        .bind(key)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::from)?;
                }
            }
            sqlx::query(
                "INSERT INTO resolutions (key, run_id, step_id, item_key, decision, decided_by, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(key)
            .bind(run_id)
            .bind(step_id)
            .bind(item_key)
            .bind(decision.as_str())
            .bind(by)
            .bind(&at)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(picked
            .into_iter()
            .map(|(key, step_id, item_key, _)| LedgerRow { key, step_id, item_key, state: decision.as_str().into() })
            .collect())
    }

    /// Decisions recorded for run `run_id`: (item key, decision, by, at), oldest first.
    pub async fn resolutions(&self, run_id: i64) -> Result<Vec<(String, String, String, String)>> {
        Ok(sqlx::query_as("SELECT item_key, decision, decided_by, decided_at FROM resolutions WHERE run_id = ? ORDER BY id")
            .bind(run_id)
            .fetch_all(self.pool())
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::log::{Claim, NewRun, TriggerKind};

    async fn store_with_uncertain(dir: &std::path::Path) -> (Store, i64) {
        let store = Store::open(&format!("sqlite://{}", dir.join("r.db").display())).await.unwrap();
        let params = serde_json::json!({});
        let run = store
            .start_run(NewRun { workflow: "w", file: "w.yaml", trigger: TriggerKind::Manual, params: &params, scheduled_for: None })
            .await
            .unwrap();
        for item in ["a", "b"] {
            assert_eq!(store.claim_key(&format!("w/{item}"), "w", run, "mail", item).await.unwrap(), Claim::Fresh);
        }
        // As if a process that died had claimed them.
        sqlx::query("INSERT INTO owners (id, host, boot, pid, started_at, heartbeat_at, expires_at) VALUES ('dead', 'h', 'b', 1, 'x', 'x', '2000-01-01T00:00:00.000Z')")
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::query("UPDATE ledger SET owner = 'dead'").execute(store.pool()).await.unwrap();
        (store, run)
    }

    #[tokio::test]
    async fn a_decision_is_recorded_and_changes_what_the_next_claim_finds() {
        let dir = tempfile::tempdir().unwrap();
        let (store, run) = store_with_uncertain(dir.path()).await;
        assert_eq!(store.check_key("w/a", run + 1).await.unwrap(), Claim::Uncertain { run_id: run });
        let e = store.resolve(run, &["zz".into()], Resolution::Sent, "ana").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("run {run} has no uncertain delivery for item(s) `zz`; `cxflow show {run}` lists the uncertain ones")
        );
        let done = store.resolve(run, &["a".into()], Resolution::Sent, "ana").await.unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(store.check_key("w/a", run + 1).await.unwrap(), Claim::AlreadySent { run_id: run });
        store.resolve(run, &[], Resolution::NotSent, "bo").await.unwrap();
        assert_eq!(store.check_key("w/b", run + 1).await.unwrap(), Claim::Fresh);
        let r = store.resolutions(run).await.unwrap();
        assert_eq!(
            r.iter().map(|x| (x.0.as_str(), x.1.as_str(), x.2.as_str())).collect::<Vec<_>>(),
            [("a", "sent", "ana"), ("b", "not-sent", "bo")]
        );
        assert!(matches!(store.resolve(run, &[], Resolution::Sent, "x").await.unwrap_err(), ResolveError::NoneUncertain(_)));
    }

    #[tokio::test]
    async fn a_key_a_live_run_holds_is_not_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let (store, run) = store_with_uncertain(dir.path()).await;
        // Held by a live owner on another machine.
        sqlx::query("INSERT INTO owners (id, host, boot, pid, started_at, heartbeat_at, expires_at) VALUES ('live', 'elsewhere', 'b', 1, 'x', 'x', '2999-01-01T00:00:00.000Z')")
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::query("UPDATE ledger SET owner = 'live' WHERE item_key = 'a'").execute(store.pool()).await.unwrap();
        let e = store.resolve(run, &[], Resolution::NotSent, "ana").await.unwrap_err();
        assert!(e.to_string().starts_with(&format!("run {run} is still running in process 1 on elsewhere")), "{e}");
        assert_eq!(store.check_key("w/a", run + 1).await.unwrap(), Claim::InFlight { run_id: run });
    }
}
