//! The exactly-once ledger. A step claims a key right before its side effect (the claim is on
//! disk before anything leaves the process), confirms it after, and releases it when the effect
//! certainly did not happen. Every claim names its owner (the run, and the process under a
//! lease, see `owner.rs`): a key still `sending` under a live owner is in flight and left alone;
//! under an owner that is gone it is uncertain. Confirm and release check the owner, so a run
//! that lost its key (its lease lapsed and another took over) cannot overwrite the new owner's.

mod reads;

pub(crate) use self::reads::Lookups;
use super::group_commit::{Arg, Write};
use super::owner::me;
use super::{now, Result, Store, StoreError};
use crate::engine::log::Claim;

#[derive(sqlx::FromRow, Clone)]
struct Held {
    state: String,
    run_id: i64,
    owner: Option<String>,
}

impl Store {
    pub async fn claim_key(&self, key: &str, workflow: &str, run_id: i64, step_id: &str, item_key: &str) -> Result<Claim> {
        let owner = self.register_owner().await?;
        let at = now();
        // Only under a live lease: a process whose heartbeat stopped reaching the database must
        // not claim, since another may already count it gone.
        let sql = "INSERT INTO ledger (key, workflow, run_id, step_id, item_key, state, owner, updated_at)
             SELECT ?, ?, ?, ?, ?, 'sending', ?, ? WHERE EXISTS (SELECT 1 FROM owners WHERE id = ? AND expires_at > ?)
             ON CONFLICT (key) DO NOTHING";
        let args = vec![
            Arg::Text(key.into()),
            Arg::Text(workflow.into()),
            Arg::Int(run_id),
            Arg::Text(step_id.into()),
            Arg::Text(item_key.into()),
            Arg::Text(owner.into()),
            Arg::Text(at.clone()),
            Arg::Text(owner.into()),
            Arg::Text(at),
        ];
        let inserted = self.ledger_claims.write(self.pool(), &self.write_gate, Write { sql, args }).await?;
        if inserted == 1 {
            return Ok(Claim::Fresh);
        }
        match self.held(key).await? {
            None => Err(StoreError::LeaseLost),
            Some(h) => self.judge(&h, run_id).await,
        }
    }

    /// What a claim of `key` by run `run_id` would find, without claiming it.
    pub async fn check_key(&self, key: &str, run_id: i64) -> Result<Claim> {
        // Asked before every send: read in a batch with the checks of the other emails in flight.
        match self.ledger_claims.reads.held(self.pool(), key).await? {
            None => Ok(Claim::Fresh),
            Some(h) => self.judge(&h, run_id).await,
        }
    }

    async fn held(&self, key: &str) -> Result<Option<Held>> {
        Ok(sqlx::query_as("SELECT state, run_id, owner FROM ledger WHERE key = ?").bind(key).fetch_optional(self.pool()).await?)
    }

    async fn judge(&self, h: &Held, run_id: i64) -> Result<Claim> {
        if h.state == "sent" {
            return Ok(Claim::AlreadySent { run_id: h.run_id });
        }
        let mine = h.owner.as_deref() == Some(me().id.as_str()) && h.run_id == run_id;
        if !mine && self.owner_alive(h.owner.as_deref()).await? {
            return Ok(Claim::InFlight { run_id: h.run_id });
        }
        Ok(Claim::Uncertain { run_id: h.run_id })
    }

    /// Take over an uncertain key for a deliberate redo (`uncertain: resend`). `false` when it
    /// is not uncertain any more: sent, released, or in flight under a live owner.
    pub async fn reclaim_key(&self, key: &str, run_id: i64) -> Result<bool> {
        let owner = self.register_owner().await?;
        let Some(h) = self.held(key).await? else { return Ok(false) };
        if !matches!(self.judge(&h, run_id).await?, Claim::Uncertain { .. }) {
            return Ok(false);
        }
        let at = now();
        // Compare-and-set on the owner read above: of two runs taking it over, one wins.
        let sql = "UPDATE ledger SET run_id = ?, owner = ?, updated_at = ?
             WHERE key = ? AND state = 'sending' AND run_id = ? AND owner IS ?
               AND EXISTS (SELECT 1 FROM owners WHERE id = ? AND expires_at > ?)";
        let args = vec![
            Arg::Int(run_id),
            Arg::Text(owner.into()),
            Arg::Text(at.clone()),
            Arg::Text(key.into()),
            Arg::Int(h.run_id),
            Arg::OptText(h.owner),
            Arg::Text(owner.into()),
            Arg::Text(at),
        ];
        let taken = self.ledger_claims.write(self.pool(), &self.write_gate, Write { sql, args }).await?;
        Ok(taken == 1)
    }

