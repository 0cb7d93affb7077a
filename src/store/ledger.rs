//! The exactly-once ledger. A step claims a key right before its side effect (the claim is on
//! disk before anything leaves the process), confirms it after, and releases it when the effect
//! certainly did not happen. Every claim names its owner (the run, and the process under a
//! lease, see `owner.rs`): a key still `sending` under a live owner is in flight and left alone;
//! under an owner that is gone it is uncertain. Confirm and release check the owner, so a run
//! that lost its key (its lease lapsed and another took over) cannot overwrite the new owner's.

mod reads;

pub(crate) use self::reads::Lookups;
use super::db::on_db;
use super::group_commit::{Arg, Statement, Write};
use super::owner::me;
use super::{now, Result, Store, StoreError};
use crate::engine::log::{Claim, Fence};

#[derive(sqlx::FromRow, Clone)]
struct Held {
    state: String,
    run_id: i64,
    owner: Option<String>,
    /// Read only where a shared item's claim needs it (`claim_key_fenced`).
    #[sqlx(default)]
    item_key: Option<String>,
}

// The ledger's writes, committed in batches (`group_commit.rs`). Each is a compare-and-set: it
// changes the row only as the caller last saw it, so that on PostgreSQL, where transactions run
// side by side, two processes never both win a key.

/// Only under a live lease: a process whose heartbeat stopped reaching the database must not
/// claim, since another may already count it gone.
static CLAIM: Statement = Statement::new(
    "INSERT INTO ledger (key, workflow, run_id, step_id, item_key, state, owner, updated_at)
     SELECT $1, $2, $3, $4, $5, 'sending', $6, $7 WHERE EXISTS (SELECT 1 FROM owners WHERE id = $8 AND expires_at > $9)
     ON CONFLICT (key) DO NOTHING",
);

/// On the holder read before: of two runs taking it over, one wins.
static RECLAIM: Statement = Statement::new(
    "UPDATE ledger SET run_id = $1, owner = $2, updated_at = $3
     WHERE key = $4 AND state = 'sending' AND run_id = $5 AND owner IS NOT DISTINCT FROM $6
       AND EXISTS (SELECT 1 FROM owners WHERE id = $7 AND expires_at > $8)",
);

static MARK_SENT: Statement = Statement::new(
    "UPDATE ledger SET state = 'sent', detail = $1, updated_at = $2 WHERE key = $3 AND state = 'sending' AND run_id = $4 AND owner = $5",
);

/// A shared item's (`work.rs`): also only while this node's claim on the item holds.
static CLAIM_FENCED: Statement = Statement::new(
    "INSERT INTO ledger (key, workflow, run_id, step_id, item_key, state, owner, updated_at)
     SELECT $1, $2, $3, $4, $5, 'sending', $6, $7 WHERE EXISTS (SELECT 1 FROM owners WHERE id = $8 AND expires_at > $9)
       AND EXISTS (SELECT 1 FROM work_items WHERE run_id = $10 AND step_id = $11 AND seq = $12 AND token = $13
                   AND state = 'claimed' AND lease_until >= clock_timestamp())
     ON CONFLICT (key) DO NOTHING",
);

static MARK_SENT_FENCED: Statement = Statement::new(
    "UPDATE ledger SET state = 'sent', detail = $1, updated_at = $2 WHERE key = $3 AND state = 'sending' AND run_id = $4 AND owner = $5
       AND EXISTS (SELECT 1 FROM work_items WHERE run_id = $6 AND step_id = $7 AND seq = $8 AND token = $9
                   AND state = 'claimed' AND lease_until >= clock_timestamp())",
);

static RELEASE: Statement = Statement::new("DELETE FROM ledger WHERE key = $1 AND state = 'sending' AND run_id = $2 AND owner = $3");

impl Store {
    pub async fn claim_key(&self, key: &str, workflow: &str, run_id: i64, step_id: &str, item_key: &str) -> Result<Claim> {
        let owner = self.register_owner().await?;
        // Nothing inserted and nothing held: the lease lapsed, or the holder let go of the key
        // between the two (a release, a resolution): then the claim is tried again.
        for _ in 0..3 {
            let at = now();
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
            let inserted = self.ledger_write(&CLAIM, key, args).await?;
            if inserted == 1 {
                return Ok(Claim::Fresh);
            }
            if let Some(h) = self.held(key).await? {
                return self.judge(&h, run_id).await;
            }
        }
        Err(StoreError::LeaseLost)
    }

