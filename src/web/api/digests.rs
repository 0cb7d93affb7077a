//! `/api/digests` (the teams the `route` step wrote digests for) and
//! `/api/digests/{scope}/{team}` (one team's history). A scope is `<workflow>/<step id>`: its
//! slash is written `%2F` in the path.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::runs::limit;
use super::{bad_path, bad_query, data, not_found, ApiCaller, ListErrors, OneErrors};
use crate::web::auth::Role;
use crate::web::{ApiError, App};

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DigestTeam {
    /// `<workflow>/<step id>` of the route step.
    #[schema(examples("weekly-feedback/route"))]
    pub scope: String,
    pub team: String,
    pub last_run_id: i64,
    pub last_created_at: String,
    /// Digests written for this team so far.
    pub digests: i64,
    /// This team's history.
    pub url: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DigestTeams {
    /// By scope, then team.
    pub teams: Vec<DigestTeam>,
}

/// One digest's figures.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DigestPoint {
    pub run_id: i64,
    pub created_at: String,
    /// Feedback records routed to the team.
    pub count: i64,
    pub urgent: i64,
    /// Records with a rating.
    pub rated: i64,
    /// Null when nothing was rated.
    pub avg_rating: Option<f64>,
    /// Percent of ratings 4-5; null when nothing was rated.
    pub csat: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DigestHistory {
    pub scope: String,
    pub team: String,
    /// Newest first.
    pub digests: Vec<DigestPoint>,
}

/// Teams with digests.
#[utoipa::path(get, path = "/api/digests", tag = "cxflow",
    responses((status = 200, description = "Teams with digests", body = DigestTeams), ListErrors))]
pub(super) async fn teams(State(app): State<App>, caller: ApiCaller) -> Result<Json<DigestTeams>, ApiError> {
    caller.require(Role::Viewer)?;
    let teams = data::digest_teams(&app.store)
        .await?
        .into_iter()
        .map(|t| DigestTeam {
            url: format!("/api/digests/{}/{}", encode(&t.scope), encode(&t.team)),
            scope: t.scope,
            team: t.team,
            last_run_id: t.last_run_id,
            last_created_at: t.last_created_at,
            digests: t.digests,
        })
        .collect();
    Ok(Json(DigestTeams { teams }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryParams {
    /// Digests to return, newest first (default 100, at most 500).
    #[param(value_type = Option<i64>)]
    limit: Option<String>,
}

/// One team's digests, newest first.
#[utoipa::path(get, path = "/api/digests/{scope}/{team}", tag = "cxflow",
    params(
        ("scope" = String, Path, description = "`<workflow>/<step id>`, its slash written %2F"),
        ("team" = String, Path, description = "Team name"),
        HistoryParams,
    ),
    responses((status = 200, description = "The team's digests", body = DigestHistory), OneErrors))]
pub(super) async fn history(
    State(app): State<App>,
    caller: ApiCaller,
    path: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<Json<DigestHistory>, ApiError> {
    caller.require(Role::Viewer)?;
    let Path((scope, team)) = path.map_err(bad_path)?;
    let Query(p) = q.map_err(bad_query)?;
    let rows = data::digest_history(&app.store, &scope, &team, limit(p.limit)?).await?;
    if rows.is_empty() {
        let (s, t): (String, String) = (scope.chars().take(80).collect(), team.chars().take(80).collect());
        return Err(not_found(format!("no digests for team `{t}` in `{s}`; `/api/digests` lists the teams")));
    }
    let digests = rows
        .into_iter()
        .map(|d| DigestPoint {
            run_id: d.run_id,
            created_at: d.created_at,
            count: d.count,
            urgent: d.urgent,
            rated: d.rated,
            avg_rating: d.avg_rating,
            csat: d.csat,
        })
        .collect();
    Ok(Json(DigestHistory { scope, team, digests }))
}

/// A path segment: everything but unreserved characters percent-encoded (a scope's `/` too).
fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}
