//! The POST handlers behind the action forms. Each needs an operator (control refuses viewers
//! too, and records the refusal), and answers `303 See Other` to the page the action changed,
//! with what was done in `?done=`; a refusal is an error page with its status and message.

use axum::extract::{Path, State};
use axum::response::Redirect;
use axum::Form;

use super::{control_error, form_params, run_url, with_done, workflow_url};
use crate::store::Resolution;
use crate::web::auth::{Caller, Role};
use crate::web::{App, WebError};

/// Form fields as sent, repeated names kept (`items` of the resolve form).
type Fields = Form<Vec<(String, String)>>;

/// The first non-empty value of `name`.
fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, v)| k == name && !v.trim().is_empty()).map(|(_, v)| v.as_str())
}

pub(super) async fn run_now(
    State(app): State<App>,
    caller: Caller,
    Path(name): Path<String>,
    Form(fields): Fields,
) -> Result<Redirect, WebError> {
    caller.require(Role::Operator)?;
    let snap = app.workflows.snapshot();
    let params = form_params(&fields, snap.get(&name).map(|p| &p.params));
    let id = app.control.start_run(&caller.actor(), &name, params).await.map_err(control_error)?;
    Ok(Redirect::to(&with_done(&run_url(id, ""), &format!("run {id} of {name} started by {}", caller.name))))
}

pub(super) async fn resume(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<i64>,
    Form(fields): Fields,
) -> Result<Redirect, WebError> {
    caller.require(Role::Operator)?;
    let from = field(&fields, "from").map(String::from);
    let msg = match &from {
        Some(f) => format!("run {id} resumed from step {f} by {}", caller.name),
        None => format!("run {id} resumed by {}", caller.name),
    };
    app.control.resume(&caller.actor(), id, from).await.map_err(control_error)?;
    Ok(Redirect::to(&with_done(&run_url(id, ""), &msg)))
}

pub(super) async fn cancel(State(app): State<App>, caller: Caller, Path(id): Path<i64>) -> Result<Redirect, WebError> {
    caller.require(Role::Operator)?;
    let req = app.control.cancel(&caller.actor(), id).await.map_err(control_error)?;
    let msg = format!("cancel of run {id} requested by {} at {}; the run ends interrupted once its items in flight finish", req.by, req.at);
    Ok(Redirect::to(&with_done(&run_url(id, ""), &msg)))
}

pub(super) async fn resolve(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<i64>,
    Form(fields): Fields,
) -> Result<Redirect, WebError> {
    caller.require(Role::Operator)?;
    let decision = decision(field(&fields, "as"))?;
    let all = field(&fields, "all").is_some_and(|v| v == "1" || v == "on" || v == "true");
    let items: Vec<String> =
        if all { Vec::new() } else { fields.iter().filter(|(k, v)| k == "items" && !v.is_empty()).map(|(_, v)| v.clone()).collect() };
    if !all && items.is_empty() {
        return Err(WebError::BadRequest(format!("tick the uncertain items of run {id} to resolve, or `all`")));
    }
    let done = app.control.resolve(&caller.actor(), id, &items, decision).await.map_err(control_error)?;
    let msg = format!(
        "{} uncertain deliver{} of run {id} resolved as {} by {}",
        done.len(),
        if done.len() == 1 { "y" } else { "ies" },
        decision.as_str(),
        caller.name
    );
    Ok(Redirect::to(&with_done(&run_url(id, ""), &msg)))
}

/// `as=sent|not-sent`.
pub(crate) fn decision(v: Option<&str>) -> Result<Resolution, WebError> {
    match v {
        Some("sent") => Ok(Resolution::Sent),
        Some("not-sent") => Ok(Resolution::NotSent),
        Some(other) => {
            Err(WebError::BadRequest(format!("`as` is `{other}`; it is `sent` (it arrived) or `not-sent` (the next resume sends it)")))
        }
        None => Err(WebError::BadRequest("say whether the deliveries arrived: `as` is `sent` or `not-sent`".into())),
    }
}

pub(super) async fn pause(
    State(app): State<App>,
    caller: Caller,
    Path(name): Path<String>,
    Form(fields): Fields,
) -> Result<Redirect, WebError> {
    caller.require(Role::Operator)?;
    let reason = field(&fields, "reason").map(|r| r.trim().to_string());
    let p = app.control.pause(&caller.actor(), &name, reason).await.map_err(control_error)?;
    Ok(Redirect::to(&with_done(&workflow_url(&name, ""), &format!("schedule of {name} {}", p.skip_reason()))))
}

pub(super) async fn unpause(State(app): State<App>, caller: Caller, Path(name): Path<String>) -> Result<Redirect, WebError> {
    caller.require(Role::Operator)?;
    app.control.unpause(&caller.actor(), &name).await.map_err(control_error)?;
    Ok(Redirect::to(&with_done(&workflow_url(&name, ""), &format!("schedule of {name} unpaused by {}; its next fire runs", caller.name))))
}
