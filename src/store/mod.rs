//! The run log. Owns every SQL string and the migrations, and speaks in domain terms.
//! The only module that knows it talks to SQLite or PostgreSQL (`db.rs`).

mod actions;
mod cancel;
mod dashboard;
pub(crate) mod db;
mod digests;
mod fires;
mod group_commit;
mod items;
mod ledger;
mod metrics;
mod migrate_log;
mod owner;
mod pauses;
mod prune;
mod queries;
mod resolve;
mod run_log;
mod schedule;
mod scheduler_lock;
mod step_rows;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
mod web_sessions;
mod work;

use std::str::FromStr;
use std::time::Duration;

use chrono::Utc;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

pub use db::Backend;
use db::{on_db, Db};

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
pub use fires::{FireClaim, FireOutcome, NewFire, RunningElsewhere, TakenFire};
pub use items::ItemWriter;
pub use metrics::{DurationTally, MetricFigures, PendingTally, RunTally, SkipTally, StepTally, SKIP_OTHER, SKIP_REASONS};
pub use migrate_log::{migrate_log, MigrateLogError, TableCopied};
pub(crate) use owner::lease;
pub use owner::set_lease;
pub use owner::Node;
pub use pauses::Pause;
pub use queries::{ArtifactRow, ItemRow, LedgerRow, RunFilter, RunRow, StepRow};
pub use resolve::{Resolution, ResolveError};
pub use schedule::{PruneReport, Retention};
pub use scheduler_lock::{PgSchedulerLock, SchedulerLock};
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
    /// A stored batch of routed ids that cannot be read back.
    #[error(
        "batch {id} of the ids routed by `{scope}` {why}: the run log is damaged there. Delete that batch \
         (`DELETE FROM route_routed_ids WHERE id = {id}`) to go on; its records then count as not routed, and the next run routes them again"
    )]
    DamagedIds { id: i64, scope: String, why: String },
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
    /// The run's end was not recorded: another process took the run over while this one's
    /// lease had lapsed.
    #[error("run {0} was taken over by another process while this one's lease had lapsed (it was paused, or could not reach the run log); that process records how it ends")]
    TakenOver(i64),
    /// `spread_items` asks for something only PostgreSQL has (`FOR UPDATE SKIP LOCKED`).
    #[error("items are spread over nodes only with a PostgreSQL run log; set `database_url: postgres://…` or remove `spread_items`")]
    NeedsPostgres,
    /// Results of shared items whose claim this node no longer holds (its lease lapsed: it was
    /// paused, or could not reach the database); whoever took them over records them.
    #[error("{count} item result(s) of step `{step_id}` (run {run_id}) were not recorded: this node's claim on them lapsed and another node may have taken them over")]
    ClaimLapsed { run_id: i64, step_id: String, count: usize },
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
    db: Db,
    /// Where step rows and artifacts are written, without a sync of their own (`step_rows.rs`):
    /// on SQLite a connection of their own, at `synchronous = NORMAL`, so that every connection
    /// of `db` syncs; on PostgreSQL `db` itself.
    unsynced: Db,
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
    /// Open the run log at `url` (a SQLite file, created if missing, or a PostgreSQL database)
    /// and bring its schema up to date.
    pub async fn open(url: &str) -> Result<Store> {
        if is_postgres(url) {
            return Store::open_pg(url).await;
        }
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
        let unsynced = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_lazy_with(opts.clone().synchronous(SqliteSynchronous::Normal));
        let pool = SqlitePoolOptions::new()
            .max_connections(6)
            .test_before_acquire(false)
            .connect_with(opts)
            .await
            .map_err(|reason| StoreError::Open { url: url.into(), reason })?;
        migrate(&pool).await.map_err(|reason| StoreError::Migrate { url: url.into(), reason })?;
        Ok(Store::with(Db::Sqlite(pool), Db::Sqlite(unsynced)))
    }

    async fn open_pg(url: &str) -> Result<Store> {
        use sqlx::Connection;
        let open = |reason| StoreError::Open { url: redact_url(url), reason };
        let opts = sqlx::postgres::PgConnectOptions::from_str(url).map_err(open)?;
        // One plain connection first: the pool retries a refused or unreachable server until its
        // timeout and then reports only "pool timed out", losing the reason.
        sqlx::PgConnection::connect_with(&opts).await.map_err(open)?.close().await.map_err(open)?;
        // The same patience as SQLite's `busy_timeout`. With the server gone, every write waits
        // this long before it fails, and a run that stops on the first failure still makes a
        // few (the items it has, the step's and the run's end): at 30 s each, a run went on for
        // 90 s after it had stopped sending (tests/faults_email.rs, the database down mid-run,
        // which shortens it to save the suite's time; nobody else needs to).
        let wait = std::env::var("CXFLOW_PG_ACQUIRE_TIMEOUT_MS").ok().and_then(|v| v.parse().ok()).map(Duration::from_millis);
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(wait.unwrap_or(Duration::from_secs(10)))
            .connect_with(opts)
            .await
            .map_err(open)?;
        migrate_pg(&pool).await.map_err(|reason| StoreError::Migrate { url: redact_url(url), reason })?;
        Ok(Store::with(Db::Pg(pool.clone()), Db::Pg(pool)))
    }

    fn with(db: Db, unsynced: Db) -> Store {
        Store { db, unsynced, owner_registered: Default::default(), ledger_claims: Default::default(), write_gate: Default::default() }
    }

    /// Which database this run log is in.
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// Closes every connection (waiting for those in use to come back).
    pub async fn close(&self) {
        self.unsynced.close().await;
        self.db.close().await
    }

    /// The SQLite pool, for benchmarks that seed a large run log by SQL; `None` on PostgreSQL.
    #[doc(hidden)]
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.db {
            Db::Sqlite(p) => Some(p),
            Db::Pg(_) => None,
        }
    }

    pub async fn start_run(&self, r: NewRun<'_>) -> Result<i64> {
        let owner = self.register_owner().await?;
        let id = on_db!(&self.db, pool => sqlx::query_scalar(
            "INSERT INTO runs (workflow, file, trigger, params, scheduled_for, started_at, status, pid, owner)
             VALUES ($1, $2, $3, $4, $5, $6, 'running', $7, $8) RETURNING id",
        )
        .bind(r.workflow)
        .bind(r.file)
        .bind(r.trigger.as_str())
        .bind(r.params.to_string())
        .bind(r.scheduled_for.map(|t| t.to_rfc3339()))
        .bind(now())
        .bind(std::process::id() as i64)
        .bind(owner)
        .fetch_one(pool)
        .await)?;
        Ok(id)
    }

    /// Mark a run as running again for a resume, owned by this process; refused while the run's
    /// owner is alive (two resumes at once, or a resume of a run still going).
    pub async fn reopen_run(&self, run_id: i64) -> Result<()> {
        let owner = self.register_owner().await?;
        let (status, old, pid): (String, Option<String>, Option<i64>) =
            on_db!(&self.db, pool => sqlx::query_as("SELECT status, owner, pid FROM runs WHERE id = $1").bind(run_id).fetch_optional(pool).await)?
                .ok_or(StoreError::NoSuchRun(run_id))?;
        if status == "running" && old.as_deref() != Some(owner) && self.owner_alive(old.as_deref()).await? {
            let host = match old.as_deref() {
                Some(o) => self.owner(o).await?.map(|o| o.host).unwrap_or_default(),
                None => String::new(),
            };
            return Err(StoreError::StillRunning { run_id, pid: pid.unwrap_or(0), host });
        }
        // Compare-and-set on the old owner and status: of two resumes racing here (two serve
        // nodes resuming one interrupted run), one wins; the other's update finds the row changed,
        // even once the winner has finished it (same owner, another status).
        let changed = on_db!(&self.db, pool => sqlx::query(
            "UPDATE runs SET status = 'running', finished_at = NULL, error = NULL, resumes = resumes + 1, pid = $1, owner = $2
             WHERE id = $3 AND owner IS NOT DISTINCT FROM $4 AND status = $5",
        )
        .bind(std::process::id() as i64)
        .bind(owner)
        .bind(run_id)
        .bind(&old)
        .bind(&status)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        if changed == 0 {
            return Err(StoreError::StillRunning { run_id, pid: 0, host: "another process".into() });
        }
        // A cancel request was for the run as it went before; the resume must not stop at once.
        self.clear_cancel(run_id).await
    }

    /// Only by the run's owner: a process whose lease lapsed (paused, cut off) while another
    /// took the run over must not overwrite how that one ends it.
    pub async fn finish_run(&self, run_id: i64, status: RunStatus, error: Option<&str>) -> Result<()> {
        let changed = on_db!(&self.db, pool => sqlx::query(
            "UPDATE runs SET status = $1, error = $2, finished_at = $3 WHERE id = $4 AND (owner IS NULL OR owner = $5)",
        )
            .bind(status.as_str())
            .bind(error)
            .bind(now())
            .bind(run_id)
            .bind(&owner::me().id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        if changed == 0 {
            self.run(run_id).await?;
            return Err(StoreError::TakenOver(run_id));
        }
        Ok(())
    }

    /// Without a sync of its own, as a step row (`step_rows.rs`): the item result or step end
    /// that follows is synced, or written again by a resume.
    pub async fn add_artifacts(&self, run_id: i64, artifacts: &[NewArtifact]) -> Result<()> {
        use step_rows::Unsynced;
        let at = now();
        on_db!(&self.unsynced, pool => {
            let mut q = sqlx::QueryBuilder::new("INSERT INTO artifacts (run_id, step_id, item_key, kind, path, created_at) ");
            q.push_values(artifacts, |mut b, a| {
                b.push_bind(run_id).push_bind(&a.step_id).push_bind(&a.item_key).push_bind(&a.kind).push_bind(&a.path).push_bind(&at);
            });
            pool.unsynced(q.build()).await
        })
    }

    /// Runs left `running` by an owner that is gone (its lease lapsed, or its process on this
    /// machine no longer exists) are marked `interrupted`; returns their ids.
    pub async fn interrupt_orphans(&self) -> Result<Vec<i64>> {
        let running: Vec<(i64, Option<String>, Option<i64>)> =
            on_db!(&self.db, pool => sqlx::query_as("SELECT id, owner, pid FROM runs WHERE status = 'running'").fetch_all(pool).await)?;
        let mut orphans = Vec::new();
        for (id, owner, pid) in running {
            let alive = match owner.as_deref() {
                Some(o) => self.owner_alive(Some(o)).await?,
                // Written by a version without owners: only its PID is known.
                None => pid.is_some_and(|p| p as u32 != std::process::id() && crate::process::exists(p)),
            };
            if !alive {
                // Compare-and-set: of several processes sweeping at once (serve nodes sharing a
                // run log), one marks it and reports it (and may resume it); a run resumed
                // meanwhile has another owner and is left alone.
                let changed = on_db!(&self.db, pool => sqlx::query(
                    "UPDATE runs SET status = 'interrupted', error = $1, finished_at = $2
                     WHERE id = $3 AND status = 'running' AND owner IS NOT DISTINCT FROM $4",
                )
                .bind("the process running it stopped before it finished")
                .bind(now())
                .bind(id)
                .bind(&owner)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()))?;
                if changed == 1 {
                    orphans.push(id);
                }
            }
        }
        Ok(orphans)
    }
}

/// Brings the schema up to date. Two processes opening one new run log (two first runs, or
/// `serve` starting beside a manual run) race here: each migration is one transaction, so the
/// loser's fails (`table runs already exists`, `duplicate column name`, or `no such view` for
/// what the winner dropped) after the winner committed it, and trying again finds it applied
/// and goes on with the next.
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

/// PostgreSQL has its own migrations (`migrations_pg/`): the same schema, in its types. Two
/// processes migrating at once are serialised by sqlx's advisory lock.
async fn migrate_pg(pool: &sqlx::PgPool) -> std::result::Result<(), sqlx::migrate::MigrateError> {
    sqlx::migrate!("./migrations_pg").run(pool).await
}

/// Whether `url` names a PostgreSQL run log.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres:") || url.starts_with("postgresql:")
}

/// Lives in `config` so that the steps (which may not name the store) redact with it too.
pub(crate) use crate::config::redact_url;

fn lost_migration_race(e: &sqlx::migrate::MigrateError) -> bool {
    let text = e.to_string();
    text.contains("already exists")
        || text.contains("duplicate column name")
        || text.contains("no such view")
        || text.contains("no such table")
        || text.contains("no such index")
        || text.contains("database is locked")
        || text.contains("UNIQUE constraint failed: _sqlx_migrations")
}