    /// `claim_key` for a shared item: only while this node's claim on the item holds. A key
    /// the same item left `sending` under another node is uncertain, whether or not that node
    /// still lives: this node holds the item now, so the other lost it mid-delivery.
    pub async fn claim_key_fenced(&self, key: &str, workflow: &str, run_id: i64, item_key: &str, fence: &Fence) -> Result<Claim> {
        let owner = self.register_owner().await?;
        for _ in 0..3 {
            let at = now();
            let args = vec![
                Arg::Text(key.into()),
                Arg::Text(workflow.into()),
                Arg::Int(run_id),
                Arg::Text(fence.step_id.clone()),
                Arg::Text(item_key.into()),
                Arg::Text(owner.into()),
                Arg::Text(at.clone()),
                Arg::Text(owner.into()),
                Arg::Text(at),
                Arg::Int(run_id),
                Arg::Text(fence.step_id.clone()),
                Arg::Int(fence.seq),
                Arg::Int(fence.token),
            ];
            if self.ledger_write(&CLAIM_FENCED, key, args).await? == 1 {
                return Ok(Claim::Fresh);
            }
            match self.held(key).await? {
                Some(h)
                    if h.state == "sending"
                        && h.run_id == run_id
                        && h.item_key.as_deref() == Some(item_key)
                        && h.owner.as_deref() != Some(&me().id) =>
                {
                    return Ok(Claim::Uncertain { run_id: h.run_id })
                }
                Some(h) => return self.judge(&h, run_id).await,
                None => {}
            }
        }
        Err(StoreError::ClaimLapsed { run_id, step_id: fence.step_id.clone(), count: 1 })
    }

    /// `mark_sent` for a shared item: only while this node's claim on the item holds.
    pub async fn mark_sent_fenced(&self, key: &str, run_id: i64, detail: Option<&str>, fence: &Fence) -> Result<()> {
        let args = vec![
            Arg::OptText(detail.map(str::to_string)),
            Arg::Text(now()),
            Arg::Text(key.into()),
            Arg::Int(run_id),
            Arg::Text(me().id.clone()),
            Arg::Int(run_id),
            Arg::Text(fence.step_id.clone()),
            Arg::Int(fence.seq),
            Arg::Int(fence.token),
        ];
        if self.ledger_write(&MARK_SENT_FENCED, key, args).await? == 1 {
            return Ok(());
        }
        match self.held(key).await? {
            Some(h) if h.state == "sending" && h.run_id == run_id && h.owner.as_deref() == Some(&me().id) => Err(StoreError::Fenced {
                key: key.to_string(),
                run_id,
                why: "this node's claim on its item lapsed (another node may have taken the item over); the delivery stays uncertain"
                    .into(),
            }),
            _ => self.fenced(0, key, run_id).await,
        }
    }

    /// What a claim of `key` by run `run_id` would find, without claiming it.
    pub async fn check_key(&self, key: &str, run_id: i64) -> Result<Claim> {
        // Asked before every send: read in a batch with the checks of the other emails in flight.
        match self.ledger_claims.reads.held(&self.db, key).await? {
            None => Ok(Claim::Fresh),
            Some(h) => self.judge(&h, run_id).await,
        }
    }

    async fn ledger_write(&self, sql: &'static Statement, key: &str, args: Vec<Arg>) -> Result<u64> {
        self.ledger_claims.write(&self.db, &self.write_gate, Write { sql, key: key.into(), args }).await
    }

    async fn held(&self, key: &str) -> Result<Option<Held>> {
        Ok(on_db!(&self.db, pool => sqlx::query_as("SELECT state, run_id, owner, item_key FROM ledger WHERE key = $1")
            .bind(key)
            .fetch_optional(pool)
            .await)?)
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
        let taken = self.ledger_write(&RECLAIM, key, args).await?;
        Ok(taken == 1)
    }

    /// The side effect happened. Fails if run `run_id` of this process no longer holds the key.
    pub async fn mark_sent(&self, key: &str, run_id: i64, detail: Option<&str>) -> Result<()> {
        let args = vec![
            Arg::OptText(detail.map(str::to_string)),
            Arg::Text(now()),
            Arg::Text(key.into()),
            Arg::Int(run_id),
            Arg::Text(me().id.clone()),
        ];
        let n = self.ledger_write(&MARK_SENT, key, args).await?;
        self.fenced(n, key, run_id).await
    }

