//! What the scheduler reads and writes in the run log: last fire times (for catch-up), skipped
//! fires, runs abandoned at shutdown, and retention (pruning with space reclaimed).

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::db::{on_db, Db};
use super::prune::ArtifactFiles;
use super::{now, owner, Result, Store};
use crate::engine::log::RunStatus;

/// How long runs are kept: older than `days`, or beyond the newest `runs`, are deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    pub days: Option<u32>,
    pub runs: Option<u32>,
}

impl Retention {
    pub fn is_set(&self) -> bool {
        self.days.is_some() || self.runs.is_some()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub runs_deleted: u64,
    pub files_deleted: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

impl Store {
    /// The latest fire time each workflow was scheduled for (run or skipped).
    pub async fn last_fire_times(&self) -> Result<HashMap<String, DateTime<Utc>>> {
        let rows: Vec<(String, Option<String>)> = on_db!(&self.db, pool => sqlx::query_as(
            "SELECT workflow, max(scheduled_for) FROM runs WHERE trigger = 'schedule' AND scheduled_for IS NOT NULL GROUP BY workflow",
        )
        .fetch_all(pool)
        .await)?;
        Ok(rows
            .into_iter()
            .filter_map(|(w, t)| {
                let t = DateTime::parse_from_rfc3339(&t?).ok()?.with_timezone(&Utc);
                Some((w, t))
            })
            .collect())
    }

    /// Logs a fire that did not run (overlap, calendar, missed while down, invalid file), with
    /// the reason; it shows in `cxflow runs` with status `skipped`.
    pub async fn record_skipped(&self, workflow: &str, file: &str, fire: Option<DateTime<Utc>>, reason: &str) -> Result<i64> {
        let t = now();
        let id = on_db!(&self.db, pool => sqlx::query_scalar(
            "INSERT INTO runs (workflow, file, trigger, params, scheduled_for, started_at, finished_at, status, error)
             VALUES ($1, $2, 'schedule', '{}', $3, $4, $5, 'skipped', $6) RETURNING id",
        )
        .bind(workflow)
        .bind(file)
        .bind(fire.map(fmt_time))
        .bind(&t)
        .bind(&t)
        .bind(reason)
        .fetch_one(pool)
        .await)?;
        Ok(id)
    }

    /// Marks this process's still-running runs of `workflow` interrupted (they did not finish
    /// within the shutdown deadline). Returns their ids.
    pub async fn interrupt_own_runs(&self, workflow: &str, reason: &str) -> Result<Vec<i64>> {
        let ids: Vec<i64> = on_db!(&self.db, pool => sqlx::query_scalar(
            "SELECT id FROM runs WHERE status = 'running' AND workflow = $1 AND owner = $2",
        )
        .bind(workflow)
        .bind(&owner::me().id)
        .fetch_all(pool)
        .await)?;
        for id in &ids {
            self.finish_run(*id, RunStatus::Interrupted, Some(reason)).await?;
        }
        Ok(ids)
    }

    /// Deletes runs past their retention (never running ones) with their steps, items and
    /// artifact rows, removes their artifact files under `artifacts_root`, and gives the space
    /// back to the file system. `rules` gives each workflow's retention (falling back to
    /// `default`). The exactly-once ledger is kept: it must outlive the runs it protects.
    pub async fn prune(
        &self,
        default: Retention,
        rules: &HashMap<String, Retention>,
        artifacts_root: &Path,
        db_file: Option<&Path>,
    ) -> Result<PruneReport> {
        let mut report = PruneReport { bytes_before: self.run_log_size(db_file).await?, ..Default::default() };
        let workflows: Vec<String> =
            on_db!(&self.db, pool => sqlx::query_scalar("SELECT DISTINCT workflow FROM runs").fetch_all(pool).await)?;
        let mut doomed: Vec<i64> = Vec::new();
        for w in workflows {
            let r = rules.get(&w).copied().unwrap_or(default);
            if !r.is_set() {
                continue;
            }
            let cutoff =
                r.days.map(|d| (Utc::now() - chrono::Duration::days(i64::from(d))).to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            let ids: Vec<i64> = on_db!(&self.db, pool => sqlx::query_scalar(
                "SELECT id FROM runs WHERE workflow = $1 AND status != 'running' AND (
                    ($2 IS NOT NULL AND started_at < $2)
                    OR ($3 IS NOT NULL AND id NOT IN (SELECT id FROM runs WHERE workflow = $1 ORDER BY id DESC LIMIT $3)))",
            )
            .bind(&w)
            .bind(&cutoff)
            .bind(r.runs.map(i64::from))
            .fetch_all(pool)
            .await)?;
            doomed.extend(ids);
        }
        // Decided on real locations (`prune.rs`): a file a run that stays lists is kept.
        let doomed_set: std::collections::HashSet<i64> = doomed.iter().copied().collect();
        let rows: Vec<(i64, String)> =
            on_db!(&self.db, pool => sqlx::query_as("SELECT run_id, path FROM artifacts").fetch_all(pool).await)?;
        let (gone, kept): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(run, _)| doomed_set.contains(run));
        let mut gone_paths: HashMap<i64, Vec<String>> = HashMap::new();
        for (run, path) in gone {
            gone_paths.entry(run).or_default().push(path);
        }
        let root = artifacts_root.to_path_buf();
        let files = std::sync::Arc::new(
            off_runtime(move || {
                let kept: Vec<String> = kept.into_iter().map(|(_, p)| p).collect();
                let doomed: Vec<String> = gone_paths.values().flatten().cloned().collect();
                (ArtifactFiles::new(&root, &kept, &doomed), gone_paths)
            })
            .await,
        );
        for chunk in doomed.chunks(500) {
            // Run ids read back as i64 above: the list is digits and commas, nothing to inject.
            let list = chunk.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
            // File deletion is blocking work (thousands of files on a slow disk): off the runtime.
            let (files, ids) = (files.clone(), chunk.to_vec());
            report.files_deleted += off_runtime(move || {
                let (files, paths) = &*files;
                let listed: Vec<String> = ids.iter().filter_map(|id| paths.get(id)).flatten().cloned().collect();
                files.delete(&listed, &ids)
            })
            .await;
            // Not a run resumed since it was picked (its files may be gone, its rows stay).
            let sql = format!("DELETE FROM runs WHERE id IN ({list}) AND status != 'running'");
            report.runs_deleted +=
                on_db!(&self.db, pool => sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await.map(|r| r.rows_affected()))?;
        }
        // Owners long gone that no run or claim names any more: one row per process ever run.
        let day_ago = (Utc::now() - chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        on_db!(&self.db, pool => sqlx::query(
            "DELETE FROM owners WHERE expires_at < $1
               AND id NOT IN (SELECT owner FROM runs WHERE owner IS NOT NULL)
               AND id NOT IN (SELECT owner FROM ledger WHERE owner IS NOT NULL AND state = 'sending')",
        )
        .bind(day_ago)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        self.reclaim_space().await?;
        report.bytes_after = self.run_log_size(db_file).await?;
        Ok(report)
    }

    /// Returns free pages to the file system. A SQLite run log created before incremental
    /// auto-vacuum was switched on is converted once (a full VACUUM). On PostgreSQL, deleting
    /// is enough: autovacuum makes the space of deleted rows reusable (it is not given back to
    /// the file system, which only `VACUUM FULL` does, locking the tables while it runs).
    pub async fn reclaim_space(&self) -> Result<()> {
        let pool = match &self.db {
            Db::Sqlite(pool) => pool,
            Db::Pg(_) => return Ok(()),
        };
        let mut conn = pool.acquire().await?;
        let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum").fetch_one(&mut *conn).await?;
        if mode != 2 {
            sqlx::query("PRAGMA auto_vacuum = INCREMENTAL").execute(&mut *conn).await?;
            sqlx::query("VACUUM").execute(&mut *conn).await?;
        }
        sqlx::query("PRAGMA incremental_vacuum").execute(&mut *conn).await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut *conn).await?;
        Ok(())
    }
}

/// Runs blocking file work on tokio's blocking pool; a panic in it is a panic here, as if it had
/// run inline.
async fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

impl Store {
    /// The run log's size in bytes: the SQLite file's (`db_file`, 0 when not given), or the
    /// PostgreSQL database's.
    async fn run_log_size(&self, db_file: Option<&Path>) -> Result<u64> {
        match &self.db {
            Db::Sqlite(_) => Ok(db_file.and_then(|f| std::fs::metadata(f).ok()).map_or(0, |m| m.len())),
            Db::Pg(pool) => {
                let n: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())").fetch_one(pool).await?;
                Ok(n.max(0) as u64)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::store_test;
    use crate::store::{NewRun, RunStatus, TriggerKind};

    /// A run's status, read directly: these tests check this module, not `Store::run`
    /// (`queries.rs`).
    async fn status(s: &Store, id: i64) -> String {
        on_db!(&s.db, pool => sqlx::query_scalar("SELECT status FROM runs WHERE id = $1").bind(id).fetch_one(pool).await).unwrap()
    }

    async fn runs_of(s: &Store, workflow: &str) -> i64 {
        on_db!(&s.db, pool => sqlx::query_scalar("SELECT count(*) FROM runs WHERE workflow = $1").bind(workflow).fetch_one(pool).await)
            .unwrap()
    }

    store_test! {
    #[tokio::test]
    async fn last_fire_and_skips(fresh) {
        let s = fresh.open().await;
        let t1: DateTime<Utc> = "2025-06-02T02:30:00Z".parse().unwrap();
        let t2: DateTime<Utc> = "2025-06-03T02:30:00Z".parse().unwrap();
        let p = serde_json::json!({});
        s.start_run(NewRun { workflow: "a", file: "a.yaml", trigger: TriggerKind::Schedule, params: &p, scheduled_for: Some(t1) })
            .await
            .unwrap();
        s.record_skipped("a", "a.yaml", Some(t2), "holiday").await.unwrap();
        s.start_run(NewRun { workflow: "b", file: "b.yaml", trigger: TriggerKind::Manual, params: &p, scheduled_for: None }).await.unwrap();
        let m = s.last_fire_times().await.unwrap();
        assert_eq!(m.get("a"), Some(&t2));
        assert_eq!(m.get("b"), None);
        let ids = s.interrupt_own_runs("a", "deadline").await.unwrap();
        assert_eq!(ids.len(), 1);
        assert_eq!(status(&s, ids[0]).await, "interrupted");
    }
    }

    store_test! {
    #[tokio::test]
    async fn prune_keeps_n_runs_deletes_artifacts_and_shrinks_the_file(fresh) {
        let dir = tempfile::tempdir().unwrap();
        let s = fresh.open().await;
        let arts = dir.path().join("artifacts");
        let p = serde_json::json!({"pad": "x".repeat(20_000)});
        let mut ids = Vec::new();
        for _ in 0..40 {
            let id = s
                .start_run(NewRun { workflow: "a", file: "a.yaml", trigger: TriggerKind::Schedule, params: &p, scheduled_for: None })
                .await
                .unwrap();
            s.finish_run(id, RunStatus::Succeeded, None).await.unwrap();
            let f = arts.join(format!("run-{id}/shot.png"));
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, b"png").unwrap();
            let a = crate::engine::log::NewArtifact {
                step_id: "b".into(),
                item_key: Some("k".into()),
                kind: "screenshot".into(),
                path: f.display().to_string(),
            };
            s.add_artifacts(id, &[a]).await.unwrap();
            ids.push(id);
        }
        let running = s
            .start_run(NewRun { workflow: "a", file: "a.yaml", trigger: TriggerKind::Schedule, params: &p, scheduled_for: None })
            .await
            .unwrap();
        s.reclaim_space().await.unwrap();
        // The SQLite file (not there on PostgreSQL, whose database's own size is reported).
        let db = fresh.url.strip_prefix("sqlite://").map(std::path::PathBuf::from);
        let mut rules = HashMap::new();
        rules.insert("a".to_string(), Retention { days: None, runs: Some(5) });
        let r = s.prune(Retention::default(), &rules, &arts, db.as_deref()).await.unwrap();
        assert_eq!(r.runs_deleted, 36, "{r:?}");
        assert_eq!(r.files_deleted, 36);
        match s.backend() {
            crate::store::Backend::Sqlite => assert!(r.bytes_after < r.bytes_before / 2, "{r:?}"),
            // Deleted rows' space is reused, not given back: the database's size is reported as it is.
            crate::store::Backend::Postgres => assert!(r.bytes_before > 0 && r.bytes_after > 0, "{r:?}"),
        }
        assert!(!arts.join(format!("run-{}", ids[0])).exists());
        assert!(arts.join(format!("run-{}", ids[39])).exists());
        assert_eq!(status(&s, running).await, "running");
        assert_eq!(runs_of(&s, "a").await, 5, "the newest 5, the running one among them");
        // Days-based: the runs left all started today, so a 1-day rule keeps them.
        let r = s.prune(Retention { days: Some(1), runs: None }, &HashMap::new(), &arts, db.as_deref()).await.unwrap();
        assert_eq!(r.runs_deleted, 0);
    }
    }
}
