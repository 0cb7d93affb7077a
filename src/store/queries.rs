//! Reading the run log back for `cxflow runs`, `cxflow show` and resume.

use futures::stream::BoxStream;
use futures::StreamExt;
use serde::Serialize;
use sqlx::FromRow;

use super::{ItemStatus, Result, RunStatus, StepStatus, Store, StoreError, TriggerKind};

/// Statuses are stored as their words; a word this version does not know is a decode error
/// naming it, never a default.
macro_rules! status_column {
    ($($t:ty),+) => {$(
        impl sqlx::Type<sqlx::Sqlite> for $t {
            fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
                <str as sqlx::Type<sqlx::Sqlite>>::type_info()
            }
            fn compatible(ty: &sqlx::sqlite::SqliteTypeInfo) -> bool {
                <str as sqlx::Type<sqlx::Sqlite>>::compatible(ty)
            }
        }
        impl<'r> sqlx::Decode<'r, sqlx::Sqlite> for $t {
            fn decode(v: sqlx::sqlite::SqliteValueRef<'r>) -> std::result::Result<Self, sqlx::error::BoxDynError> {
                let s = <&str as sqlx::Decode<sqlx::Sqlite>>::decode(v)?;
                Ok(s.parse::<$t>()?)
            }
        }
    )+};
}
status_column!(RunStatus, StepStatus, ItemStatus, TriggerKind);

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct RunRow {
    pub id: i64,
    pub workflow: String,
    pub file: String,
    pub trigger: TriggerKind,
    pub params: String,
    pub scheduled_for: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: RunStatus,
    pub error: Option<String>,
    pub resumes: i64,
}

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct StepRow {
    pub step_id: String,
    pub position: i64,
    pub kind: String,
    pub status: StepStatus,
    pub ok: i64,
    pub failed: i64,
    pub skipped: i64,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    /// JSON summary of a batch step (counts, files, error samples).
    pub output: Option<String>,
}

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ItemRow {
    pub step_id: String,
    pub item_key: String,
    pub status: ItemStatus,
    pub attempts: i64,
    pub error: Option<String>,
    pub output: Option<String>,
}

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ArtifactRow {
    pub step_id: String,
    pub item_key: Option<String>,
    pub kind: String,
    pub path: String,
}

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct LedgerRow {
    pub key: String,
    pub step_id: String,
    pub item_key: String,
    pub state: String,
}

#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub workflow: Option<String>,
    pub status: Option<String>,
    pub limit: i64,
}

impl Store {
    pub async fn runs(&self, f: &RunFilter) -> Result<Vec<RunRow>> {
        let rows = sqlx::query_as(
            "SELECT id, workflow, file, trigger, params, scheduled_for, started_at, finished_at, status, error, resumes
             FROM runs WHERE (?1 IS NULL OR workflow = ?1) AND (?2 IS NULL OR status = ?2) ORDER BY id DESC LIMIT ?3",
        )
        .bind(&f.workflow)
        .bind(&f.status)
        .bind(if f.limit > 0 { f.limit } else { -1 })
        .fetch_all(self.pool())
        .await?;
        Ok(rows)
    }

    pub async fn run(&self, id: i64) -> Result<RunRow> {
        sqlx::query_as(
            "SELECT id, workflow, file, trigger, params, scheduled_for, started_at, finished_at, status, error, resumes
             FROM runs WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NoSuchRun(id))
    }