    /// The side effect happened. Fails if run `run_id` of this process no longer holds the key.
    pub async fn mark_sent(&self, key: &str, run_id: i64, detail: Option<&str>) -> Result<()> {
        let sql =
            "UPDATE ledger SET state = 'sent', detail = ?, updated_at = ? WHERE key = ? AND state = 'sending' AND run_id = ? AND owner = ?";
        let args = vec![
            Arg::OptText(detail.map(str::to_string)),
            Arg::Text(now()),
            Arg::Text(key.into()),
            Arg::Int(run_id),
            Arg::Text(me().id.clone()),
        ];
        let n = self.ledger_claims.write(self.pool(), &self.write_gate, Write { sql, args }).await?;
        self.fenced(n, key, run_id).await
    }

    /// The side effect certainly did not happen (refused, never handed over): forget the claim
    /// so a later attempt may try. Fails if this run no longer holds the key.
    pub async fn release_key(&self, key: &str, run_id: i64) -> Result<()> {
        let sql = "DELETE FROM ledger WHERE key = ? AND state = 'sending' AND run_id = ? AND owner = ?";
        let args = vec![Arg::Text(key.into()), Arg::Int(run_id), Arg::Text(me().id.clone())];
        let n = self.ledger_claims.write(self.pool(), &self.write_gate, Write { sql, args }).await?;
        self.fenced(n, key, run_id).await
    }

    async fn fenced(&self, changed: u64, key: &str, run_id: i64) -> Result<()> {
        if changed == 1 {
            return Ok(());
        }
        let why = match self.held(key).await? {
            None => "nobody holds it (it was resolved or released meanwhile)".to_string(),
            Some(h) if h.state == "sent" => format!("run {} has marked it sent", h.run_id),
            Some(h) => format!("run {} took it over", h.run_id),
        };
        Err(StoreError::Fenced { key: key.to_string(), run_id, why })
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
        // Run 2 of this same (live) process: run 1 is sending it.
        assert_eq!(store.claim_key("k1", "w", 2, "s", "a").await.unwrap(), Claim::InFlight { run_id: 1 });
        assert_eq!(store.claim_key("k1", "w", 1, "s", "a").await.unwrap(), Claim::Uncertain { run_id: 1 }, "its own earlier attempt");
        store.mark_sent("k1", 1, Some("250 ok")).await.unwrap();
        assert_eq!(store.claim_key("k1", "w", 3, "s", "a").await.unwrap(), Claim::AlreadySent { run_id: 1 });
        assert_eq!(store.claim_key("k2", "w", 1, "s", "b").await.unwrap(), Claim::Fresh);
        store.release_key("k2", 1).await.unwrap();
        assert_eq!(store.claim_key("k2", "w", 1, "s", "b").await.unwrap(), Claim::Fresh);
    }

