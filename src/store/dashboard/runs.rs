//! The runs list and the overview's per-workflow summaries.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::{Database, FromRow, QueryBuilder};

use super::{page_limit, stored_time, Page, PushBind};
use crate::store::db::on_db;
use crate::store::{Result, RunRow, RunStatus, Store, TriggerKind};

macro_rules! run_columns {
    ($t:literal) => {
        concat!(
            $t,
            "id, ",
            $t,
            "workflow, ",
            $t,
            "file, ",
            $t,
            "trigger, ",
            $t,
            "params, ",
            $t,
            "scheduled_for, ",
            $t,
            "started_at, ",
            $t,
            "finished_at, ",
            $t,
            "status, ",
            $t,
            "error, ",
            $t,
            "resumes"
        )
    };
}
/// Runs per sparkline.
pub const RECENT_RUNS: i64 = 20;
/// The overview's failure window.
pub const FAILURE_DAYS: i64 = 7;

/// Filters of the runs list; every one that is set must hold. Newest first (by id).
#[derive(Debug, Clone, Default)]
pub struct RunsQuery {
    pub workflow: Option<String>,
    pub status: Option<RunStatus>,
    pub trigger: Option<TriggerKind>,
    /// Runs started at or after this time (`parse_time_bound(s, false)`).
    pub started_from: Option<DateTime<Utc>>,
    /// Runs started before this time (`parse_time_bound(s, true)`: a date includes its day).
    pub started_to: Option<DateTime<Utc>>,
    /// Keyset: runs with a smaller id than this (the previous page's `next`).
    pub before: Option<i64>,
    /// Rows per page: `DEFAULT_LIMIT` when 0 or less, at most `MAX_LIMIT`.
    pub limit: i64,
}