    pub async fn steps(&self, run_id: i64) -> Result<Vec<StepRow>> {
        Ok(sqlx::query_as(
            "SELECT step_id, position, kind, status, ok, failed, skipped, started_at, finished_at, error, output
             FROM steps WHERE run_id = ? ORDER BY position",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Items of a run with the given status (all when `None`), in input order.
    pub async fn items(&self, run_id: i64, status: Option<&str>, limit: i64) -> Result<Vec<ItemRow>> {
        Ok(sqlx::query_as(
            "SELECT step_id, item_key, status, attempts, error, output FROM items
             WHERE run_id = ?1 AND (?2 IS NULL OR status = ?2) ORDER BY step_id, seq LIMIT ?3",
        )
        .bind(run_id)
        .bind(status)
        .bind(if limit > 0 { limit } else { -1 })
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn artifacts(&self, run_id: i64) -> Result<Vec<ArtifactRow>> {
        Ok(sqlx::query_as("SELECT step_id, item_key, kind, path FROM artifacts WHERE run_id = ? ORDER BY id")
            .bind(run_id)
            .fetch_all(self.pool())
            .await?)
    }

    /// Ledger keys this run left `sending`: their side effect may or may not have happened.
    pub async fn uncertain_keys(&self, run_id: i64) -> Result<Vec<LedgerRow>> {
        Ok(sqlx::query_as("SELECT key, step_id, item_key, state FROM ledger WHERE run_id = ? AND state = 'sending' ORDER BY key")
            .bind(run_id)
            .fetch_all(self.pool())
            .await?)
    }

    /// Items of a run that failed because their delivery is uncertain (their error says so and
    /// what to do): (step, item key).
    pub async fn uncertain_items(&self, run_id: i64) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT step_id, item_key FROM items WHERE run_id = ? AND status = 'failed' AND error LIKE 'uncertain: %' ORDER BY step_id, seq",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Outputs of the successful items of a step, in input order, streamed.
    pub fn item_outputs(&self, run_id: i64, step_id: &str) -> BoxStream<'static, Result<Option<String>>> {
        let pool = self.pool().clone();
        let step_id = step_id.to_string();
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        tokio::spawn(async move {
            let mut rows = sqlx::query_scalar::<_, Option<String>>(
                "SELECT output FROM items WHERE run_id = ? AND step_id = ? AND status = 'ok' ORDER BY seq",
            )
            .bind(run_id)
            .bind(&step_id)
            .fetch(&pool);
            while let Some(r) = rows.next().await {
                if tx.send(r.map_err(StoreError::from)).await.is_err() {
                    break;
                }
            }
        });
        tokio_stream_from(rx)
    }
}

fn tokio_stream_from<T: Send + 'static>(mut rx: tokio::sync::mpsc::Receiver<T>) -> BoxStream<'static, T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewRun;

    #[tokio::test]
    async fn statuses_are_constrained_and_an_unknown_one_reads_back_as_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("s.db").display())).await.unwrap();
        let p = serde_json::json!({});
        let id = store
            .start_run(NewRun { workflow: "w", file: "w.yaml", trigger: TriggerKind::Manual, params: &p, scheduled_for: None })
            .await
            .unwrap();
        assert_eq!(store.run(id).await.unwrap().status, RunStatus::Running);
        let bad = sqlx::query("UPDATE runs SET status = 'done' WHERE id = ?").bind(id).execute(store.pool()).await;
        assert!(bad.unwrap_err().to_string().contains("runs: unknown status or trigger"));
        let bad = sqlx::query(
            "INSERT INTO items (run_id, step_id, item_key, seq, status, attempts, finished_at) VALUES (?, 's', 'k', 1, 'maybe', 1, 'now')",
        )
        .bind(id)
        .execute(store.pool())
        .await;
        assert!(bad.unwrap_err().to_string().contains("CHECK constraint failed"), "items.status is checked");
        // A run log written by something that knows more statuses: reading it is an error, not a default.
        sqlx::query("DROP TRIGGER runs_status_update_check").execute(store.pool()).await.unwrap();
        sqlx::query("UPDATE runs SET status = 'done' WHERE id = ?").bind(id).execute(store.pool()).await.unwrap();
        let e = store.run(id).await.unwrap_err().to_string();
        assert!(e.contains("the run log holds run status `done`, which this version of cxflow does not know"), "{e}");
    }
}
