// replaced by store/dashboard.rs at merge
//! The few reads the HTTP API needs that `queries.rs` lacks, until the dashboard reads land
//! (`runs_page`, `items_page`, `item_counts`, `artifacts_with_ids`, `digest_teams`,
//! `digest_history`). Same semantics, simpler SQL; names prefixed `api_` so both can coexist.

use sqlx::{FromRow, QueryBuilder, Sqlite};

use super::{ItemStatus, Result, RunRow, RunStatus, Store, TriggerKind};

/// One page of rows and the cursor of the next (`None`: the last page).
#[derive(Debug, Clone)]
pub struct ApiPage<T, C = i64> {
    pub rows: Vec<T>,
    pub next: Option<C>,
}

fn from_extra<T, C>(mut rows: Vec<T>, limit: i64, cursor: impl Fn(&T) -> C) -> ApiPage<T, C> {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(cursor) } else { None };
    ApiPage { rows, next }
}

/// Filters of the runs list; newest first. Times are RFC 3339 UTC as stored (compared as text).
#[derive(Debug, Clone, Default)]
pub struct ApiRunsQuery {
    pub workflow: Option<String>,
    pub status: Option<RunStatus>,
    pub trigger: Option<TriggerKind>,
    pub started_from: Option<String>,
    pub started_to: Option<String>,
    pub before: Option<i64>,
    pub limit: i64,
}

/// Filters of a run's items, in step order then input order. `after` is (step position, seq, rowid).
#[derive(Debug, Clone, Default)]
pub struct ApiItemsQuery {
    pub step: Option<String>,
    pub status: Option<ItemStatus>,
    pub key_prefix: Option<String>,
    pub after: Option<(i64, i64, i64)>,
    pub limit: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct ApiItemRow {
    pub position: i64,
    pub seq: i64,
    pub row: i64,
    pub step_id: String,
    pub item_key: String,
    pub status: ItemStatus,
    pub attempts: i64,
    pub error: Option<String>,
    pub output: Option<String>,
    pub finished_at: String,
}

#[derive(Debug, Clone, FromRow)]
pub struct ApiArtifactRow {
    pub id: i64,
    pub step_id: String,
    pub item_key: Option<String>,
    pub kind: String,
    pub path: String,
    pub created_at: String,
}

#[derive(Debug, Clone, FromRow)]
pub struct ApiDigestTeam {
    pub scope: String,
    pub team: String,
    pub last_run_id: i64,
    pub last_created_at: String,
    pub digests: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct ApiDigestPoint {
    pub run_id: i64,
    pub created_at: String,
    pub count: i64,
    pub urgent: i64,
    pub rated: i64,
    pub avg_rating: Option<f64>,
    pub csat: Option<f64>,
}

impl Store {
    pub async fn api_runs_page(&self, q: &ApiRunsQuery) -> Result<ApiPage<RunRow>> {
        let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT id, workflow, file, trigger, params, scheduled_for, started_at, finished_at, status, error, resumes FROM runs WHERE 1",
        );
        if let Some(w) = &q.workflow {
            b.push(" AND workflow = ").push_bind(w.clone());
        }
        if let Some(s) = q.status {
            b.push(" AND status = ").push_bind(s.as_str());
        }
        if let Some(t) = q.trigger {
            b.push(" AND trigger = ").push_bind(t.as_str());
        }
        if let Some(f) = &q.started_from {
            b.push(" AND started_at >= ").push_bind(f.clone());
        }
        if let Some(t) = &q.started_to {
            b.push(" AND started_at < ").push_bind(t.clone());
        }
        if let Some(before) = q.before {
            b.push(" AND id < ").push_bind(before);
        }
        b.push(" ORDER BY id DESC LIMIT ").push_bind(q.limit + 1);
        let rows: Vec<RunRow> = b.build_query_as().fetch_all(&self.pool).await?;
        Ok(from_extra(rows, q.limit, |r| r.id))
    }

    pub async fn api_items_page(&self, run_id: i64, q: &ApiItemsQuery) -> Result<ApiPage<ApiItemRow, (i64, i64, i64)>> {
        let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT s.position, i.seq, i.rowid AS row, i.step_id, i.item_key, i.status, i.attempts, i.error, i.output, i.finished_at
             FROM items i JOIN steps s ON s.run_id = i.run_id AND s.step_id = i.step_id WHERE i.run_id = ",
        );
        b.push_bind(run_id);
        if let Some(s) = &q.step {
            b.push(" AND i.step_id = ").push_bind(s.clone());
        }
        if let Some(s) = q.status {
            b.push(" AND i.status = ").push_bind(s.as_str());
        }
        if let Some(p) = &q.key_prefix {
            // substr, not LIKE: `%` and `_` in a key are plain characters.
            b.push(" AND substr(i.item_key, 1, ").push_bind(p.chars().count() as i64).push(") = ").push_bind(p.clone());
        }
        if let Some((pos, seq, row)) = q.after {
            b.push(" AND (s.position, i.seq, i.rowid) > (").push_bind(pos).push(", ").push_bind(seq).push(", ").push_bind(row).push(")");
        }
        b.push(" ORDER BY s.position, i.seq, i.rowid LIMIT ").push_bind(q.limit + 1);
        let rows: Vec<ApiItemRow> = b.build_query_as().fetch_all(&self.pool).await?;
        Ok(from_extra(rows, q.limit, |r| (r.position, r.seq, r.row)))
    }

    /// Items per step and status, for steps still running (their `steps` row is written at the end).
    pub async fn api_item_counts(&self, run_id: i64) -> Result<Vec<(String, ItemStatus, i64)>> {
        Ok(sqlx::query_as("SELECT step_id, status, count(*) FROM items WHERE run_id = ? GROUP BY step_id, status")
            .bind(run_id)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn api_artifacts(&self, run_id: i64, after: Option<i64>, limit: i64) -> Result<ApiPage<ApiArtifactRow>> {
        let rows: Vec<ApiArtifactRow> = sqlx::query_as(
            "SELECT id, step_id, item_key, kind, path, created_at FROM artifacts WHERE run_id = ? AND id > ? ORDER BY id LIMIT ?",
        )
        .bind(run_id)
        .bind(after.unwrap_or(0))
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
        Ok(from_extra(rows, limit, |a| a.id))
    }

    pub async fn api_digest_teams(&self) -> Result<Vec<ApiDigestTeam>> {
        Ok(sqlx::query_as(
            "SELECT scope, team, max(run_id) AS last_run_id, max(created_at) AS last_created_at, count(*) AS digests
             FROM route_digests GROUP BY scope, team ORDER BY scope, team",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Newest first.
    pub async fn api_digest_history(&self, scope: &str, team: &str, limit: i64) -> Result<Vec<ApiDigestPoint>> {
        Ok(sqlx::query_as(
            "SELECT run_id, created_at, count, urgent, rated, avg_rating, csat FROM route_digests
             WHERE scope = ? AND team = ? ORDER BY run_id DESC LIMIT ?",
        )
        .bind(scope)
        .bind(team)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}