    async fn fake_owner(store: &Store, id: &str, host: &str, expires: &str) {
        sqlx::query("INSERT INTO owners (id, host, boot, pid, started_at, heartbeat_at, expires_at) VALUES (?, ?, 'b', 1, 'x', 'x', ?)")
            .bind(id)
            .bind(host)
            .bind(expires)
            .execute(store.pool())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_live_owners_key_is_in_flight_a_gone_owners_is_uncertain_and_taken_over_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("l.db").display())).await.unwrap();
        assert_eq!(store.claim_key("k", "w", 1, "s", "a").await.unwrap(), Claim::Fresh);
        // Another machine's live process holds it: in flight, never taken over.
        fake_owner(&store, "live", "elsewhere", "2999-01-01T00:00:00.000Z").await;
        sqlx::query("UPDATE ledger SET owner = 'live'").execute(store.pool()).await.unwrap();
        assert_eq!(store.claim_key("k", "w", 2, "s", "a").await.unwrap(), Claim::InFlight { run_id: 1 });
        assert!(!store.reclaim_key("k", 2).await.unwrap());
        // Its lease lapsed: uncertain, and one run takes it over.
        sqlx::query("UPDATE owners SET expires_at = '2000-01-01T00:00:00.000Z' WHERE id = 'live'").execute(store.pool()).await.unwrap();
        assert_eq!(store.claim_key("k", "w", 2, "s", "a").await.unwrap(), Claim::Uncertain { run_id: 1 });
        assert!(store.reclaim_key("k", 2).await.unwrap());
        assert_eq!(
            store.claim_key("k", "w", 3, "s", "a").await.unwrap(),
            Claim::InFlight { run_id: 2 },
            "run 2 of this live process has it"
        );
        // The old holder can neither confirm nor release what it lost.
        let e = store.mark_sent("k", 1, None).await.unwrap_err();
        assert_eq!(e.to_string(), "delivery key `k` is no longer claimed by run 1: run 2 took it over");
        assert!(store.release_key("k", 1).await.is_err());
        store.mark_sent("k", 2, Some("250 ok")).await.unwrap();
        assert_eq!(store.check_key("k", 3).await.unwrap(), Claim::AlreadySent { run_id: 2 });
        assert_eq!(
            store.release_key("k", 2).await.unwrap_err().to_string(),
            "delivery key `k` is no longer claimed by run 2: run 2 has marked it sent"
        );
    }

    #[tokio::test]
    async fn a_process_whose_lease_lapsed_claims_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("l.db").display())).await.unwrap();
        assert_eq!(store.claim_key("k1", "w", 1, "s", "a").await.unwrap(), Claim::Fresh);
        // As if its heartbeats had not reached the database for a whole lease.
        sqlx::query("UPDATE owners SET expires_at = '2000-01-01T00:00:00.000Z'").execute(store.pool()).await.unwrap();
        assert!(matches!(store.claim_key("k2", "w", 1, "s", "b").await, Err(StoreError::LeaseLost)));
        assert_eq!(store.check_key("k2", 1).await.unwrap(), Claim::Fresh, "nothing was claimed");
    }

    /// Checks read in batches answer what the key's own query answers: sent, sending (this run's,
    /// another live run's, a gone owner's), absent, the same key twice, keys that are not ASCII.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batched_checks_answer_as_one_query_per_key_would() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("l.db").display())).await.unwrap();
        let keys: Vec<String> = (0..300).map(|i| format!("wf/{i}{}", ["", " é", "ü/✓", "\"", "[x]"][i % 5])).collect();
        for (i, k) in keys.iter().enumerate() {
            match i % 4 {
                0 => {}
                1 => assert_eq!(store.claim_key(k, "w", 1, "s", k).await.unwrap(), Claim::Fresh),
                2 => {
                    store.claim_key(k, "w", 2, "s", k).await.unwrap();
                    store.mark_sent(k, 2, Some("250 ok")).await.unwrap();
                }
                _ => {
                    store.claim_key(k, "w", 3, "s", k).await.unwrap();
                }
            }
        }
        fake_owner(&store, "gone", "elsewhere", "2000-01-01T00:00:00.000Z").await;
        sqlx::query("UPDATE ledger SET owner = 'gone' WHERE run_id = 3").execute(store.pool()).await.unwrap();
        let checks: Vec<_> = keys
            .iter()
            .chain(keys.iter().take(40))
            .map(|k| {
                let (store, k) = (store.clone(), k.clone());
                tokio::spawn(async move { (k.clone(), store.check_key(&k, 1).await.unwrap()) })
            })
            .collect();
        for c in checks {
            let (k, batched) = c.await.unwrap();
            let alone = match store.held(&k).await.unwrap() {
                None => Claim::Fresh,
                Some(h) => store.judge(&h, 1).await.unwrap(),
            };
            assert_eq!(batched, alone, "key {k}");
        }
        assert_eq!(store.check_key(&keys[0], 1).await.unwrap(), Claim::Fresh);
        assert_eq!(store.check_key(&keys[1], 2).await.unwrap(), Claim::InFlight { run_id: 1 });
        assert_eq!(store.check_key(&keys[2], 1).await.unwrap(), Claim::AlreadySent { run_id: 2 });
        assert_eq!(store.check_key(&keys[3], 1).await.unwrap(), Claim::Uncertain { run_id: 3 });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn claims_committed_together_each_get_their_own_answer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("l.db").display())).await.unwrap();
        // Forty claims at once, of ten keys: one of the four claims of each key wins.
        let claims: Vec<_> = (0..40)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { (i % 10, store.claim_key(&format!("k{}", i % 10), "w", 1 + i / 10, "s", "a").await.unwrap()) })
            })
            .collect();
        let mut fresh = [0; 10];
        for c in claims {
            let (k, claim) = c.await.unwrap();
            if claim == Claim::Fresh {
                fresh[k as usize] += 1;
            } else {
                assert!(matches!(claim, Claim::InFlight { .. } | Claim::Uncertain { .. }), "{claim:?}");
            }
        }
        assert_eq!(fresh, [1; 10]);
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger WHERE state = 'sending'").fetch_one(store.pool()).await.unwrap();
        assert_eq!(n, 10);
    }
}
