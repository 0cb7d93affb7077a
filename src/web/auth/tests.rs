//! The guard in front of a route that needs an operator, on a real server on 127.0.0.1:0 with
//! a real HTTP client: who gets through, who gets 403, and when a CSRF token is needed.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::post;
use axum::Router;
use reqwest::{redirect::Policy, StatusCode};
use tokio_util::sync::CancellationToken;

use super::{check_listen, guarded, routes, secret, Caller, Role};
use crate::cli::Project;
use crate::config::{ApiToken, Config, User};
use crate::store::{SessionLife, Store, WebSession};
use crate::web::{App, WebError};

const OPERATOR_TOKEN: &str = "operator-token-0123456789abcdef";
const VIEWER_TOKEN: &str = "viewer-token-0123456789abcdef";

async fn app(dir: &std::path::Path, config: Config) -> App {
    let store = Store::open(&format!("sqlite://{}", dir.join("log.sqlite").display())).await.unwrap();
    let project = Arc::new(Project { dir: dir.to_path_buf(), config: Arc::new(config) });
    App::for_project(project, store, None, CancellationToken::new())
}

fn logins() -> Config {
    let token = |name: &str, role, value: &str| ApiToken {
        name: name.into(),
        role,
        env: "X".into(),
        sha256: crate::config::auth::token_digest(value),
    };
    Config {
        users: vec![User { name: "vera".into(), role: Role::Viewer, password_hash: secret::hash_password("pw").unwrap() }],
        api_tokens: vec![token("ops", Role::Operator, OPERATOR_TOKEN), token("prom", Role::Viewer, VIEWER_TOKEN)],
        ..Config::default()
    }
}

/// What a page that changes something does first.
async fn act(caller: Caller) -> Result<String, WebError> {
    caller.require(Role::Operator)?;
    Ok(format!("done by {}", caller.name))
}

async fn serve(app: App) -> String {
    let router: Router = guarded(Router::new().route("/act", post(act)).merge(routes()), &app).with_state(app.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = app.shutdown.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_viewer_is_refused_an_operators_action_and_an_operator_token_needs_no_csrf() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), logins()).await;
    // A viewer's session, as a login makes it.
    let id = secret::random_token();
    let session = WebSession { user: "vera".into(), csrf_token: "vera-csrf".into() };
    app.store.create_web_session(&secret::sha256_hex(&id), &session, SessionLife::default(), chrono::Utc::now()).await.unwrap();
    let url = serve(app.clone()).await;
    let http = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
    let cookie = format!("cxflow_session={id}");

    let r = http.post(format!("{url}/act")).header("cookie", &cookie).form(&[("csrf", "vera-csrf")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("`vera` has role viewer; this needs operator or admin"));
    // Without the token the guard refuses before the role is even looked at.
    let r = http.post(format!("{url}/act")).header("cookie", &cookie).form(&[("x", "1")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("missing or wrong CSRF token; reload the page"));

    let r = http.post(format!("{url}/act")).bearer_auth(VIEWER_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = http.post(format!("{url}/act")).bearer_auth(OPERATOR_TOKEN).send().await.unwrap();
    assert_eq!((r.status(), r.text().await.unwrap()), (StatusCode::OK, "done by ops".to_string()));
    // Nobody: a page sends the person to log in.
    let r = http.post(format!("{url}/act")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login?next=%2Fact");
    app.shutdown.cancel();
}

#[tokio::test]
async fn local_callers_get_a_csrf_token_and_json_from_scripts_passes() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), Config::default()).await;
    let url = serve(app.clone()).await;
    let http = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
    let r = http.post(format!("{url}/act")).form(&[("x", "1")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = http.post(format!("{url}/act")).json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!((r.status(), r.text().await.unwrap()), (StatusCode::OK, "done by local".to_string()));
    // The same JSON from a page of another site is refused.
    let r = http.post(format!("{url}/act")).header("origin", "https://evil.example").json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    app.shutdown.cancel();
}

#[tokio::test]
async fn beyond_loopback_only_with_logins() {
    let dir = tempfile::tempdir().unwrap();
    let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
    let e = check_listen(&app(dir.path(), Config::default()).await, any).unwrap_err();
    assert_eq!(e.to_string(), "refusing to serve the dashboard on `0.0.0.0:8080`: beyond loopback it needs logins or API tokens in cxflow.yaml (docs/dashboard.md); or set `http_addr: 127.0.0.1:8080`");
    check_listen(&app(dir.path(), logins()).await, any).unwrap();
    check_listen(&app(dir.path(), Config::default()).await, "127.0.0.1:0".parse().unwrap()).unwrap();
}
