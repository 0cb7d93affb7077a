//! Request handlers of the demo portal.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Multipart, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};

use super::pages;
use super::state::{PortalState, Record};

type St = State<Arc<PortalState>>;

pub(crate) fn router(state: Arc<PortalState>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .route("/login", get(login_page).post(login))
        .route("/logout", get(logout))
        .route("/dashboard", get(dashboard))
        .route("/returns/new", get(new_return))
        .route("/returns", post(submit_return))
        .route("/api/records", get(records))
        .route("/api/stats", get(stats))
        .route("/api/expire", post(expire))
        // The form carries at most one small attachment; 2 MiB keeps a runaway upload cheap.
        .layer(axum::extract::DefaultBodyLimit::max(2 * 1024 * 1024))
        .with_state(state)
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The logged-in user, or the redirect a real portal answers with when the session is gone.
// The error is the page to send back as it is: boxing it would only add noise to every handler.
#[allow(clippy::result_large_err)]
fn session(st: &PortalState, headers: &HeaderMap) -> Result<(String, String), Response> {
    let sid = cookie(headers, "sid").unwrap_or("");
    match st.user_of(sid) {
        Some(user) => Ok((sid.to_string(), user)),
        None => Err(Redirect::to("/login?expired=1").into_response()),
    }
}

async fn login_page() -> Html<String> {
    Html(pages::login(None))
}

#[derive(serde::Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login(State(st): St, Form(f): Form<LoginForm>) -> Response {
    match st.login(&f.username, &f.password) {
        Some(sid) => {
            ([(header::SET_COOKIE, format!("sid={sid}; Path=/; HttpOnly; SameSite=Lax"))], Redirect::to("/dashboard")).into_response()
        }
        None => (StatusCode::UNAUTHORIZED, Html(pages::login(Some("Unknown user or wrong password")))).into_response(),
    }
}

async fn logout() -> Response {
    ([(header::SET_COOKIE, "sid=; Path=/; Max-Age=0")], Redirect::to("/login")).into_response()
}

async fn dashboard(State(st): St, headers: HeaderMap) -> Response {
    match session(&st, &headers) {
        Ok((_, user)) => Html(pages::dashboard(&user)).into_response(),
        Err(r) => r,
    }
}

async fn new_return(State(st): St, headers: HeaderMap) -> Response {
    match session(&st, &headers) {
        Ok((sid, _)) => st.form_served(&sid),
        Err(r) => return r,
    }
    let banner = st.opts.cookie_banner && cookie(&headers, "cookies_ok").is_none();
    Html(pages::return_form(banner, &[])).into_response()
}

async fn submit_return(State(st): St, headers: HeaderMap, mut form: Multipart) -> Response {
    let sid = match session(&st, &headers) {
        Ok((sid, _)) => sid,
        Err(r) => return r,
    };
    if st.expires_on_post(&sid) {
        return Redirect::to("/login?expired=1").into_response();
    }
    let mut rec = Record {
        confirmation_id: String::new(),
        order: String::new(),
        name: String::new(),
        email: String::new(),
        reason: String::new(),
        comment: String::new(),
        consent: false,
        attachment_name: None,
        attachment_size: 0,
        user: String::new(),
        session: String::new(),
        form_ms: None,
    };
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        };
        let name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().map(str::to_string);
        let bytes = match field.bytes().await {
            Ok(b) => b,
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match name.as_str() {
            "order" => rec.order = text,
            "name" => rec.name = text,
            "email" => rec.email = text,
            "reason" => rec.reason = text,
            "comment" => rec.comment = text,
            "consent" => rec.consent = true,
            "attachment"
                // Browsers send an empty part with an empty file name when no file is chosen.
                if !bytes.is_empty() => {
                    rec.attachment_name = file_name;
                    rec.attachment_size = bytes.len();
                }
            _ => {}
        }
    }
    let errors = validate(&rec, st.opts.require_name);
    if !errors.is_empty() {
        st.reject();
        return (StatusCode::UNPROCESSABLE_ENTITY, Html(pages::return_form(false, &errors))).into_response();
    }
    if st.opts.submit_delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(st.opts.submit_delay_ms)).await;
    }
    match st.submit(&sid, rec) {
        Some(rec) => Html(pages::confirmation(&rec.confirmation_id, &rec.order)).into_response(),
        None => Redirect::to("/login?expired=1").into_response(),
    }
}

fn validate(rec: &Record, require_name: bool) -> Vec<String> {
    let mut errors = Vec::new();
    if rec.order.trim().is_empty() {
        errors.push("Order number is required".to_string());
    }
    if require_name && rec.name.trim().is_empty() {
        errors.push("Customer name is required".to_string());
    }
    if !rec.email.contains('@') {
        errors.push("Customer email is not valid".to_string());
    }
    if !pages::REASONS.iter().any(|(v, _)| *v == rec.reason) {
        errors.push("Choose a reason".to_string());
    }
    if !rec.consent {
        errors.push("The customer must agree to the return terms".to_string());
    }
    errors
}

async fn records(State(st): St) -> Json<Vec<Record>> {
    Json(st.records())
}

async fn stats(State(st): St) -> impl IntoResponse {
    Json(st.stats())
}

async fn expire(State(st): St) -> impl IntoResponse {
    Json(serde_json::json!({ "expired": st.expire_all() }))
}
