//! `/api/workflows` and `/api/workflows/{name}`: the project's workflow files as planned now,
//! with their schedule, next fires, parameters and last run; broken files with diagnostics.

use std::path::Path as FsPath;
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::types::Run;
use super::{bad_path, data, not_found, ApiCaller, ListErrors, OneErrors};
use crate::engine::Plan;
use crate::schedule::calendar::skip_reason;
use crate::web::auth::Role;
use crate::web::{ApiError, App};

/// Fires listed per scheduled workflow.
const NEXT_FIRES: usize = 5;

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Workflow {
    pub name: String,
    /// The file, relative to the project folder.
    pub file: String,
    /// None for a workflow that only runs by hand.
    pub schedule: Option<Schedule>,
    /// The next fire times (empty without a schedule).
    pub next: Vec<Fire>,
    /// Declared parameters and their defaults.
    pub params: Vec<Param>,
    /// The newest run, running or not; null if it never ran.
    pub last_run: Option<Run>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Schedule {
    #[schema(examples("0 7 * * MON-FRI"))]
    pub cron: String,
    /// IANA zone the cron expression is read in.
    #[schema(examples("Europe/Berlin"))]
    pub zone: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Fire {
    /// RFC 3339, UTC.
    pub utc: String,
    /// The same instant in the workflow's zone (RFC 3339 with its offset).
    pub zoned: String,
    /// Why the scheduler will skip this fire (business days, holiday calendar), if it will.
    pub skipped: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Param {
    pub name: String,
    /// Null when the parameter is required.
    pub default: Option<Value>,
    pub required: bool,
}

/// A workflow file that failed validation.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BrokenFile {
    pub file: String,
    /// What `cxflow validate` says: file:line:col, the problem, the fix.
    pub diagnostics: String,
    /// Under `cxflow serve`: the workflow whose last good version of this file still runs.
    pub still_scheduled_as: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Workflows {
    /// By name.
    pub workflows: Vec<Workflow>,
    pub broken: Vec<BrokenFile>,
}

/// Every workflow of the project, and the files that do not validate.
#[utoipa::path(get, path = "/api/workflows", tag = "cxflow",
    responses((status = 200, description = "Workflows and broken files", body = Workflows), ListErrors))]
pub(super) async fn list(State(app): State<App>, caller: ApiCaller) -> Result<Json<Workflows>, ApiError> {
    caller.require(Role::Viewer)?;
    let snap = app.workflows.snapshot();
    let names: Vec<String> = snap.good.iter().map(|p| p.name.clone()).collect();
    let last = data::last_runs(&app.store, &names).await?;
    let workflows = snap.good.iter().zip(last).map(|(p, l)| workflow(&app, p, l.map(Run::from))).collect();
    let broken = snap
        .bad
        .iter()
        .map(|b| BrokenFile {
            file: relative(&app, &b.file),
            diagnostics: b.message.clone(),
            still_scheduled_as: still_scheduled(&app, &b.file),
        })
        .collect();
    Ok(Json(Workflows { workflows, broken }))
}

/// One workflow.
#[utoipa::path(get, path = "/api/workflows/{name}", tag = "cxflow", params(("name" = String, Path, description = "Workflow name")),
    responses((status = 200, description = "The workflow", body = Workflow), OneErrors))]
pub(super) async fn one(
    State(app): State<App>,
    caller: ApiCaller,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<Workflow>, ApiError> {
    caller.require(Role::Viewer)?;
    let Path(name) = name.map_err(bad_path)?;
    let snap = app.workflows.snapshot();
    let Some(plan) = snap.get(&name) else {
        let shown: String = name.chars().take(80).collect();
        return Err(not_found(format!(
            "there is no valid workflow `{shown}` in the project; `/api/workflows` lists them and the broken files"
        )));
    };
    let last = data::last_runs(&app.store, std::slice::from_ref(&name)).await?.pop().flatten();
    Ok(Json(workflow(&app, plan, last.map(Run::from))))
}

fn workflow(app: &App, p: &Arc<Plan>, last_run: Option<Run>) -> Workflow {
    let now = Utc::now();
    let (schedule, next) = match &p.schedule {
        None => (None, Vec::new()),
        Some(s) => {
            let w = &s.compiled;
            let next = w
                .cron
                .iter_after(now, w.tz)
                .take(NEXT_FIRES)
                .map(|t| {
                    let zoned = t.with_timezone(&w.tz);
                    Fire {
                        utc: t.to_rfc3339_opts(SecondsFormat::Secs, true),
                        zoned: zoned.to_rfc3339_opts(SecondsFormat::Secs, false),
                        skipped: skip_reason(zoned.date_naive(), w.business_days, w.calendar.as_deref()),
                    }
                })
                .collect();
            (Some(Schedule { cron: s.cron.clone(), zone: s.timezone.name().to_string() }), next)
        }
    };
    let params = p
        .params
        .iter()
        .map(|(k, v)| Param { name: k.clone(), required: v.is_null(), default: (!v.is_null()).then(|| v.clone()) })
        .collect();
    Workflow { name: p.name.clone(), file: relative(app, &p.file), schedule, next, params, last_run }
}

fn relative(app: &App, file: &FsPath) -> String {
    let root = &app.project.dir;
    file.strip_prefix(root).unwrap_or(file).display().to_string()
}

fn still_scheduled(app: &App, file: &FsPath) -> Option<String> {
    let plans = app.scheduled.as_ref()?.read().ok()?;
    plans.values().find(|p| p.file == file).map(|p| p.name.clone())
}
