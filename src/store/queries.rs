//! Reading the run log back for `cxflow runs`, `cxflow show` and resume.

use futures::stream::BoxStream;
use futures::StreamExt;
use serde::Serialize;
use sqlx::FromRow;

use super::db::on_db;
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
        impl sqlx::Type<sqlx::Postgres> for $t {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <str as sqlx::Type<sqlx::Postgres>>::type_info()
            }
            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }
        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $t {
            fn decode(v: sqlx::postgres::PgValueRef<'r>) -> std::result::Result<Self, sqlx::error::BoxDynError> {
                let s = <&str as sqlx::Decode<sqlx::Postgres>>::decode(v)?;
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

/// `LIMIT` of a list the caller did not bound: the most rows there can be (PostgreSQL takes no
/// negative limit, which SQLite reads as none).
fn no_limit_if_zero(limit: i64) -> i64 {
    if limit > 0 {
        limit
    } else {
        i64::MAX
    }
}

/// A step's ok outputs: one range of `items_step_status_seq`, in its order (ties in `seq` as
/// first written).
pub(crate) const ITEM_OUTPUTS: &str = "SELECT output FROM items WHERE run_id = $1 AND step_id = $2 AND status = 'ok' ORDER BY seq, rowid";

impl Store {
    pub async fn runs(&self, f: &RunFilter) -> Result<Vec<RunRow>> {
        let rows = on_db!(&self.db, pool => sqlx::query_as(
            "SELECT id, workflow, file, trigger, params, scheduled_for, started_at, finished_at, status, error, resumes
             FROM runs WHERE ($1 IS NULL OR workflow = $1) AND ($2 IS NULL OR status = $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(&f.workflow)
        .bind(&f.status)
        .bind(no_limit_if_zero(f.limit))
        .fetch_all(pool)
        .await)?;
        Ok(rows)
    }

    pub async fn run(&self, id: i64) -> Result<RunRow> {
        on_db!(&self.db, pool => sqlx::query_as(
            "SELECT id, workflow, file, trigger, params, scheduled_for, started_at, finished_at, status, error, resumes
             FROM runs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await)?
        .ok_or(StoreError::NoSuchRun(id))
    }

    pub async fn steps(&self, run_id: i64) -> Result<Vec<StepRow>> {
        Ok(on_db!(&self.db, pool => sqlx::query_as(
            "SELECT step_id, position, kind, status, ok, failed, skipped, started_at, finished_at, error, output
             FROM steps WHERE run_id = $1 ORDER BY position",
        )
        .bind(run_id)
        .fetch_all(pool)
        .await)?)
    }

    /// Items of a run with the given status (all when `None`), in input order.
    pub async fn items(&self, run_id: i64, status: Option<&str>, limit: i64) -> Result<Vec<ItemRow>> {
        // Items sharing a `seq` (a resume over a changed input) in the order they were first
        // written (`rowid`, a column of that name on PostgreSQL), as the dashboard pages them.
        let sql = "SELECT step_id, item_key, status, attempts, error, output FROM items
             WHERE run_id = $1 AND ($2 IS NULL OR status = $2) ORDER BY step_id, seq, rowid LIMIT $3";
        Ok(on_db!(&self.db, pool => sqlx::query_as(sql)
            .bind(run_id)
            .bind(status)
            .bind(no_limit_if_zero(limit))
            .fetch_all(pool)
            .await)?)
    }

    pub async fn artifacts(&self, run_id: i64) -> Result<Vec<ArtifactRow>> {
        Ok(on_db!(&self.db, pool => sqlx::query_as("SELECT step_id, item_key, kind, path FROM artifacts WHERE run_id = $1 ORDER BY id")
            .bind(run_id)
            .fetch_all(pool)
            .await)?)
    }

    /// Ledger keys this run left `sending`: their side effect may or may not have happened.
    pub async fn uncertain_keys(&self, run_id: i64) -> Result<Vec<LedgerRow>> {
        Ok(on_db!(&self.db, pool => sqlx::query_as(
            "SELECT key, step_id, item_key, state FROM ledger WHERE run_id = $1 AND state = 'sending' ORDER BY key"
        )
        .bind(run_id)
        .fetch_all(pool)
        .await)?)
    }

    /// Items of a run that failed because their delivery is uncertain (their error says so and
    /// what to do): (step, item key). (SQLite's `LIKE` ignores ASCII case; so does `ILIKE` on
    /// PostgreSQL's `"C"` text.)
    pub async fn uncertain_items(&self, run_id: i64) -> Result<Vec<(String, String)>> {
        let sql = self.db.sql(
            "SELECT step_id, item_key FROM items WHERE run_id = $1 AND status = 'failed' AND error LIKE 'uncertain: %'
             ORDER BY step_id, seq, rowid",
            "SELECT step_id, item_key FROM items WHERE run_id = $1 AND status = 'failed' AND error ILIKE 'uncertain: %'
             ORDER BY step_id, seq, rowid",
        );
        Ok(on_db!(&self.db, pool => sqlx::query_as(sql).bind(run_id).fetch_all(pool).await)?)
    }

    /// Outputs of the successful items of a step, in input order, streamed.
    pub fn item_outputs(&self, run_id: i64, step_id: &str) -> BoxStream<'static, Result<Option<String>>> {
        let db = self.db.clone();
        let step_id = step_id.to_string();
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        tokio::spawn(async move {
            on_db!(&db, pool => {
                let mut rows = sqlx::query_scalar::<_, Option<String>>(ITEM_OUTPUTS).bind(run_id).bind(&step_id).fetch(pool);
                while let Some(r) = rows.next().await {
                    if tx.send(r.map_err(StoreError::from)).await.is_err() {
                        break;
                    }
                }
            })
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
    use crate::store::db::Backend;
    use crate::store::NewRun;

    crate::store::testing::store_test! {
    #[tokio::test]
    async fn statuses_are_constrained_and_an_unknown_one_reads_back_as_an_error(fresh) {
        let store = fresh.open().await;
        let id = crate::store::testing::manual_run(&store).await;
        assert_eq!(store.run(id).await.unwrap().status, RunStatus::Running);
        let exec = |sql: &'static str| {
            let store = store.clone();
            async move { on_db!(&store.db, pool => sqlx::query(sql).bind(id).execute(pool).await.map(|_| ())) }
        };
        let bad = exec("UPDATE runs SET status = 'done' WHERE id = $1").await.unwrap_err().to_string();
        let (runs_refused, items_refused) = match store.backend() {
            Backend::Sqlite => ("runs: unknown status or trigger", "CHECK constraint failed"),
            Backend::Postgres => ("violates check constraint \"runs_status_check\"", "violates check constraint \"items_status_check\""),
        };
        assert!(bad.contains(runs_refused), "{bad}");
        let bad = exec(
            "INSERT INTO items (run_id, step_id, item_key, seq, status, attempts, finished_at) VALUES ($1, 's', 'k', 1, 'maybe', 1, 'now')",
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(bad.contains(items_refused), "items.status is checked: {bad}");
        // A run log written by something that knows more statuses: reading it is an error, not a default.
        match store.backend() {
            Backend::Sqlite => exec("DROP TRIGGER runs_status_update_check").await.unwrap(),
            Backend::Postgres => exec("ALTER TABLE runs DROP CONSTRAINT runs_status_check").await.unwrap(),
        }
        exec("UPDATE runs SET status = 'done' WHERE id = $1").await.unwrap();
        let e = store.run(id).await.unwrap_err().to_string();
        assert!(e.contains("the run log holds run status `done`, which this version of cxflow does not know"), "{e}");
    }
    }

    /// `q` with `ids` bound as `$1`, `$2`, ...
    async fn exec(store: &Store, q: &'static str, ids: &[i64]) {
        on_db!(&store.db, pool => {
            let mut query = sqlx::query(q);
            for id in ids {
                query = query.bind(*id);
            }
            query.execute(pool).await.map(|_| ())
        })
        .unwrap_or_else(|e| panic!("{q}: {e}"));
    }

    crate::store::testing::store_test! {
    #[tokio::test]
    async fn a_run_reads_back_whole_in_order(fresh) {
        let store = fresh.open().await;
        let p = serde_json::json!({"a": 1});
        let new = |workflow| NewRun { workflow, file: "w.yaml", trigger: TriggerKind::Schedule, params: &p, scheduled_for: None };
        let r1 = store.start_run(new("w")).await.unwrap();
        let r2 = store.start_run(new("v")).await.unwrap();
        store.finish_run(r1, RunStatus::Partial, Some("2 failed")).await.unwrap();
        exec(
            &store,
            "INSERT INTO steps (run_id, step_id, position, kind, status, started_at) VALUES
               ($1, 'send', 1, 'send_email', 'partial', 'now'), ($1, 'read', 0, 'read_csv', 'succeeded', 'now')",
            &[r1],
        )
        .await;
        // Two items of `send` share a `seq` (a resume over a changed input): the first written
        // comes first. Written in an order that is neither the keys' nor the seqs'.
        for (key, seq, status, error) in [
            ("m", 2, "ok", None),
            ("c", 1, "failed", Some("uncertain: resend with --retry-uncertain")),
            ("b", 2, "ok", None),
            ("a", 3, "failed", Some("Uncertain: as an older version worded it")),
            ("z", 0, "failed", Some("refused")),
        ] {
            let error = error.map(|e| format!("'{e}'")).unwrap_or_else(|| "NULL".into());
            let q = format!(
                "INSERT INTO items (run_id, step_id, item_key, seq, status, attempts, error, output, finished_at)
                 VALUES ($1, 'send', '{key}', {seq}, '{status}', 1, {error}, '\"{key}\"', 'now')"
            );
            on_db!(&store.db, pool => sqlx::query(sqlx::AssertSqlSafe(q)).bind(r1).execute(pool).await.map(|_| ())).unwrap();
        }
        exec(&store, "INSERT INTO items (run_id, step_id, item_key, seq, status, attempts, finished_at) VALUES ($1, 'read', 'r', 5, 'ok', 1, 'now')", &[r1]).await;
        exec(
            &store,
            "INSERT INTO ledger (key, workflow, run_id, step_id, item_key, state, updated_at) VALUES
               ('w/send/c', 'w', $1, 'send', 'c', 'sending', 'now'), ('w/send/a', 'w', $1, 'send', 'a', 'sending', 'now'),
               ('w/send/m', 'w', $1, 'send', 'm', 'sent', 'now')",
            &[r1],
        )
        .await;
        let art = |key: &str| crate::engine::log::NewArtifact {
            step_id: "send".into(),
            item_key: Some(key.into()),
            kind: "eml".into(),
            path: format!("{key}.eml"),
        };
        store.add_artifacts(r1, &[art("m"), art("c")]).await.unwrap();

        let ids = |f: RunFilter| {
            let store = store.clone();
            async move { store.runs(&f).await.unwrap().iter().map(|r| r.id).collect::<Vec<_>>() }
        };
        assert_eq!(ids(RunFilter::default()).await, [r2, r1], "newest first; a limit of 0 is none");
        assert_eq!(ids(RunFilter { limit: 1, ..Default::default() }).await, [r2]);
        assert_eq!(ids(RunFilter { workflow: Some("w".into()), ..Default::default() }).await, [r1]);
        assert_eq!(ids(RunFilter { status: Some("running".into()), ..Default::default() }).await, [r2]);
        let run = store.run(r1).await.unwrap();
        assert_eq!((run.workflow.as_str(), run.trigger, run.status, run.error.as_deref()), ("w", TriggerKind::Schedule, RunStatus::Partial, Some("2 failed")));
        assert_eq!((run.params.as_str(), run.resumes, run.finished_at.is_some()), (r#"{"a":1}"#, 0, true));
        assert!(matches!(store.run(r2 + 1).await, Err(StoreError::NoSuchRun(_))));
        let steps: Vec<_> = store.steps(r1).await.unwrap().into_iter().map(|s| (s.step_id, s.position, s.status)).collect();
        assert_eq!(steps, [("read".into(), 0, StepStatus::Succeeded), ("send".into(), 1, StepStatus::Partial)]);

        let keys = |status: Option<&'static str>, limit: i64| {
            let store = store.clone();
            async move { store.items(r1, status, limit).await.unwrap().into_iter().map(|i| i.item_key).collect::<Vec<_>>() }
        };
        assert_eq!(keys(None, 0).await, ["r", "z", "c", "m", "b", "a"], "by step, then seq, then as written");
        assert_eq!(keys(None, 3).await, ["r", "z", "c"]);
        assert_eq!(keys(Some("failed"), 0).await, ["z", "c", "a"]);
        let failed = store.items(r1, Some("failed"), 1).await.unwrap();
        assert_eq!((failed[0].status, failed[0].error.as_deref(), failed[0].output.as_deref()), (ItemStatus::Failed, Some("refused"), Some(r#""z""#)));
        let outputs: Vec<_> = store.item_outputs(r1, "send").map(|o| o.unwrap()).collect().await;
        assert_eq!(outputs, [Some(r#""m""#.to_string()), Some(r#""b""#.to_string())], "ok items only, seq then as written");
        let uncertain = store.uncertain_items(r1).await.unwrap();
        assert_eq!(uncertain, [("send".to_string(), "c".to_string()), ("send".to_string(), "a".to_string())], "whatever the ASCII case");
        let ledger: Vec<_> = store.uncertain_keys(r1).await.unwrap().into_iter().map(|l| l.key).collect();
        assert_eq!(ledger, ["w/send/a", "w/send/c"]);
        let arts: Vec<_> = store.artifacts(r1).await.unwrap().into_iter().map(|a| a.path).collect();
        assert_eq!(arts, ["m.eml", "c.eml"]);
        assert!(store.artifacts(r2).await.unwrap().is_empty() && store.steps(r2).await.unwrap().is_empty());
    }
    }
}
