//! `/login`, `/logout` and `/api/me`. A login sets a session cookie (a random 256-bit id; the
//! run log keeps only its hash). The login form itself carries a token that must match a
//! cookie set with the form, so another site cannot log a browser in to its own account.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequest, Query, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Json, Router};
use maud::{html, Markup};

use super::guard::{client_ip, cookie, SESSION_COOKIE};
use super::limit::{PER_ADDRESS, PER_NAME};
use super::state::AuthState;
use super::{secret, Caller};
use crate::store::WebSession;
use crate::web::{layout, ApiError, App, WebError};

const LOGIN_COOKIE: &str = "cxflow_login";

pub(super) fn routes() -> Router<App> {
    Router::new().route("/login", get(form).post(login)).route("/logout", post(logout)).route("/api/me", get(me))
}

/// Only a path of this server is followed after login, never another host (`//evil`, `/\evil`).
fn local_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") && !n.chars().any(|c| c.is_control()) => n.into(),
        _ => "/".into(),
    }
}

/// `Secure` when the browser reached us over https (a TLS-terminating proxy says so).
fn secure(h: &HeaderMap) -> &'static str {
    let https = h
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.split(',').next().unwrap_or("").trim().eq_ignore_ascii_case("https"));
    if https {
        "; Secure"
    } else {
        ""
    }
}

fn set_cookie(res: &mut Response, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn page(next: &str, token: &str, error: Option<&str>) -> Markup {
    layout::bare(
        "Log in",
        html! {
            h1 { "Log in" }
            @if let Some(e) = error { p.error { (e) } }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(next);
                p { label { "Name" br; input name="name" autocomplete="username" required autofocus; } }
                p { label { "Password" br; input type="password" name="password" autocomplete="current-password" required; } }
                p { button.primary type="submit" { "Log in" } }
            }
        },
    )
}

/// The form, with its login token in a cookie beside it. A browser that already holds one keeps
/// it: a browser fetches `/favicon.ico` (sent here too without a session) while the person types,
/// and a new token then would refuse the form on the page (found by tests/dashboard_browser.rs).
fn form_response(status: StatusCode, h: &HeaderMap, next: &str, error: Option<&str>) -> Response {
    let held = cookie(h, LOGIN_COOKIE).filter(|t| t.len() == 43 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    let token = held.map_or_else(secret::random_token, String::from);
    let mut res = (status, page(next, &token, error)).into_response();
    set_cookie(&mut res, format!("{LOGIN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/login; Max-Age=3600{}", secure(h)));
    res
}

#[derive(serde::Deserialize)]
struct Next {
    next: Option<String>,
}

async fn form(Extension(auth): Extension<Arc<AuthState>>, caller: Option<Caller>, headers: HeaderMap, Query(q): Query<Next>) -> Response {
    let next = local_next(q.next.as_deref());
    // Already in (or nothing to log in to): straight on.
    if caller.is_some() || !auth.required(&auth.logins()) {
        return Redirect::to(&next).into_response();
    }
    form_response(StatusCode::OK, &headers, &next, None)
}

#[derive(serde::Deserialize)]
struct Login {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

async fn login(Extension(auth): Extension<Arc<AuthState>>, req: Request) -> Result<Response, WebError> {
    let addr = client_ip(req.extensions());
    let headers = req.headers().clone();
    let Form(f) =
        Form::<Login>::from_request(req, &()).await.map_err(|e| WebError::BadRequest(format!("the login form is incomplete: {e}")))?;
    let next = local_next(f.next.as_deref());
    let logins = auth.logins();
    if !auth.required(&logins) {
        return Ok(Redirect::to(&next).into_response());
    }
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !secret::same(expected.as_bytes(), f.csrf.as_bytes()) {
        return Err(WebError::Forbidden("missing or wrong CSRF token; reload the page".into()));
    }
    // Shown in the log: a name is no secret, but keep a pasted password from filling it.
    let name: String = f.name.trim().chars().filter(|c| !c.is_control()).take(64).collect();
    let keys = [(format!("user:{name}"), PER_NAME), (format!("addr:{addr}"), PER_ADDRESS)];
    if let Some(wait) = auth.limiter.lock().unwrap_or_else(|e| e.into_inner()).wait(&keys, Instant::now()) {
        tracing::warn!(user = %name, addr = %addr, "dashboard login refused: too many failed attempts");
        return Err(WebError::TooMany(wait.as_secs().max(1)));
    }
    let user = logins.users.iter().find(|u| u.name == name).cloned();
    // An unknown name is checked against a dummy hash: a failure takes as long either way.
    let hash = user.as_ref().map_or_else(|| secret::dummy_hash().to_string(), |u| u.password_hash.clone());
    let ok = {
        let _permit = auth.verifying.acquire().await.map_err(|e| WebError::Internal(e.into()))?;
        let password = f.password;
        tokio::task::spawn_blocking(move || secret::verify_password(&password, &hash)).await.map_err(|e| WebError::Internal(e.into()))?
    };
    let Some(user) = user.filter(|_| ok) else {
        auth.limiter.lock().unwrap_or_else(|e| e.into_inner()).fail(&keys, Instant::now());
        tracing::warn!(user = %name, addr = %addr, "dashboard login failed: wrong name or password");
        return Ok(form_response(StatusCode::UNAUTHORIZED, &headers, &next, Some("wrong name or password")));
    };
    auth.limiter.lock().unwrap_or_else(|e| e.into_inner()).forget(&keys[0].0);
    // A new id at every login: one set before it (by anyone) is worth nothing after.
    if let Some(old) = cookie(&headers, SESSION_COOKIE) {
        auth.store.delete_web_session(&secret::sha256_hex(old)).await?;
    }
    let id = secret::random_token();
    let session = WebSession { user: user.name.clone(), csrf_token: secret::random_token() };
    auth.store.create_web_session(&secret::sha256_hex(&id), &session, auth.life, chrono::Utc::now()).await?;
    tracing::info!(user = %user.name, addr = %addr, "dashboard login");
    let mut res = Redirect::to(&next).into_response();
    let max_age = auth.life.absolute.num_seconds();
    set_cookie(&mut res, format!("{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{}", secure(&headers)));
    set_cookie(&mut res, format!("{LOGIN_COOKIE}=; HttpOnly; SameSite=Strict; Path=/login; Max-Age=0{}", secure(&headers)));
    Ok(res)
}

/// Ends the session (the guard checked its CSRF token).
async fn logout(Extension(auth): Extension<Arc<AuthState>>, caller: Caller, headers: HeaderMap) -> Result<Response, WebError> {
    if !caller.can_log_out() {
        return Ok(Redirect::to("/").into_response());
    }
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        auth.store.delete_web_session(&secret::sha256_hex(id)).await?;
    }
    tracing::info!(user = %caller.name, "dashboard logout");
    let mut res = Redirect::to("/login").into_response();
    set_cookie(&mut res, format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}", secure(&headers)));
    Ok(res)
}

/// Who the API thinks the caller is.
async fn me(caller: Caller) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(serde_json::json!({ "name": caller.name, "role": caller.role })))
}