    /// The side effect certainly did not happen (refused, never handed over): forget the claim
    /// so a later attempt may try. Fails if this run no longer holds the key.
    pub async fn release_key(&self, key: &str, run_id: i64) -> Result<()> {
        let args = vec![Arg::Text(key.into()), Arg::Int(run_id), Arg::Text(me().id.clone())];
        let n = self.ledger_write(&RELEASE, key, args).await?;
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
    use crate::store::db::Db;

    /// Runs `sql` on the run log, for rows set up by hand.
    async fn exec(store: &Store, sql: &'static str) {
        on_db!(&store.db, pool => sqlx::query(sql).execute(pool).await.map(|_| ())).unwrap();
    }

    async fn count(store: &Store, sql: &'static str) -> i64 {
        on_db!(&store.db, pool => sqlx::query_scalar(sql).fetch_one(pool).await).unwrap()
    }

    fn sqlite(store: &Store) -> &sqlx::SqlitePool {
        match &store.db {
            Db::Sqlite(p) => p,
            Db::Pg(_) => unreachable!("a SQLite test"),
        }
    }

    #[tokio::test]
    async fn a_new_run_log_can_give_space_back_and_reopens_without_locking() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("v.db").display());
        let store = Store::open(&url).await.unwrap();
        let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum").fetch_one(sqlite(&store)).await.unwrap();
        assert_eq!(mode, 2, "incremental");
        // A writer holding the lock must not stop a second open (another process, a new connection).
        let mut tx = sqlite(&store).begin().await.unwrap();
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
                let n = count(&store, "SELECT count(*) FROM _sqlx_migrations").await;
                assert!(n >= 3, "trial {trial}: {n} migrations applied");
            }
        }
    }

    /// PostgreSQL's counterpart: processes opening one new, empty database at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn several_opens_of_one_new_postgres_run_log_all_work() {
        for trial in 0..3 {
            let fresh = crate::store::testing::postgres().await;
            let opens: Vec<_> = (0..4)
                .map(|_| {
                    let url = fresh.url.clone();
                    tokio::spawn(async move { Store::open(&url).await })
                })
                .collect();
            for o in opens {
                let store = o.await.unwrap().unwrap_or_else(|e| panic!("trial {trial}: {e}"));
                let n = count(&store, "SELECT count(*) FROM _sqlx_migrations").await;
                assert!(n >= 1, "trial {trial}: {n} migrations applied");
                store.close().await;
            }
        }
    }

    crate::store::testing::store_test! {
    #[tokio::test]
    async fn claim_send_and_uncertain(fresh) {
        let store = fresh.open().await;
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
    }

    async fn fake_owner(store: &Store, id: &str, host: &str, expires: &str) {
        on_db!(&store.db, pool => sqlx::query(
            "INSERT INTO owners (id, host, boot, pid, started_at, heartbeat_at, expires_at) VALUES ($1, $2, 'b', 1, 'x', 'x', $3)",
        )
        .bind(id)
        .bind(host)
        .bind(expires)
        .execute(pool)
        .await
        .map(|_| ()))
        .unwrap();
    }

    crate::store::testing::store_test! {
    #[tokio::test]
    async fn a_live_owners_key_is_in_flight_a_gone_owners_is_uncertain_and_taken_over_once(fresh) {
        let store = fresh.open().await;
        assert_eq!(store.claim_key("k", "w", 1, "s", "a").await.unwrap(), Claim::Fresh);
        // Another machine's live process holds it: in flight, never taken over.
        fake_owner(&store, "live", "elsewhere", "2999-01-01T00:00:00.000Z").await;
        exec(&store, "UPDATE ledger SET owner = 'live'").await;
        assert_eq!(store.claim_key("k", "w", 2, "s", "a").await.unwrap(), Claim::InFlight { run_id: 1 });
        assert!(!store.reclaim_key("k", 2).await.unwrap());
        // Its lease lapsed: uncertain, and one run takes it over.
        exec(&store, "UPDATE owners SET expires_at = '2000-01-01T00:00:00.000Z' WHERE id = 'live'").await;
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
    }

    crate::store::testing::store_test! {
    #[tokio::test]
    async fn a_process_whose_lease_lapsed_claims_nothing(fresh) {
        let store = fresh.open().await;
        assert_eq!(store.claim_key("k1", "w", 1, "s", "a").await.unwrap(), Claim::Fresh);
        // As if its heartbeats had not reached the database for a whole lease.
        exec(&store, "UPDATE owners SET expires_at = '2000-01-01T00:00:00.000Z'").await;
        assert!(matches!(store.claim_key("k2", "w", 1, "s", "b").await, Err(StoreError::LeaseLost)));
        assert_eq!(store.check_key("k2", 1).await.unwrap(), Claim::Fresh, "nothing was claimed");
    }
    }

    crate::store::testing::store_test! {
    /// Checks read in batches answer what the key's own query answers: sent, sending (this run's,
    /// another live run's, a gone owner's), absent, the same key twice, keys that are not ASCII.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batched_checks_answer_as_one_query_per_key_would(fresh) {
        let store = fresh.open().await;
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
        exec(&store, "UPDATE ledger SET owner = 'gone' WHERE run_id = 3").await;
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
    }

    crate::store::testing::store_test! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn claims_committed_together_each_get_their_own_answer(fresh) {
        let store = fresh.open().await;
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
        assert_eq!(count(&store, "SELECT count(*) FROM ledger WHERE state = 'sending'").await, 10);
    }
    }

    crate::store::testing::store_test! {
    /// Two stores on one run log, as two processes (or nodes) are: their batches commit side by
    /// side (on PostgreSQL truly at once), each claiming the keys in another order. Every key is
    /// won once, and no batch fails (on PostgreSQL, batches locking keys in different orders
    /// would deadlock).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_stores_claiming_the_same_keys_at_once_win_each_once(fresh) {
        let (a, b) = (fresh.open().await, fresh.open().await);
        for round in 0..5 {
            let keys: Vec<String> = (0..30).map(|i| format!("r{round}/k{i}")).collect();
            let mut claims = Vec::new();
            for (n, store) in [&a, &b].into_iter().enumerate() {
                for i in 0..keys.len() {
                    // One store goes up the keys, the other down.
                    let k = if n == 0 { keys[i].clone() } else { keys[keys.len() - 1 - i].clone() };
                    let store = store.clone();
                    let run = 1 + n as i64;
                    claims.push(tokio::spawn(async move { (k.clone(), store.claim_key(&k, "w", run, "s", "a").await.unwrap()) }));
                }
            }
            let mut won = std::collections::HashMap::new();
            for c in claims {
                let (k, claim) = c.await.unwrap();
                if claim == Claim::Fresh {
                    *won.entry(k).or_insert(0) += 1;
                } else {
                    assert!(matches!(claim, Claim::InFlight { .. }), "{claim:?}");
                }
            }
            assert_eq!(won.len(), keys.len(), "round {round}: every key won");
            assert!(won.values().all(|n| *n == 1), "round {round}: {won:?}");
        }
    }
    }

    crate::store::testing::store_test! {
    /// Two stores taking over one uncertain key at once: one gets it, and only its run can
    /// confirm it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_two_takeovers_of_one_uncertain_key_one_wins(fresh) {
        let (a, b) = (fresh.open().await, fresh.open().await);
        fake_owner(&a, "gone", "elsewhere", "2000-01-01T00:00:00.000Z").await;
        for round in 0..10 {
            let key = format!("k{round}");
            assert_eq!(a.claim_key(&key, "w", 1, "s", "a").await.unwrap(), Claim::Fresh);
            exec(&a, "UPDATE ledger SET owner = 'gone' WHERE state = 'sending'").await;
            let takes: Vec<_> = [(a.clone(), 2), (b.clone(), 3), (a.clone(), 4), (b.clone(), 5)]
                .into_iter()
                .map(|(store, run)| {
                    let key = key.clone();
                    tokio::spawn(async move { (run, store.reclaim_key(&key, run).await.unwrap()) })
                })
                .collect();
            let mut winners = Vec::new();
            for t in takes {
                let (run, took) = t.await.unwrap();
                if took {
                    winners.push(run);
                }
            }
            assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
            for run in [1, 2, 3, 4, 5] {
                assert_eq!(a.mark_sent(&key, run, None).await.is_ok(), run == winners[0], "round {round}, run {run}");
            }
        }
    }
    }
}
