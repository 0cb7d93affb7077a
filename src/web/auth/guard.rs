//! The one middleware every request passes: refuses what a browser must not be made to do,
//! finds the caller, checks the CSRF token of state changes, adds the security headers.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Router;

use super::state::{AuthState, Logins};
use super::{secret, Caller, SameOriginFraming};
use crate::web::{ApiError, App, WebError};

pub(crate) const SESSION_COOKIE: &str = "cxflow_session";
/// Largest form body read to find its `csrf` field (axum's own default limit).
const FORM_LIMIT: usize = 2 << 20;

pub(super) fn wrap(routes: Router<App>, app: &App) -> Router<App> {
    let state = Arc::new(AuthState::new(app));
    routes.layer(middleware::from_fn_with_state(state, guard))
}

async fn guard(State(auth): State<Arc<AuthState>>, mut req: Request, next: Next) -> Response {
    req.extensions_mut().insert(auth.clone());
    let mut res = match admit(&auth, req).await {
        Ok(req) => next.run(req).await,
        Err(refused) => refused,
    };
    security_headers(&mut res);
    res
}

/// Changes state: anything but GET, HEAD and OPTIONS.
pub(super) fn changes_state(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/") || path == "/metrics"
}

fn is_login(path: &str) -> bool {
    path == "/login"
}

/// A refusal, as JSON for the API and as a page elsewhere.
fn refuse(path: &str, e: WebError) -> Response {
    if is_api(path) {
        ApiError(e).into_response()
    } else {
        e.into_response()
    }
}

