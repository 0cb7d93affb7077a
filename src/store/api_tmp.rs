// replaced by store/dashboard.rs at merge
//! The few reads the HTTP API needs that `queries.rs` lacks, until the dashboard reads land
//! (`runs_page`, `artifacts_with_ids`, `digest_teams`, `digest_history`; its items and counts
//! already use `items_page` and `item_counts`). Same semantics, simpler SQL; names prefixed `api_` so both can coexist.

use sqlx::{FromRow, QueryBuilder, Sqlite};

use super::{Result, RunRow, RunStatus, Store, TriggerKind};

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
