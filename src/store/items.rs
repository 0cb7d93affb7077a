//! Item results, written in batches: one transaction for whatever has queued up, so the run log
//! keeps up with thousands of items a second while each result still lands within milliseconds.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use sqlx::{Database, QueryBuilder};
use tokio::sync::{mpsc, oneshot};

use super::db::{on_db, Db};
use super::{now, Result, Store};
use crate::engine::log::ItemResult;

enum Msg {
    Item(Box<ItemResult>),
    Flush(oneshot::Sender<Result<()>>),
}

/// Queue of item results with one background task committing them.
#[derive(Clone)]
pub struct ItemWriter {
    tx: mpsc::Sender<Msg>,
    failed: Arc<OnceLock<String>>,
}

const MAX_BATCH: usize = 2000;
/// How long a batch may wait for more results before it is written.
const GATHER: std::time::Duration = std::time::Duration::from_millis(10);

impl ItemWriter {
    pub async fn write(&self, r: ItemResult) {
        // The writer task only ends when every sender is gone, so this cannot fail while we hold one.
        let _ = self.tx.send(Msg::Item(Box::new(r))).await;
    }

    /// The first batch that could not be written, if any.
    pub fn failure(&self) -> Option<String> {
        self.failed.get().cloned()
    }

    /// Wait until everything queued so far is committed; reports the first write error since the last flush.
    pub async fn flush(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Msg::Flush(tx)).await;
        rx.await.unwrap_or(Ok(()))
    }
}

impl Store {
    pub fn item_writer(&self) -> ItemWriter {
        let (tx, mut rx) = mpsc::channel::<Msg>(4096);
        let store = self.clone();
        let failed: Arc<OnceLock<String>> = Arc::default();
        let first_failure = failed.clone();
        tokio::spawn(async move {
            let mut failure: Option<super::StoreError> = None;
            let mut batch: Vec<ItemResult> = Vec::new();
            while let Some(first) = rx.recv().await {
                let mut flushes = Vec::new();
                let mut next = Some(first);
                // Results gather for a few milliseconds: each batch takes the run log's write lock,
                // which the ledger's claims wait for, and a thousand small batches a second made
                // every claim wait behind one.
                let until = tokio::time::Instant::now() + GATHER;
                while let Some(m) = next.take() {
                    match m {
                        Msg::Item(r) => batch.push(*r),
                        Msg::Flush(done) => flushes.push(done),
                    }
                    if batch.len() < MAX_BATCH {
                        next = match rx.try_recv() {
                            Ok(m) => Some(m),
                            Err(_) if flushes.is_empty() => tokio::time::timeout_at(until, rx.recv()).await.ok().flatten(),
                            Err(_) => None,
                        };
                    }
                }
                if !batch.is_empty() {
                    match store.write_items(&batch).await {
                        Ok(()) => batch.clear(),
                        Err(e) => {
                            tracing::error!("cannot write {} item results to the run log: {e}", batch.len());
                            let _ = first_failure.set(e.to_string());
                            // Kept for the next write (a later batch, the step's flush): a run log
                            // that is back before the step ends (a killed session, a restarted
                            // server) still gets every result, among them the uncertain deliveries
                            // the run's report lists. A lapsed claim is final: the rest of its
                            // batch was committed.
                            if matches!(e, super::StoreError::ClaimLapsed { .. }) {
                                batch.clear();
                            }
                            failure.get_or_insert(e);
                        }
                    }
                }
                for done in flushes {
                    let _ = done.send(failure.take().map_or(Ok(()), Err));
                }
            }
        });
        ItemWriter { tx, failed }
    }