/// One finished run of a sparkline.
#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
pub struct RunPoint {
    pub id: i64,
    pub status: RunStatus,
    /// From start to finish; `None` if the run log lacks the finish time.
    pub duration_ms: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkflowSummary {
    /// The newest run, running or not.
    pub last: Option<RunRow>,
    /// The last `RECENT_RUNS` finished runs (any status but `running`), oldest first.
    pub recent: Vec<RunPoint>,
    /// Runs that ended `failed` or `partial` and started in the last `FAILURE_DAYS` days.
    pub failures_7d: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunLogStats {
    /// The file's size as SQLite sees it (`page_count * page_size`), free pages included;
    /// PostgreSQL: the database's size on the server.
    pub bytes: i64,
    /// Of `bytes`, pages free for reuse (retention gives them back with incremental vacuum);
    /// 0 on PostgreSQL.
    pub free_bytes: i64,
    pub runs: i64,
    pub items: i64,
}

// $1: the names as a JSON array.
pub(super) const LAST_RUNS: &str = concat!(
    "SELECT j.value AS name, ",
    run_columns!("r."),
    " FROM json_each($1) j JOIN runs r ON r.id = (SELECT max(id) FROM runs WHERE workflow = j.value)"
);
pub(super) const LAST_RUNS_PG: &str = concat!(
    "SELECT j.value AS name, ",
    run_columns!("r."),
    " FROM json_array_elements_text(CAST($1 AS json)) j (value) JOIN runs r ON r.id = (SELECT max(id) FROM runs WHERE workflow = j.value)"
);
// $2: how many runs per workflow; $3: the start of the failure window, as stored. One row per
// name, the points as one JSON array: sqlx hands rows over one at a time, and 20,000 of them
// cost more than the lookups.
pub(super) const RECENT_AND_FAILURES: &str = "SELECT j.value,
       (SELECT json_group_array(json_array(id, status, ms)) FROM (
          SELECT id, status, CAST(round((julianday(finished_at) - julianday(started_at)) * 86400000.0) AS INTEGER) AS ms
          FROM runs WHERE workflow = j.value AND status <> 'running' ORDER BY id DESC LIMIT $2)),
       (SELECT count(*) FROM runs WHERE workflow = j.value AND status IN ('failed', 'partial') AND started_at >= $3)
     FROM json_each($1) j";
// The same in PostgreSQL's words: `json_agg` of no rows is NULL where `json_group_array` gives `[]`.
pub(super) const RECENT_AND_FAILURES_PG: &str = "SELECT j.value,
       (SELECT CAST(COALESCE(json_agg(json_build_array(id, status, ms)), '[]') AS TEXT) FROM (
          SELECT id, status,
                 CAST(round(EXTRACT(EPOCH FROM CAST(finished_at AS timestamptz) - CAST(started_at AS timestamptz)) * 1000) AS BIGINT) AS ms
          FROM runs WHERE workflow = j.value AND status <> 'running' ORDER BY id DESC LIMIT $2) t),
       (SELECT count(*) FROM runs WHERE workflow = j.value AND status IN ('failed', 'partial') AND started_at >= $3)
     FROM json_array_elements_text(CAST($1 AS json)) j (value)";

impl Store {
    /// A page of runs, newest first.
    pub async fn runs_page(&self, q: &RunsQuery) -> Result<Page<RunRow>> {
        let limit = page_limit(q.limit);
        let rows: Vec<RunRow> = on_db!(&self.db, pool => {
            let mut b = QueryBuilder::new("");
            runs_sql(&mut b, q, limit + 1);
            b.build_query_as().fetch_all(pool).await
        })?;
        Ok(Page::from_extra(rows, limit, |r| r.id))
    }

    /// The newest run (running or not) of each of `names` that ran, in one query whatever their
    /// number (a lookup per name on `runs_workflow_status`), not one query per name.
    pub async fn last_runs(&self, names: &[String]) -> Result<HashMap<String, RunRow>> {
        let json = serde_json::to_string(names).unwrap_or_else(|_| "[]".into());
        let sql = self.db.sql(LAST_RUNS, LAST_RUNS_PG);
        let rows = on_db!(&self.db, pool => sqlx::query_as::<_, LastRun>(sql).bind(&json).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(|l| (l.name, l.run)).collect())
    }

    /// The overview's figures for each of `names`, in two queries whatever their number
    /// (each a lookup per name on `runs_workflow`/`runs_workflow_status`). Every name gets an
    /// entry; a workflow that never ran gets an empty one.
    pub async fn workflow_summaries(&self, names: &[String], now: DateTime<Utc>) -> Result<HashMap<String, WorkflowSummary>> {
        let json = serde_json::to_string(names).unwrap_or_else(|_| "[]".into());
        let since = stored_time(now - Duration::days(FAILURE_DAYS));
        let (last_sql, recent_sql) = (self.db.sql(LAST_RUNS, LAST_RUNS_PG), self.db.sql(RECENT_AND_FAILURES, RECENT_AND_FAILURES_PG));
        let (last, recent) = on_db!(&self.db, pool => {
            let last = sqlx::query_as::<_, LastRun>(last_sql).bind(&json).fetch_all(pool);
            let recent = sqlx::query_as::<_, (String, String, i64)>(recent_sql)
                .bind(&json)
                .bind(RECENT_RUNS)
                .bind(&since)
                .fetch_all(pool);
            // Two connections of the pool at once: the overview waits for the slower, not the sum.
            tokio::try_join!(last, recent)
        })?;
        let mut out: HashMap<String, WorkflowSummary> = names.iter().map(|n| (n.clone(), WorkflowSummary::default())).collect();
        for l in last {
            if let Some(s) = out.get_mut(&l.name) {
                s.last = Some(l.run);
            }
        }
        for (name, points, failures) in recent {
            let Some(s) = out.get_mut(&name) else { continue };
            s.failures_7d = failures;
            // Written by the query above from checked columns: a point that does not read is skipped.
            let points: Vec<(i64, String, Option<i64>)> = serde_json::from_str(&points).unwrap_or_default();
            s.recent = points
                .into_iter()
                .filter_map(|(id, status, duration_ms)| Some(RunPoint { id, status: status.parse().ok()?, duration_ms }))
                .collect();
        }
        for s in out.values_mut() {
            s.recent.sort_by_key(|p| p.id);
        }
        Ok(out)
    }

    /// The run log's size and row counts, for `/metrics` and the footer. The counts walk the
    /// smallest index of each table (no row is read). PostgreSQL: the database's size on the
    /// server, and no free bytes (its tables reuse their free space themselves; telling how much
    /// there is takes an extension).
    pub async fn run_log_stats(&self) -> Result<RunLogStats> {
        let sql = self.db.sql(
            "SELECT c.page_count * s.page_size, f.freelist_count * s.page_size,
               (SELECT count(*) FROM runs), (SELECT count(*) FROM items)
             FROM pragma_page_count() c, pragma_page_size() s, pragma_freelist_count() f",
            "SELECT pg_database_size(current_database()), CAST(0 AS BIGINT), (SELECT count(*) FROM runs), (SELECT count(*) FROM items)",
        );
        let (bytes, free_bytes, runs, items): (i64, i64, i64, i64) = on_db!(&self.db, pool => sqlx::query_as(sql).fetch_one(pool).await)?;
        Ok(RunLogStats { bytes, free_bytes, runs, items })
    }
}

/// Each filter goes into the SQL only when set, so the database picks the index that serves it.
/// The same SQL on both.
pub(super) fn runs_sql<DB: Database>(b: &mut QueryBuilder<DB>, q: &RunsQuery, limit: i64)
where
    QueryBuilder<DB>: PushBind,
{
    b.push(concat!("SELECT ", run_columns!(""), " FROM runs"));
    let mut and = " WHERE ";
    let mut cond = |b: &mut QueryBuilder<DB>, column: &str| {
        b.push(and).push(column);
        and = " AND ";
    };
    if let Some(w) = &q.workflow {
        cond(b, "workflow = ");
        b.bind_text(w);
    }
    if let Some(s) = q.status {
        cond(b, "status = ");
        b.bind_text(s.as_str());
    }
    if let Some(t) = q.trigger {
        cond(b, "trigger = ");
        b.bind_text(t.as_str());
    }
    if let Some(t) = q.started_from {
        cond(b, "started_at >= ");
        b.bind_text(&stored_time(t));
    }
    if let Some(t) = q.started_to {
        cond(b, "started_at < ");
        b.bind_text(&stored_time(t));
    }
    if let Some(id) = q.before {
        cond(b, "id < ");
        b.bind_int(id);
    }
    b.push(" ORDER BY id DESC LIMIT ").bind_int(limit);
}

#[derive(FromRow)]
struct LastRun {
    name: String,
    #[sqlx(flatten)]
    run: RunRow,
}
