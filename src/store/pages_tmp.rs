// replaced by store/dashboard.rs at merge
//! Stand-ins for the dashboard reads (h-reads, `src/store/dashboard/`), with the same names,
//! types and signatures, so the pages compile against either: at merge this file and its two
//! lines in `store/mod.rs` go, and nothing in `src/web/pages/` changes. Plain SQL over the
//! existing indexes; the real ones come with migration 0009 and checked query plans.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::{FromRow, QueryBuilder};

use super::{ItemStatus, Result, RunRow, RunStatus, StepStatus, Store, TriggerKind};

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 500;
pub const RECENT_RUNS: i64 = 20;
pub const FAILURE_DAYS: i64 = 7;

fn page_limit(asked: i64) -> i64 {
    if asked <= 0 {
        DEFAULT_LIMIT
    } else {
        asked.min(MAX_LIMIT)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Page<T, C = i64> {
    pub rows: Vec<T>,
    pub next: Option<C>,
}

impl<T, C> Page<T, C> {
    fn from_extra(mut rows: Vec<T>, limit: i64, cursor: impl Fn(&T) -> C) -> Page<T, C> {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next = if more { rows.last().map(cursor) } else { None };
        Page { rows, next }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemCursor {
    pub position: i64,
    pub seq: i64,
    pub row: i64,
}

impl fmt::Display for ItemCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.position, self.seq, self.row)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an item cursor; use the `next` value of the previous page as it was given")]
pub struct BadCursor(pub String);

impl FromStr for ItemCursor {
    type Err = BadCursor;
    fn from_str(s: &str) -> std::result::Result<ItemCursor, BadCursor> {
        let mut parts = s.split('.').map(|p| p.parse::<i64>());
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Ok(position)), Some(Ok(seq)), Some(Ok(row)), None) => Ok(ItemCursor { position, seq, row }),
            _ => Err(BadCursor(s.chars().take(40).collect())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a date (2024-05-31) or an RFC 3339 time (2024-05-31T09:00:00Z)")]
pub struct BadTime(pub String);

pub fn parse_time_bound(s: &str, end: bool) -> std::result::Result<DateTime<Utc>, BadTime> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| BadTime(s.chars().take(40).collect()))?;
    let day = if end { day.succ_opt().ok_or_else(|| BadTime(s.into()))? } else { day };
    Ok(day.and_hms_opt(0, 0, 0).ok_or_else(|| BadTime(s.into()))?.and_utc())
}

fn stored_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Debug, Clone, Default)]
pub struct RunsQuery {
    pub workflow: Option<String>,
    pub status: Option<RunStatus>,
    pub trigger: Option<TriggerKind>,
    pub started_from: Option<DateTime<Utc>>,
    pub started_to: Option<DateTime<Utc>>,
    pub before: Option<i64>,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
pub struct RunPoint {
    pub id: i64,
    pub status: RunStatus,
    pub duration_ms: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkflowSummary {
    pub last: Option<RunRow>,
    pub recent: Vec<RunPoint>,
    pub failures_7d: i64,
}

#[derive(Debug, Clone, Default)]
pub struct ItemsQuery {
    pub step: Option<String>,
    pub status: Option<ItemStatus>,
    pub q: Option<String>,
    pub after: Option<ItemCursor>,
    pub limit: i64,
}

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ItemRowWithSeq {
    pub step_id: String,
    pub item_key: String,
    pub seq: i64,
    pub status: ItemStatus,
    pub attempts: i64,
    pub error: Option<String>,
    pub output: Option<String>,
    pub finished_at: String,
    #[serde(skip)]
    position: i64,
    #[serde(skip)]
    row: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepCounts {
    pub step_id: String,
    pub position: i64,
    pub kind: String,
    pub status: StepStatus,
    pub ok: i64,
    pub failed: i64,
    pub skipped: i64,
    pub live: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct ArtifactWithId {
    pub id: i64,
    pub step_id: String,
    pub item_key: Option<String>,
    pub kind: String,
    pub path: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct UncertainRow {
    pub key: String,
    pub step_id: String,
    pub item_key: String,
    pub since: String,
}

const RUN_COLUMNS: &str = "id, workflow, file, trigger, params, scheduled_for, started_at, finished_at, status, error, resumes";

impl Store {
    pub async fn runs_page(&self, q: &RunsQuery) -> Result<Page<RunRow>> {
        let limit = page_limit(q.limit);
        let mut b = QueryBuilder::new(format!("SELECT {RUN_COLUMNS} FROM runs WHERE 1"));
        if let Some(w) = &q.workflow {
            b.push(" AND workflow = ").push_bind(w.clone());
        }
        if let Some(s) = q.status {
            b.push(" AND status = ").push_bind(s.as_str());
        }
        if let Some(t) = q.trigger {
            b.push(" AND trigger = ").push_bind(t.as_str());
        }
        if let Some(t) = q.started_from {
            b.push(" AND started_at >= ").push_bind(stored_time(t));
        }
        if let Some(t) = q.started_to {
            b.push(" AND started_at < ").push_bind(stored_time(t));
        }
        if let Some(id) = q.before {
            b.push(" AND id < ").push_bind(id);
        }
        b.push(" ORDER BY id DESC LIMIT ").push_bind(limit + 1);
        let rows: Vec<RunRow> = b.build_query_as().fetch_all(&self.pool).await?;
        Ok(Page::from_extra(rows, limit, |r| r.id))
    }

    /// Three queries whatever the number of names (each a lookup per name on `runs_workflow`).
    pub async fn workflow_summaries(&self, names: &[String], now: DateTime<Utc>) -> Result<HashMap<String, WorkflowSummary>> {
        let json = serde_json::to_string(names).unwrap_or_else(|_| "[]".into());
        let since = stored_time(now - Duration::days(FAILURE_DAYS));
        let last: Vec<RunRow> = sqlx::query_as(
            "SELECT r.id, r.workflow, r.file, r.trigger, r.params, r.scheduled_for, r.started_at, r.finished_at, r.status, r.error, r.resumes
             FROM json_each(?1) j JOIN runs r ON r.id = (SELECT max(id) FROM runs WHERE workflow = j.value)",
        )
        .bind(&json)
        .fetch_all(&self.pool)
        .await?;
        let recent: Vec<(String, i64, RunStatus, Option<i64>)> = sqlx::query_as(
            "SELECT j.value, r.id, r.status,
               CAST(round((julianday(r.finished_at) - julianday(r.started_at)) * 86400000.0) AS INTEGER)
             FROM json_each(?1) j JOIN runs r
             WHERE r.id IN (SELECT id FROM runs WHERE workflow = j.value AND status <> 'running' ORDER BY id DESC LIMIT ?2)",
        )
        .bind(&json)
        .bind(RECENT_RUNS)
        .fetch_all(&self.pool)
        .await?;
        let failures: Vec<(String, i64)> = sqlx::query_as(
            "SELECT j.value, (SELECT count(*) FROM runs WHERE workflow = j.value AND status IN ('failed', 'partial') AND started_at >= ?2)
             FROM json_each(?1) j",
        )
        .bind(&json)
        .bind(&since)
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<String, WorkflowSummary> = names.iter().map(|n| (n.clone(), WorkflowSummary::default())).collect();
        for r in last {
            if let Some(s) = out.get_mut(&r.workflow) {
                s.last = Some(r);
            }
        }
        for (name, id, status, duration_ms) in recent {
            if let Some(s) = out.get_mut(&name) {
                s.recent.push(RunPoint { id, status, duration_ms });
            }
        }
        for (name, n) in failures {
            if let Some(s) = out.get_mut(&name) {
                s.failures_7d = n;
            }
        }
        for s in out.values_mut() {
            s.recent.sort_by_key(|p| p.id);
        }
        Ok(out)
    }

    pub async fn items_page(&self, run_id: i64, q: &ItemsQuery) -> Result<Page<ItemRowWithSeq, ItemCursor>> {
        let limit = page_limit(q.limit);
        let prefix = q.q.as_deref().filter(|p| !p.is_empty());
        let mut b = QueryBuilder::new(
            "SELECT s.position AS position, i.rowid AS row, i.step_id, i.item_key, i.seq, i.status, i.attempts, i.error, i.output, i.finished_at
             FROM items i JOIN steps s ON s.run_id = i.run_id AND s.step_id = i.step_id WHERE i.run_id = ",
        );
        b.push_bind(run_id);
        if let Some(step) = &q.step {
            b.push(" AND i.step_id = ").push_bind(step.clone());
        }
        if let Some(st) = q.status {
            b.push(" AND i.status = ").push_bind(st.as_str());
        }
        if let Some(p) = prefix {
            b.push(" AND substr(i.item_key, 1, length(").push_bind(p.to_string()).push(")) = ").push_bind(p.to_string());
        }
        if let Some(c) = q.after {
            b.push(" AND (s.position, i.seq, i.rowid) > (")
                .push_bind(c.position)
                .push(", ")
                .push_bind(c.seq)
                .push(", ")
                .push_bind(c.row)
                .push(")");
        }
        b.push(" ORDER BY s.position, i.seq, i.rowid LIMIT ").push_bind(limit + 1);
        let rows: Vec<ItemRowWithSeq> = b.build_query_as().fetch_all(&self.pool).await?;
        Ok(Page::from_extra(rows, limit, |r| ItemCursor { position: r.position, seq: r.seq, row: r.row }))
    }

    pub async fn item_counts(&self, run_id: i64) -> Result<Vec<StepCounts>> {
        let mut out = Vec::new();
        for s in self.steps(run_id).await? {
            let mut c = StepCounts {
                step_id: s.step_id,
                position: s.position,
                kind: s.kind,
                status: s.status,
                ok: s.ok,
                failed: s.failed,
                skipped: s.skipped,
                live: s.status == StepStatus::Running,
            };
            if c.live {
                let counts: Vec<(ItemStatus, i64)> =
                    sqlx::query_as("SELECT status, count(*) FROM items WHERE run_id = ? AND step_id = ? GROUP BY status")
                        .bind(run_id)
                        .bind(&c.step_id)
                        .fetch_all(&self.pool)
                        .await?;
                (c.ok, c.failed, c.skipped) = (0, 0, 0);
                for (status, n) in counts {
                    match status {
                        ItemStatus::Ok => c.ok = n,
                        ItemStatus::Failed => c.failed = n,
                        ItemStatus::Skipped => c.skipped = n,
                    }
                }
            }
            out.push(c);
        }
        Ok(out)
    }

    pub async fn artifact(&self, run_id: i64, artifact_id: i64) -> Result<Option<ArtifactWithId>> {
        Ok(sqlx::query_as("SELECT id, step_id, item_key, kind, path, created_at FROM artifacts WHERE id = ? AND run_id = ?")
            .bind(artifact_id)
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn artifacts_with_ids(&self, run_id: i64, after: Option<i64>, limit: i64) -> Result<Page<ArtifactWithId>> {
        let limit = page_limit(limit);
        let rows = sqlx::query_as(
            "SELECT id, step_id, item_key, kind, path, created_at FROM artifacts WHERE run_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        )
        .bind(run_id)
        .bind(after.unwrap_or(0))
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
        Ok(Page::from_extra(rows, limit, |a: &ArtifactWithId| a.id))
    }

    pub async fn uncertain_for_run(&self, run_id: i64) -> Result<Vec<UncertainRow>> {
        Ok(sqlx::query_as(
            "SELECT key, step_id, item_key, updated_at AS since FROM ledger WHERE run_id = ? AND state = 'sending' ORDER BY updated_at, key",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?)
    }
}
