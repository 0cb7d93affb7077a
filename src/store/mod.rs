//! The run log. Owns every SQL string and the migrations, and speaks in domain terms.
//! The only module that knows it talks to SQLite.

mod actions;
mod cancel;
mod dashboard;
// replaced by store/dashboard.rs at merge
mod digests;
mod group_commit;
mod items;
mod ledger;
mod metrics;
mod owner;
mod pauses;
mod prune;
mod queries;
mod resolve;
mod run_log;
mod schedule;
mod step_rows;
#[cfg(test)]
mod tests;
mod web_sessions;

use std::str::FromStr;
use std::time::Duration;

use chrono::Utc;
use sqlx::sqlite::{SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::engine::log::NewArtifact;
pub use crate::engine::log::{Claim, DigestFigures, ItemResult, ItemStatus, NewRun, PreviousDigest, RunStatus, StepStatus, TriggerKind};
pub use actions::{ActionFilter, ActionRow, NewAction};
pub use cancel::CancelRequest;
pub use dashboard::{
    parse_time_bound, ArtifactWithId, BadCursor, BadTime, DigestPoint, DigestTeam, ItemCursor, ItemRowWithSeq, ItemsQuery, Page,
    RunLogStats, RunPoint, RunsQuery, StepCounts, UncertainRow, WorkflowSummary, DEFAULT_LIMIT, FAILURE_DAYS, MAX_HISTORY, MAX_LIMIT,
    RECENT_RUNS,
};
pub use digests::{IdsSender, RoutingWriter};
pub use items::ItemWriter;
pub use metrics::{DurationTally, MetricFigures, PendingTally, RunTally, SkipTally, StepTally, SKIP_OTHER, SKIP_REASONS};
pub use pauses::Pause;
pub use queries::{ArtifactRow, ItemRow, LedgerRow, RunFilter, RunRow, StepRow};
pub use resolve::{Resolution, ResolveError};
pub use schedule::{PruneReport, Retention};
pub use web_sessions::{SessionLife, WebSession};

// The sqlx error is part of each message and deliberately not a `source`: `{:#}` would print it
// again, and sqlx's database errors repeat their own cause, so one reason showed three times.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the run log `{url}`: {reason}; check `database_url` in cxflow.yaml or CXFLOW_DATABASE_URL")]
    Open { url: String, reason: sqlx::Error },
    #[error("cannot update the run log `{url}`: {reason}")]
    Migrate { url: String, reason: sqlx::migrate::MigrateError },
    #[error("run log query failed: {0}")]
    Query(sqlx::Error),
    #[error("there is no run {0}; `cxflow runs` lists them")]
    NoSuchRun(i64),
    /// This process's lease lapsed (its heartbeat could not be written): another process may
    /// now take over its keys, so it must not claim or confirm any more.
    #[error("this process's lease in the run log has lapsed (its heartbeat could not be written); it stops before sending anything more")]
    LeaseLost,
    /// A confirm or release of a key this run no longer owns.
    #[error("delivery key `{key}` is no longer claimed by run {run_id}: {why}")]
    Fenced { key: String, run_id: i64, why: String },
    /// A batch of ledger writes could not be committed (none of it happened).
    #[error("run log write failed: {0}")]
    Batch(String),
    #[error("run {run_id} is still running in process {pid} on {host}; wait for it to finish, or stop it first")]
    StillRunning { run_id: i64, pid: i64, host: String },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Query(e)
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    /// Set once this process registered as an owner (see `owner.rs`).
    owner_registered: std::sync::Arc<tokio::sync::OnceCell<()>>,
    /// Ledger claims, confirms and releases, committed together with one sync (`group_commit.rs`).
    ledger_claims: group_commit::GroupCommit,
    /// Taken around this process's batch transactions (item results, ledger writes). Two of our
    /// own connections wanting SQLite's write lock at once would make one sleep in SQLite's busy
    /// handler (1 ms, then more), while a synced commit holds the lock: waiting here instead is
    /// a hand-over, not a sleep.
    write_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
}