    /// Item results need no sync of their own: lost on a power cut, the item is redone by the
    /// resume and the ledger (synced) keeps it from being delivered twice. Only the claims pay
    /// for a sync, and each of them makes these durable too.
    pub(super) async fn write_items(&self, batch: &[ItemResult]) -> Result<()> {
        let pool = match &self.db {
            Db::Sqlite(pool) => pool,
            Db::Pg(pool) => {
                // A deadlock (a resume re-queueing the step's items while this marks some done)
                // rolled the whole transaction back: nothing of it happened, and it is tried
                // again. Failed upward, it stopped the node's work on the step.
                let lapsed = super::group_commit::again_on_deadlock(|| write_items_pg(pool, batch)).await?;
                return match lapsed {
                    None => Ok(()),
                    Some((r, count)) => Err(super::StoreError::ClaimLapsed { run_id: r.run_id, step_id: r.step_id.clone(), count }),
                };
            }
        };
        let _gate = self.write_gate.lock().await;
        let mut conn = pool.acquire().await?;
        // `synchronous = FULL` only for the claims.
        sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
        let mut written = write_items_on(&mut conn, batch).await;
        let restored = sqlx::query("PRAGMA synchronous = FULL").execute(&mut *conn).await;
        if written.is_ok() {
            written = restored.map(|_| ()).map_err(Into::into);
        }
        if written.is_err() {
            // After a write that failed on a full disk, this connection was seen to keep the
            // write lock: every later write of the process waited out busy_timeout and failed
            // "database is locked" (tests/faults_email.rs, the full-disk case). Likely cause:
            // SQLite rolled the transaction back itself, sqlx still counts it open, and its next
            // `begin` here is a SAVEPOINT whose `ROLLBACK TO` leaves a transaction open. Closed,
            // the connection lets go of whatever it holds.
            conn.close_on_drop();
        }
        written
    }

    /// Keys of the items of a step that already succeeded (or were skipped) in a run: a resume leaves them be.
    pub async fn done_keys(&self, run_id: i64, step_id: &str) -> Result<HashSet<String>> {
        let keys: Vec<String> = on_db!(&self.db, pool => sqlx::query_scalar(
            "SELECT item_key FROM items WHERE run_id = $1 AND step_id = $2 AND status IN ('ok', 'skipped')",
        )
        .bind(run_id)
        .bind(step_id)
        .fetch_all(pool)
        .await)?;
        Ok(keys.into_iter().collect())
    }
}

/// One try at writing a batch on PostgreSQL; returns the first result refused for a lapsed
/// claim, with how many were.
async fn write_items_pg<'b>(
    pool: &sqlx::PgPool,
    batch: &'b [ItemResult],
) -> std::result::Result<Option<(&'b ItemResult, usize)>, sqlx::Error> {
    // `SET LOCAL` lasts for this transaction only: no connection goes back to the pool without
    // its sync, however this ends.
    let mut tx = pool.begin_with("BEGIN; SET LOCAL synchronous_commit = off").await?;
    let at = now();
    let (kept, lapsed) = fence_shared(&mut tx, batch).await?;
    for chunk in distinct_chunks(kept.as_deref().unwrap_or(batch)) {
        upsert_items(chunk, &at).build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(lapsed)
}

/// Results of shared items (`work.rs`) are kept only where this node's claim still holds: the
/// claim is marked done in the same transaction, so a node whose lease lapsed records nothing
/// and the node that took the item over records it once. Returns the results to write (`None`:
/// all of them), and the first refused with how many were.
type Fenced<'b> = (Option<Vec<ItemResult>>, Option<(&'b ItemResult, usize)>);
async fn fence_shared<'b>(tx: &mut sqlx::PgConnection, batch: &'b [ItemResult]) -> std::result::Result<Fenced<'b>, sqlx::Error> {
    let shared: Vec<&ItemResult> = batch.iter().filter(|r| r.claim.is_some()).collect();
    if shared.is_empty() {
        return Ok((None, None));
    }
    let runs: Vec<i64> = shared.iter().map(|r| r.run_id).collect();
    let steps: Vec<&str> = shared.iter().map(|r| r.step_id.as_str()).collect();
    let seqs: Vec<i64> = shared.iter().map(|r| r.seq).collect();
    let tokens: Vec<i64> = shared.iter().map(|r| r.claim.unwrap_or_default()).collect();
    let succeeded: Vec<bool> = shared.iter().map(|r| r.status != crate::engine::log::ItemStatus::Failed).collect();
    // The rows are locked in key order, the order a resume's re-queue (`queue_items`) locks
    // them in: an UPDATE joined to the batch locked them in whatever order its join gave, and
    // the two deadlocked. The UPDATE finds them by key, not by the `ctid` the lock saw: a row
    // another transaction changed (the heartbeat) since this statement's snapshot has a new
    // `ctid`, which the UPDATE's scan would not see, and the result was dropped as lapsed.
    let held: Vec<(i64, String, i64)> = sqlx::query_as(
        "WITH f AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bool[]) AS f(run_id, step_id, seq, token, ok)),
         l AS MATERIALIZED (SELECT f.* FROM work_items w JOIN f
               ON w.run_id = f.run_id AND w.step_id = f.step_id AND w.seq = f.seq AND w.token = f.token
             WHERE w.state = 'claimed' AND w.lease_until >= clock_timestamp()
             ORDER BY w.run_id, w.step_id, w.seq FOR UPDATE OF w)
         UPDATE work_items w SET state = 'done', lease_until = NULL, succeeded = l.ok
         FROM l WHERE w.run_id = l.run_id AND w.step_id = l.step_id AND w.seq = l.seq AND w.token = l.token
           AND w.state = 'claimed' AND w.lease_until >= clock_timestamp()
         RETURNING w.run_id, w.step_id, w.seq",
    )
    .bind(&runs)
    .bind(&steps)
    .bind(&seqs)
    .bind(&tokens)
    .bind(&succeeded)
    .fetch_all(&mut *tx)
    .await?;
    let held: HashSet<(i64, &str, i64)> = held.iter().map(|(r, s, q)| (*r, s.as_str(), *q)).collect();
    let mut lapsed: Option<(&ItemResult, usize)> = None;
    let mut kept = Vec::with_capacity(batch.len());
    for r in batch {
        if r.claim.is_none() || held.contains(&(r.run_id, r.step_id.as_str(), r.seq)) {
            kept.push(r.clone());
        } else {
            lapsed.get_or_insert((r, 0)).1 += 1;
        }
    }
    Ok((Some(kept), lapsed))
}

