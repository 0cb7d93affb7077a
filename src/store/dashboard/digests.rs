//! The route step's digests, per team, for the digests pages.

use serde::Serialize;
use sqlx::FromRow;

use crate::store::db::on_db;
use crate::store::{Result, Store};

/// A team that got digests in one routing scope (`<workflow>/<step id>`).
#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
pub struct DigestTeam {
    pub scope: String,
    pub team: String,
    pub last_run_id: i64,
    pub last_created_at: String,
    pub digests: i64,
}

/// One digest of a team: its figures and the files the route step wrote for it.
#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
pub struct DigestPoint {
    pub run_id: i64,
    pub created_at: String,
    pub count: i64,
    pub urgent: i64,
    pub rated: i64,
    pub avg_rating: Option<f64>,
    /// Percent of ratings 4-5.
    pub csat: Option<f64>,
    /// The HTML digest's artifact (`None` in a dry run, or once pruned).
    pub artifact_id: Option<i64>,
    /// The Markdown digest's artifact.
    pub markdown_artifact_id: Option<i64>,
}

/// The most points `digest_history` returns.
pub const MAX_HISTORY: i64 = 1000;

// The route step records each team's files as artifacts of kind `digest`, filed under the
// team's name, of the step whose id ends the scope (`<workflow>/<step id>`; a workflow name
// may hold a `/`, so the step id is what follows the run's workflow name). Of a step run
// again by a resume, the latest file. `$like`: `LIKE` on SQLite, which ignores ASCII case;
// `ILIKE` on PostgreSQL, which does the same on its `"C"` text.
macro_rules! digest_file {
    ($like:literal, $ext:literal) => {
        concat!(
            "(SELECT max(a.id) FROM artifacts a WHERE a.run_id = d.run_id
               AND substr(d.scope, 1, length(r.workflow) + 1) = r.workflow || '/'
               AND a.step_id = substr(d.scope, length(r.workflow) + 2) AND a.item_key = d.team AND a.kind = 'digest'
               AND a.path ",
            $like,
            " '%",
            $ext,
            "')"
        )
    };
}

macro_rules! history {
    ($like:literal) => {
        concat!(
            "SELECT d.run_id, d.created_at, d.count, d.urgent, d.rated, d.avg_rating, d.csat, ",
            digest_file!($like, ".html"),
            " AS artifact_id, ",
            digest_file!($like, ".md"),
            " AS markdown_artifact_id
     FROM route_digests d LEFT JOIN runs r ON r.id = d.run_id
     WHERE d.scope = $1 AND d.team = $2 ORDER BY d.run_id DESC LIMIT $3"
        )
    };
}

pub(super) const HISTORY: &str = history!("LIKE");
pub(super) const HISTORY_PG: &str = history!("ILIKE");

pub(super) const TEAMS: &str = "SELECT scope, team, max(run_id) AS last_run_id, created_at AS last_created_at, count(*) AS digests
     FROM route_digests GROUP BY scope, team ORDER BY scope, team";
// PostgreSQL takes no bare column beside an aggregate: the latest run's time is asked for.
pub(super) const TEAMS_PG: &str = "SELECT scope, team, max(run_id) AS last_run_id,
       (array_agg(created_at ORDER BY run_id DESC))[1] AS last_created_at, count(*) AS digests
     FROM route_digests GROUP BY scope, team ORDER BY scope, team";

impl Store {
    /// Every (scope, team) that got a digest, by scope then team.
    pub async fn digest_teams(&self) -> Result<Vec<DigestTeam>> {
        // SQLite takes the bare `created_at` from the row that gave `max(run_id)`.
        let sql = self.db.sql(TEAMS, TEAMS_PG);
        Ok(on_db!(&self.db, pool => sqlx::query_as(sql).fetch_all(pool).await)?)
    }

    /// A team's digests, newest first, at most `limit` (`MAX_HISTORY`; 0 or less: all of them
    /// up to that).
    pub async fn digest_history(&self, scope: &str, team: &str, limit: i64) -> Result<Vec<DigestPoint>> {
        let limit = if limit <= 0 { MAX_HISTORY } else { limit.min(MAX_HISTORY) };
        let sql = self.db.sql(HISTORY, HISTORY_PG);
        Ok(on_db!(&self.db, pool => sqlx::query_as(sql).bind(scope).bind(team).bind(limit).fetch_all(pool).await)?)
    }
}
