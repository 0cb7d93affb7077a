//! Item results, written in batches: one transaction for whatever has queued up, so the run log
//! keeps up with thousands of items a second while each result still lands within milliseconds.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

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
                    if let Err(e) = store.write_items(&batch).await {
                        tracing::error!("cannot write {} item results to the run log: {e}", batch.len());
                        let _ = first_failure.set(e.to_string());
                        failure.get_or_insert(e);
                    }
                    batch.clear();
                }
                for done in flushes {
                    let _ = done.send(failure.take().map_or(Ok(()), Err));
                }
            }
        });
        ItemWriter { tx, failed }
    }

    async fn write_items(&self, batch: &[ItemResult]) -> Result<()> {
        let _gate = self.write_gate.lock().await;
        let mut conn = self.pool().acquire().await?;
        // Item results need no sync of their own: lost on a power cut, the item is redone by the
        // resume and the ledger (synced) keeps it from being delivered twice. Only the claims pay
        // for `synchronous = FULL`, and each of their syncs makes these durable too.
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
        let keys: Vec<String> =
            sqlx::query_scalar("SELECT item_key FROM items WHERE run_id = ? AND step_id = ? AND status IN ('ok', 'skipped')")
                .bind(run_id)
                .bind(step_id)
                .fetch_all(self.pool())
                .await?;
        Ok(keys.into_iter().collect())
    }
}

async fn write_items_on(conn: &mut sqlx::SqliteConnection, batch: &[ItemResult]) -> Result<()> {
    use sqlx::Connection;
    // Multi-row INSERTs: sqlx's per-statement cost, not SQLite, is what limits one-row inserts.
    const ROWS_PER_STATEMENT: usize = 500;
    let mut tx = conn.begin().await?;
    let at = now();
    for chunk in batch.chunks(ROWS_PER_STATEMENT) {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO items (run_id, step_id, item_key, seq, status, attempts, error, output, finished_at) ",
        );
        q.push_values(chunk, |mut b, r| {
            b.push_bind(r.run_id)
                .push_bind(&r.step_id)
                .push_bind(&r.key)
                .push_bind(r.seq)
                .push_bind(r.status.as_str())
                .push_bind(r.attempts as i64)
                .push_bind(&r.error)
                .push_bind(r.output.as_ref().map(|o| o.to_string()))
                .push_bind(&at);
        });
        q.push(
            " ON CONFLICT (run_id, step_id, item_key) DO UPDATE SET status = excluded.status,
               attempts = items.attempts + excluded.attempts, error = excluded.error,
               output = excluded.output, finished_at = excluded.finished_at",
        );
        q.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}