/// Multi-row INSERTs: sqlx's per-statement cost, not SQLite, is what limits one-row inserts.
const ROWS_PER_STATEMENT: usize = 500;

async fn write_items_on(conn: &mut sqlx::SqliteConnection, batch: &[ItemResult]) -> Result<()> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    let at = now();
    for chunk in batch.chunks(ROWS_PER_STATEMENT) {
        upsert_items(chunk, &at).build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// One statement writing `rows` (a result again for an item adds its attempts).
fn upsert_items<'a, DB: Database>(rows: &'a [ItemResult], at: &'a String) -> QueryBuilder<DB>
where
    DB::Arguments: Default,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a Option<String>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<String>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let mut q = QueryBuilder::new("INSERT INTO items (run_id, step_id, item_key, seq, status, attempts, error, output, finished_at) ");
    q.push_values(rows, |mut b, r| {
        b.push_bind(r.run_id)
            .push_bind(&r.step_id)
            .push_bind(&r.key)
            .push_bind(r.seq)
            .push_bind(r.status.as_str())
            .push_bind(r.attempts as i64)
            .push_bind(&r.error)
            .push_bind(r.output.as_ref().map(|o| o.to_string()))
            .push_bind(at);
    });
    q.push(
        " ON CONFLICT (run_id, step_id, item_key) DO UPDATE SET status = excluded.status,
           attempts = items.attempts + excluded.attempts, error = excluded.error,
           output = excluded.output, finished_at = excluded.finished_at",
    );
    q
}