pub(crate) fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Store {
    /// Open (creating if missing) the SQLite run log at `url` and bring its schema up to date.
    pub async fn open(url: &str) -> Result<Store> {
        // A second process creating the same new file at the same moment can find it locked
        // while the first switches it to WAL (SQLite answers that at once, without waiting for
        // `busy_timeout`): wait a little and open it again.
        let mut tries = 0u64;
        loop {
            match Store::open_once(url).await {
                Err(StoreError::Open { reason, .. }) if tries < 40 && reason.to_string().contains("database is locked") => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(25 * tries.min(8))).await;
                }
                r => return r,
            }
        }
    }

    async fn open_once(url: &str) -> Result<Store> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|reason| StoreError::Open { url: url.into(), reason })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // A claim must be on disk before the email leaves: with WAL, FULL syncs the log at
            // every commit (NORMAL can lose the last commits on a power cut).
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        // Lets retention give space back (`PRAGMA incremental_vacuum`). Set once, when the file is
        // created (it must precede WAL mode and the first table): as an option of every connection
        // it would ask for the write lock each time the pool grows and wait behind a running step.
        if !opts.get_filename().exists() {
            use sqlx::Connection;
            let first = sqlx::SqliteConnection::connect_with(&opts.clone().auto_vacuum(SqliteAutoVacuum::Incremental))
                .await
                .map_err(|reason| StoreError::Open { url: url.into(), reason })?;
            first.close().await?;
        }
        // No test query at checkout: a local file has no connection to lose, and the test was a
        // round trip to the connection's thread in front of every read.
        let pool = SqlitePoolOptions::new()
            .max_connections(6)
            .test_before_acquire(false)
            .connect_with(opts)
            .await
            .map_err(|reason| StoreError::Open { url: url.into(), reason })?;
        migrate(&pool).await.map_err(|reason| StoreError::Migrate { url: url.into(), reason })?;
        Ok(Store { pool, owner_registered: Default::default(), ledger_claims: Default::default(), write_gate: Default::default() })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub async fn start_run(&self, r: NewRun<'_>) -> Result<i64> {
        let owner = self.register_owner().await?;
        let id = sqlx::query_scalar(
            "INSERT INTO runs (workflow, file, trigger, params, scheduled_for, started_at, status, pid, owner)
             VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?) RETURNING id",
        )
        .bind(r.workflow)
        .bind(r.file)
        .bind(r.trigger.as_str())
        .bind(r.params.to_string())
        .bind(r.scheduled_for.map(|t| t.to_rfc3339()))
        .bind(now())
        .bind(std::process::id() as i64)
        .bind(owner)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// Mark a run as running again for a resume, owned by this process; refused while the run's
    /// owner is alive (two resumes at once, or a resume of a run still going).
    pub async fn reopen_run(&self, run_id: i64) -> Result<()> {
        let owner = self.register_owner().await?;
        let (status, old, pid): (String, Option<String>, Option<i64>) = sqlx::query_as("SELECT status, owner, pid FROM runs WHERE id = ?")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NoSuchRun(run_id))?;
        if status == "running" && old.as_deref() != Some(owner) && self.owner_alive(old.as_deref()).await? {
            let host = match old.as_deref() {
                Some(o) => self.owner(o).await?.map(|o| o.host).unwrap_or_default(),
                None => String::new(),
            };
            return Err(StoreError::StillRunning { run_id, pid: pid.unwrap_or(0), host });
        }
        // Compare-and-set on the old owner: of two resumes racing here, one wins.
        let changed = sqlx::query(
            "UPDATE runs SET status = 'running', finished_at = NULL, error = NULL, resumes = resumes + 1, pid = ?, owner = ?
             WHERE id = ? AND owner IS ?",
        )
        .bind(std::process::id() as i64)
        .bind(owner)
        .bind(run_id)
        .bind(&old)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::StillRunning { run_id, pid: 0, host: "another process".into() });
        }
        // A cancel request was for the run as it went before; the resume must not stop at once.
        self.clear_cancel(run_id).await
    }

    pub async fn finish_run(&self, run_id: i64, status: RunStatus, error: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(error)
            .bind(now())
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn add_artifacts(&self, run_id: i64, artifacts: &[NewArtifact]) -> Result<()> {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO artifacts (run_id, step_id, item_key, kind, path, created_at) ");
        let at = now();
        q.push_values(artifacts, |mut b, a| {
            b.push_bind(run_id).push_bind(&a.step_id).push_bind(&a.item_key).push_bind(&a.kind).push_bind(&a.path).push_bind(&at);
        });
        q.build().execute(&self.pool).await?;
        Ok(())
    }

    /// Runs left `running` by an owner that is gone (its lease lapsed, or its process on this
    /// machine no longer exists) are marked `interrupted`; returns their ids.
    pub async fn interrupt_orphans(&self) -> Result<Vec<i64>> {
        let running: Vec<(i64, Option<String>, Option<i64>)> =
            sqlx::query_as("SELECT id, owner, pid FROM runs WHERE status = 'running'").fetch_all(&self.pool).await?;
        let mut orphans = Vec::new();
        for (id, owner, pid) in running {
            let alive = match owner.as_deref() {
                Some(o) => self.owner_alive(Some(o)).await?,
                // Written by a version without owners: only its PID is known.
                None => pid.is_some_and(|p| p as u32 != std::process::id() && crate::process::exists(p)),
            };
            if !alive {
                self.finish_run(id, RunStatus::Interrupted, Some("the process running it stopped before it finished")).await?;
                orphans.push(id);
            }
        }
        Ok(orphans)
    }
}

/// Brings the schema up to date. Two processes opening one new run log (two first runs, or
/// `serve` starting beside a manual run) race here: each migration is one transaction, so the
/// loser's fails (`table runs already exists`) after the winner committed it, and trying again
/// finds it applied and goes on with the next.
async fn migrate(pool: &SqlitePool) -> std::result::Result<(), sqlx::migrate::MigrateError> {
    let migrator = sqlx::migrate!("./migrations");
    let mut tries = 0;
    loop {
        match migrator.run(pool).await {
            Ok(()) => return Ok(()),
            Err(e) if tries < 20 && lost_migration_race(&e) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(25 * tries)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn lost_migration_race(e: &sqlx::migrate::MigrateError) -> bool {
    let text = e.to_string();
    text.contains("already exists") || text.contains("database is locked") || text.contains("UNIQUE constraint failed: _sqlx_migrations")
}