async fn admit(auth: &AuthState, mut req: Request) -> Result<Request, Response> {
    let logins = auth.logins();
    let required = auth.required(&logins);
    let path = req.uri().path().to_string();
    let headers = req.headers();
    if !required {
        // No logins: only this machine may call, and a web page it visits must not be able to
        // reach us under another name (DNS rebinding).
        if let Some(host) = header_str(headers, header::HOST).filter(|h| !is_loopback_host(h)) {
            let msg = format!("the dashboard answers only to a loopback address (this request asked for `{host}`) while no logins are configured; open it at http://127.0.0.1:PORT/, or configure `users` in cxflow.yaml");
            return Err(refuse(&path, WebError::Forbidden(msg)));
        }
    }
    let bearer = if required { bearer_token(headers) } else { None };
    let caller = match bearer {
        Some(t) => Some(token_caller(&logins, t).ok_or_else(|| unauthorized("the API token is not valid"))?),
        None => {
            if changes_state(req.method()) {
                cross_site(headers).map_err(|msg| refuse(&path, WebError::Forbidden(msg)))?;
            }
            if required {
                session_caller(auth, &logins, headers).await.map_err(|e| refuse(&path, e))?
            } else {
                Some(Caller { csrf: Some(auth.local_csrf.clone()), ..Caller::local() })
            }
        }
    };
    let Some(caller) = caller else {
        if is_login(&path) {
            return Ok(req);
        }
        if is_api(&path) {
            return Err(unauthorized("log in first: send `Authorization: Bearer <token>` with an API token from cxflow.yaml"));
        }
        return Err(to_login(req.uri()));
    };
    if changes_state(req.method()) && !caller.token && !is_login(&path) {
        // A browser cannot send JSON to another site without a CORS preflight, which this server
        // never approves: scripts on this machine may post JSON without logins or tokens.
        let json = content_type(req.headers()).is_some_and(|c| c == "application/json");
        if required || !json {
            let (sent, back) = csrf_sent(req).await.map_err(|e| refuse(&path, e))?;
            req = back;
            let expected = caller.csrf.as_deref().unwrap_or_default();
            if !sent.is_some_and(|s| !expected.is_empty() && secret::same(s.as_bytes(), expected.as_bytes())) {
                return Err(refuse(&path, WebError::Forbidden("missing or wrong CSRF token; reload the page".into())));
            }
        }
    }
    req.extensions_mut().insert(caller);
    Ok(req)
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn content_type(h: &HeaderMap) -> Option<String> {
    header_str(h, header::CONTENT_TYPE).map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

/// `localhost`, `127.x.y.z` or `[::1]`, with any port.
pub(super) fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Refuses a state change a page of another site asked the browser to make.
fn cross_site(h: &HeaderMap) -> Result<(), String> {
    const MSG: &str = "refused: this request to change something came from another site";
    if let Some(site) = header_str(h, header::HeaderName::from_static("sec-fetch-site")) {
        if matches!(site, "cross-site" | "same-site") {
            return Err(format!("{MSG} (Sec-Fetch-Site: {site})"));
        }
    }
    let Some(origin) = header_str(h, header::ORIGIN) else { return Ok(()) };
    // Behind a reverse proxy the browser's host may arrive as X-Forwarded-Host.
    let host = header_str(h, header::HeaderName::from_static("x-forwarded-host"))
        .or_else(|| header_str(h, header::HOST))
        .map(|s| s.split(',').next().unwrap_or("").trim());
    let authority = url::Url::parse(origin).ok().filter(|u| u.host_str().is_some()).map(|u| match u.port() {
        Some(p) => format!("{}:{p}", u.host_str().unwrap_or("")),
        None => u.host_str().unwrap_or("").to_string(),
    });
    match (authority, host) {
        (Some(a), Some(h)) if a.eq_ignore_ascii_case(h) => Ok(()),
        _ => Err(format!("{MSG} (Origin: {origin})")),
    }
}

fn bearer_token(h: &HeaderMap) -> Option<&str> {
    let v = header_str(h, header::AUTHORIZATION)?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The token's caller. Every configured token is compared, each in constant time, so the time
/// taken says nothing about which one came close.
fn token_caller(logins: &Logins, token: &str) -> Option<Caller> {
    let digest = crate::config::auth::token_digest(token);
    let mut found = None;
    for t in &logins.tokens {
        if secret::same(&t.sha256, &digest) {
            found = Some(t);
        }
    }
    found.map(|t| Caller { name: t.name.clone(), role: t.role, csrf: None, session: false, token: true })
}

pub(super) fn cookie<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The person whose session cookie came with the request, if the session is live and the user
/// is still in `cxflow.yaml` (with the role it has there now).
async fn session_caller(auth: &AuthState, logins: &Logins, h: &HeaderMap) -> Result<Option<Caller>, WebError> {
    let Some(id) = cookie(h, SESSION_COOKIE) else { return Ok(None) };
    let hash = secret::sha256_hex(id);
    let Some(s) = auth.store.use_web_session(&hash, auth.life, chrono::Utc::now()).await? else { return Ok(None) };
    let Some(user) = logins.users.iter().find(|u| u.name == s.user) else {
        tracing::info!(user = %s.user, "a session of a user no longer in cxflow.yaml was refused and deleted");
        auth.store.delete_web_session(&hash).await?;
        return Ok(None);
    };
    Ok(Some(Caller { name: user.name.clone(), role: user.role, csrf: Some(s.csrf_token), session: true, token: false }))
}

/// The CSRF token the request carries (header, or the form field `csrf`), and the request with
/// its body put back.
async fn csrf_sent(req: Request) -> Result<(Option<String>, Request), WebError> {
    if let Some(t) = header_str(req.headers(), header::HeaderName::from_static("x-csrf-token")) {
        return Ok((Some(t.to_string()), req));
    }
    if content_type(req.headers()).as_deref() != Some("application/x-www-form-urlencoded") {
        return Ok((None, req));
    }
    let (parts, body) = req.into_parts();
    let bytes =
        axum::body::to_bytes(body, FORM_LIMIT).await.map_err(|_| WebError::BadRequest("the form is too large (2 MiB at most)".into()))?;
    let token = url::form_urlencoded::parse(&bytes).find(|(k, _)| k == "csrf").map(|(_, v)| v.into_owned());
    Ok((token, Request::from_parts(parts, Body::from(bytes))))
}

fn unauthorized(msg: &str) -> Response {
    let mut r = (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({ "error": msg }))).into_response();
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// To the login page, coming back here after.
fn to_login(uri: &axum::http::Uri) -> Response {
    let here = uri.path_and_query().map_or("/", |p| p.as_str());
    let next: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
    Redirect::to(&format!("/login?next={next}")).into_response()
}

/// The client's address, for the failed-login counts and the log.
pub(super) fn client_ip(req_ext: &axum::http::Extensions) -> String {
    req_ext.get::<ConnectInfo<SocketAddr>>().map_or_else(|| "unknown".into(), |c| c.0.ip().to_string())
}

fn security_headers(res: &mut Response) {
    let framed = res.extensions().get::<SameOriginFraming>().is_some();
    let h = res.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static(if framed { "SAMEORIGIN" } else { "DENY" }));
    let ancestors = if framed { "frame-ancestors 'self'" } else { "frame-ancestors 'none'" };
    // A handler's own policy (an artifact's sandbox) is kept, with the framing rule added.
    let csp = match h.get(header::CONTENT_SECURITY_POLICY).and_then(|v| v.to_str().ok()) {
        Some(own) if own.contains("frame-ancestors") => own.to_string(),
        Some(own) => format!("{own}; {ancestors}"),
        None => ancestors.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
}