/// The batch in runs of at most `ROWS_PER_STATEMENT`, none holding one item twice: PostgreSQL
/// refuses a statement whose upsert would change a row twice, where SQLite applies the rows in
/// turn. An item seen again starts the next statement, which keeps that order.
fn distinct_chunks(batch: &[ItemResult]) -> Vec<&[ItemResult]> {
    let mut chunks = Vec::new();
    let mut seen: HashSet<(i64, &str, &str)> = HashSet::new();
    let mut start = 0;
    for (i, r) in batch.iter().enumerate() {
        let id = (r.run_id, r.step_id.as_str(), r.key.as_str());
        if i - start == ROWS_PER_STATEMENT || seen.contains(&id) {
            chunks.push(&batch[start..i]);
            start = i;
            seen.clear();
        }
        seen.insert(id);
    }
    if start < batch.len() {
        chunks.push(&batch[start..]);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::log::ItemStatus;

    fn result(run_id: i64, key: &str, status: ItemStatus, attempts: u32, seq: i64) -> ItemResult {
        let output = (status == ItemStatus::Ok).then(|| serde_json::json!({"key": key}));
        ItemResult { run_id, step_id: "mail".into(), key: key.into(), seq, status, attempts, error: None, output, claim: None }
    }

    async fn attempts(store: &Store, run_id: i64, key: &str) -> (String, i64) {
        on_db!(&store.db, pool => sqlx::query_as("SELECT status, attempts FROM items WHERE run_id = $1 AND item_key = $2")
            .bind(run_id)
            .bind(key)
            .fetch_one(pool)
            .await)
        .unwrap()
    }

    crate::store::testing::store_test! {
    /// Results written in batches: many of them (more than one statement's rows), an item
    /// written again (its attempts add up, its last status stands), also twice in one batch.
    #[tokio::test]
    async fn item_results_are_written_and_a_result_again_adds_its_attempts(fresh) {
        let store = fresh.open().await;
        let run = crate::store::testing::manual_run(&store).await;
        let w = store.item_writer();
        for i in 0..1200 {
            let status = [ItemStatus::Ok, ItemStatus::Failed, ItemStatus::Skipped][i % 3];
            w.write(result(run, &format!("k{i}"), status, 1, i as i64)).await;
        }
        w.flush().await.unwrap();
        let done = store.done_keys(run, "mail").await.unwrap();
        assert_eq!(done.len(), 800);
        assert!(done.contains("k0") && done.contains("k2") && !done.contains("k1"));
        // k1, k4 and k7 failed; their retries succeed, k4 twice in one batch (failed again, then ok).
        store
            .write_items(&[
                result(run, "k1", ItemStatus::Ok, 2, 1),
                result(run, "k4", ItemStatus::Failed, 1, 4),
                result(run, "k7", ItemStatus::Ok, 1, 7),
                result(run, "k4", ItemStatus::Ok, 3, 4),
            ])
            .await
            .unwrap();
        assert_eq!(attempts(&store, run, "k1").await, ("ok".into(), 3));
        assert_eq!(attempts(&store, run, "k4").await, ("ok".into(), 5));
        assert_eq!(attempts(&store, run, "k7").await, ("ok".into(), 2));
        assert_eq!(store.done_keys(run, "mail").await.unwrap().len(), 803, "k1, k4 and k7 failed before");
        assert!(store.done_keys(run + 1, "mail").await.unwrap().is_empty());
    }
    }

    /// A batch the run log refused is written with the next one, or at the flush: results of a
    /// run log that is back before the step ends are not lost (the first failure is still
    /// reported, so the step stops as it did).
    #[tokio::test]
    async fn a_refused_batch_is_written_once_the_run_log_is_back() {
        let fresh = crate::store::testing::sqlite().await;
        let store = fresh.open().await;
        let run = crate::store::testing::manual_run(&store).await;
        let Db::Sqlite(pool) = &store.db else { unreachable!() };
        sqlx::query("CREATE TRIGGER refuse BEFORE INSERT ON items BEGIN SELECT RAISE(ABORT, 'refused'); END").execute(pool).await.unwrap();
        let w = store.item_writer();
        w.write(result(run, "a", ItemStatus::Failed, 1, 0)).await;
        w.write(result(run, "b", ItemStatus::Ok, 1, 1)).await;
        let e = w.flush().await.unwrap_err();
        assert!(e.to_string().contains("refused"), "{e}");
        assert!(w.failure().is_some_and(|f| f.contains("refused")));
        sqlx::query("DROP TRIGGER refuse").execute(pool).await.unwrap();
        w.write(result(run, "c", ItemStatus::Ok, 1, 2)).await;
        w.flush().await.unwrap();
        assert_eq!(attempts(&store, run, "a").await, ("failed".into(), 1));
        assert_eq!(attempts(&store, run, "b").await, ("ok".into(), 1));
        assert_eq!(attempts(&store, run, "c").await, ("ok".into(), 1));
        assert!(w.failure().is_some(), "the first failure is kept for the step");
    }

    #[test]
    fn chunks_hold_no_item_twice_and_keep_the_order() {
        let r = |k: &str| result(1, k, ItemStatus::Ok, 1, 0);
        let batch: Vec<_> = ["a", "b", "a", "c", "b", "b"].into_iter().map(r).collect();
        let keys: Vec<Vec<&str>> = distinct_chunks(&batch).iter().map(|c| c.iter().map(|r| r.key.as_str()).collect()).collect();
        assert_eq!(keys, [vec!["a", "b"], vec!["a", "c", "b"], vec!["b"]]);
        let many: Vec<_> = (0..1001).map(|i| r(&i.to_string())).collect();
        assert_eq!(distinct_chunks(&many).iter().map(|c| c.len()).collect::<Vec<_>>(), [500, 500, 1]);
        assert!(distinct_chunks(&[]).is_empty());
    }
}
