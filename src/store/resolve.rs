//! A person's decision about uncertain deliveries (`cxflow resolve`): each is recorded with who
//! and when; `sent` marks the key sent, `not-sent` frees it so the next resume delivers it.

use super::db::on_db;
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

/// A key being resolved, as read: key, step, item, owner.
type Held = (String, String, String, Option<String>);

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
        self.require_run(run_id).await?;
        let held: Vec<Held> = on_db!(&self.db, pool => sqlx::query_as(
            "SELECT key, step_id, item_key, owner FROM ledger WHERE run_id = $1 AND state = 'sending' ORDER BY key",
        )
        .bind(run_id)
        .fetch_all(pool)
        .await)
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
        self.decide(run_id, &picked, decision, by).await?;
        Ok(picked
            .into_iter()
            .map(|(key, step_id, item_key, _)| LedgerRow { key, step_id, item_key, state: decision.as_str().into() })
            .collect())
    }

    /// Records `decision` for the keys `picked` of run `run_id` (key, step, item, owner as read),
    /// all or none.
    async fn decide(&self, run_id: i64, picked: &[Held], decision: Resolution, by: &str) -> Result<()> {
        let at = now();
        // Each change is a compare-and-set on the row as read: a key another run took over
        // meanwhile (or another resolve decided) is not touched, and nothing is recorded. In key
        // order, as the ledger's batches take their row locks (`group_commit.rs`).
        on_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            for (key, step_id, item_key, owner) in picked {
                let changed = match decision {
                    Resolution::Sent => sqlx::query(
                        "UPDATE ledger SET state = 'sent', detail = $1, updated_at = $2
                         WHERE key = $3 AND state = 'sending' AND run_id = $4 AND owner IS NOT DISTINCT FROM $5",
                    )
                    .bind(format!("resolved as sent by {by} at {at}"))
                    .bind(&at)
                    .bind(key)
                    .bind(run_id)
                    .bind(owner)
                    .execute(&mut *tx)
                    .await,
                    Resolution::NotSent => sqlx::query(
                        "DELETE FROM ledger WHERE key = $1 AND state = 'sending' AND run_id = $2 AND owner IS NOT DISTINCT FROM $3",
                    )
                    .bind(key)
                    .bind(run_id)
                    .bind(owner)
                    .execute(&mut *tx)
                    .await,
                }?
                .rows_affected();
                if changed != 1 {
                    return Err(StoreError::Fenced {
                        key: key.clone(),
                        run_id,
                        why: "it changed while it was being resolved (taken over, or resolved by someone else); nothing was recorded".into(),
                    });
                }
                sqlx::query(
                    "INSERT INTO resolutions (key, run_id, step_id, item_key, decision, decided_by, decided_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(key)
                .bind(run_id)
                .bind(step_id)
                .bind(item_key)
                .bind(decision.as_str())
                .bind(by)
                .bind(&at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?
        });
        Ok(())
    }

    /// Decisions recorded for run `run_id`: (item key, decision, by, at), oldest first.
    pub async fn resolutions(&self, run_id: i64) -> Result<Vec<(String, String, String, String)>> {
        Ok(on_db!(&self.db, pool => sqlx::query_as(
            "SELECT item_key, decision, decided_by, decided_at FROM resolutions WHERE run_id = $1 ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(pool)
        .await)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::log::Claim;

    async fn exec(store: &Store, sql: &'static str) {
        on_db!(&store.db, pool => sqlx::query(sql).execute(pool).await.map(|_| ())).unwrap();
    }

    async fn store_with_uncertain(fresh: &crate::store::testing::Fresh) -> (Store, i64) {
        let store = fresh.open().await;
        let run = crate::store::testing::manual_run(&store).await;
        for item in ["a", "b"] {
            assert_eq!(store.claim_key(&format!("w/{item}"), "w", run, "mail", item).await.unwrap(), Claim::Fresh);
        }
        // As if a process that died had claimed them.
        exec(&store, "INSERT INTO owners (id, host, boot, pid, started_at, heartbeat_at, expires_at) VALUES ('dead', 'h', 'b', 1, 'x', 'x', '2000-01-01T00:00:00.000Z')").await;
        exec(&store, "UPDATE ledger SET owner = 'dead'").await;
        (store, run)
    }

    crate::store::testing::store_test! {
    #[tokio::test]
    async fn a_decision_is_recorded_and_changes_what_the_next_claim_finds(fresh) {
        let (store, run) = store_with_uncertain(&fresh).await;
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
        assert!(matches!(
            store.resolve(run + 1, &[], Resolution::Sent, "x").await.unwrap_err(),
            ResolveError::Store(StoreError::NoSuchRun(_))
        ));
    }
    }

    crate::store::testing::store_test! {
    #[tokio::test]
    async fn a_key_a_live_run_holds_is_not_resolved(fresh) {
        let (store, run) = store_with_uncertain(&fresh).await;
        // Held by a live owner on another machine.
        exec(&store, "INSERT INTO owners (id, host, boot, pid, started_at, heartbeat_at, expires_at) VALUES ('live', 'elsewhere', 'b', 1, 'x', 'x', '2999-01-01T00:00:00.000Z')").await;
        exec(&store, "UPDATE ledger SET owner = 'live' WHERE item_key = 'a'").await;
        let e = store.resolve(run, &[], Resolution::NotSent, "ana").await.unwrap_err();
        assert!(e.to_string().starts_with(&format!("run {run} is still running in process 1 on elsewhere")), "{e}");
        assert_eq!(store.check_key("w/a", run + 1).await.unwrap(), Claim::InFlight { run_id: run });
    }
    }

    crate::store::testing::store_test! {
    /// A key taken over between the read and the decision is not touched, and nothing of the
    /// decision is recorded.
    #[tokio::test]
    async fn a_key_taken_over_meanwhile_is_not_resolved(fresh) {
        let (store, run) = store_with_uncertain(&fresh).await;
        let as_read: Vec<Held> = ["a", "b"].iter().map(|i| (format!("w/{i}"), "mail".into(), i.to_string(), Some("dead".into()))).collect();
        assert!(store.reclaim_key("w/b", run + 1).await.unwrap());
        for decision in [Resolution::Sent, Resolution::NotSent] {
            let e = store.decide(run, &as_read, decision, "ana").await.unwrap_err();
            assert!(e.to_string().starts_with("delivery key `w/b` is no longer claimed by run"), "{e}");
            assert!(store.resolutions(run).await.unwrap().is_empty());
            assert_eq!(store.check_key("w/a", run + 1).await.unwrap(), Claim::Uncertain { run_id: run }, "w/a as it was");
            assert_eq!(store.check_key("w/b", run + 2).await.unwrap(), Claim::InFlight { run_id: run + 1 });
        }
    }
    }
}
