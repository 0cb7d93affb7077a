//! What the action endpoints take and answer, as the OpenAPI document describes them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

/// Every failed request.
#[derive(Serialize, ToSchema)]
pub(crate) struct ActionError {
    #[schema(examples("no workflow named `nightly` in the workflows folder; `cxflow validate` lists them"))]
    pub error: String,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RunRequest {
    /// Values for the workflow's `params:`; those left out take their defaults.
    #[schema(value_type = Object, examples(json!({"ticket_id": "T-1042", "region": "eu"})))]
    pub params: Map<String, Value>,
}

/// A run started or resumed; it goes on in the background: poll `GET /api/runs/{run_id}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct RunStarted {
    pub run_id: i64,
    /// The run's page in the dashboard.
    #[schema(examples("/runs/42"))]
    pub url: String,
}

impl RunStarted {
    pub(super) fn new(run_id: i64) -> RunStarted {
        RunStarted { run_id, url: format!("/runs/{run_id}") }
    }
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ResumeRequest {
    /// Run this step and the ones after it again, every item; without it, what did not succeed.
    pub from: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Cancelled {
    pub run_id: i64,
    pub requested_by: String,
    /// RFC 3339, UTC.
    pub requested_at: String,
}

#[derive(Deserialize, Serialize, Clone, Copy, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Decision {
    /// It arrived: never send it again.
    Sent,
    /// It did not: the next resume sends it.
    NotSent,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResolveRequest {
    /// Item keys of uncertain deliveries of the run.
    #[serde(default)]
    pub items: Vec<String>,
    /// Every uncertain delivery of the run (then `items` must be empty).
    #[serde(default)]
    pub all: bool,
    #[serde(rename = "as")]
    pub decision: Decision,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Resolved {
    pub run_id: i64,
    pub resolved: Vec<ResolvedItem>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ResolvedItem {
    /// The ledger key.
    pub key: String,
    pub step_id: String,
    pub item_key: String,
    /// `sent` or `not-sent`.
    pub state: String,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct PauseRequest {
    /// Shown with every skipped fire and by `cxflow next`.
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct PauseState {
    pub workflow: String,
    /// Whether the schedule is paused now (false after an unpause; the rest describes the pause lifted).
    pub paused: bool,
    pub paused_by: String,
    /// RFC 3339, UTC.
    pub paused_at: String,
    pub reason: Option<String>,
}

impl PauseState {
    pub(super) fn new(p: crate::store::Pause, paused: bool) -> PauseState {
        PauseState { workflow: p.workflow, paused, paused_by: p.paused_by, paused_at: p.paused_at, reason: p.reason }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ActionsQuery {
    pub workflow: Option<String>,
    pub actor: Option<String>,
    /// run, resume, cancel, pause, unpause or resolve.
    pub action: Option<String>,
    pub run_id: Option<i64>,
    /// Actions older than this id: a page's `next`.
    pub before: Option<i64>,
    /// At most this many (default 50, at most 500).
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Action {
    pub id: i64,
    /// RFC 3339, UTC.
    pub at: String,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub workflow: Option<String>,
    pub run_id: Option<i64>,
    /// What the action was given: parameters, items, reason, step.
    #[schema(value_type = Option<Object>)]
    pub detail: Option<Value>,
    /// `ok`, or `refused: <why>`.
    pub outcome: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ActionsPage {
    /// Newest first.
    pub actions: Vec<Action>,
    /// Pass as `before` for the next (older) page; absent on the last.
    pub next: Option<i64>,
}

/// No fields: the body of cancel and unpause, which need nothing.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Empty {}
