//! The OpenAPI document against the router: same paths both ways, every failure documented,
//! and every documented path answered by a real server (not the unknown-path fallback).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use utoipa::openapi::path::Operation;
use utoipa::OpenApi;

use super::{api, ApiDoc};
use crate::cli::Project;
use crate::store::Store;
use crate::web::App;

fn documented() -> Vec<(String, String, Operation)> {
    let doc = super::document();
    let mut out = Vec::new();
    for (path, item) in doc.paths.paths {
        let ops = [
            ("GET", item.get),
            ("POST", item.post),
            ("PUT", item.put),
            ("DELETE", item.delete),
            ("PATCH", item.patch),
            ("HEAD", item.head),
            ("OPTIONS", item.options),
            ("TRACE", item.trace),
        ];
        for (m, op) in ops {
            if let Some(op) = op {
                out.push((m.to_string(), path.clone(), op));
            }
        }
    }
    out
}

#[test]
fn the_document_and_the_router_have_the_same_paths() {
    let routed: BTreeSet<(String, String)> = api().paths.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    let doc: BTreeSet<(String, String)> = documented().into_iter().map(|(m, p, _)| (m, p)).collect();
    let undocumented: Vec<_> = routed.difference(&doc).collect();
    let unrouted: Vec<_> = doc.difference(&routed).collect();
    assert!(undocumented.is_empty(), "routed but not in /api/openapi.json (add #[utoipa::path] and list it in ApiDoc): {undocumented:?}");
    assert!(unrouted.is_empty(), "in /api/openapi.json but not routed: {unrouted:?}");
    assert!(routed.len() >= 9, "{routed:?}");
}

#[test]
fn every_operation_documents_its_failures_and_the_bearer_scheme() {
    for (m, path, op) in documented() {
        let codes: BTreeSet<&str> = op.responses.responses.keys().map(String::as_str).collect();
        // Starting a run answers 201 Created; everything else 200.
        let ok = if codes.contains("201") { "201" } else { "200" };
        let mut want = vec![ok, "400", "401", "403", "500"];
        if path.contains('{') {
            want.push("404");
        }
        for c in want {
            assert!(codes.contains(c), "{m} {path} does not document status {c}: {codes:?}");
        }
    }
    let v = serde_json::to_value(super::document()).unwrap();
    assert!(v["openapi"].as_str().unwrap().starts_with("3.1."), "{}", v["openapi"]);
    assert_eq!(v["components"]["securitySchemes"]["bearer"]["scheme"], "bearer", "{}", v["components"]);
    assert_eq!(v["security"][0]["bearer"], serde_json::json!([]));
    // Every failure refers to the one error shape.
    let err = &v["paths"]["/api/runs/{id}"]["get"]["responses"]["404"]["content"]["application/json"]["schema"]["$ref"];
    assert_eq!(err, "#/components/schemas/ErrorBody");
    assert!(v["components"]["schemas"]["ErrorBody"]["properties"]["error"].is_object());
    // Every reference resolves: a response type missing from the components would not.
    let mut refs = Vec::new();
    collect_refs(&v, &mut refs);
    assert!(refs.len() > 20, "{refs:?}");
    for r in refs {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected reference {r}"));
        assert!(v["components"]["schemas"][name].is_object(), "{r} is not in the document's components");
    }
}

fn collect_refs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => collect_refs(x, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// An empty project and its run log.
async fn project() -> (tempfile::TempDir, Arc<Project>, Store) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("workflows")).unwrap();
    let project = Arc::new(Project::open(dir.path()).unwrap());
    let store = project.store().await.unwrap();
    (dir, project, store)
}

/// The server over `project` on 127.0.0.1:0; cancel the token to stop it.
async fn serve(project: Arc<Project>, store: Store) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
    let shutdown = CancellationToken::new();
    let app = App::for_project(project, store, None, shutdown.clone());
    let (addr, task) = crate::web::start(app, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    (addr, shutdown, task)
}

#[tokio::test]
async fn every_documented_path_is_served_and_an_unknown_one_is_json() {
    let (_dir, project, store) = project().await;
    let (addr, shutdown, task) = serve(project, store).await;
    let client = reqwest::Client::new();

    for (m, path, _) in documented() {
        let concrete = path.replace("{id}", "1").replace("{name}", "w").replace("{scope}", "w%2Fr").replace("{team}", "t");
        let url = format!("http://{addr}{concrete}");
        let r = match m.as_str() {
            "GET" => client.get(url).send().await.unwrap(),
            // Actions on a run or workflow that does not exist.
            "POST" => client.post(url).header("content-type", "application/json").body("{}").send().await.unwrap(),
            other => panic!("extend this test for {other} {path}"),
        };
        let status = r.status().as_u16();
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"), "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        let err = body["error"].as_str().unwrap_or("");
        assert!(!err.starts_with("no API endpoint"), "{path} fell through to the fallback: {body}");
        // An empty run log: lists answer 200, single things 404 with a JSON error; an action
        // whose body `{}` lacks a required field says so (400).
        assert!(status == 200 || ((status == 404 || status == 400) && !err.is_empty()), "{path}: {status} {body}");
    }

    let r = client.get(format!("http://{addr}/api/nothing/here")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "no API endpoint `GET /api/nothing/here`; `/api/openapi.json` lists them");

    shutdown.cancel();
    task.await.unwrap();
}

/// What the end-to-end test cannot catch in a finished run: a step still running has its items
/// counted now, and claimed deliveries never confirmed are listed as uncertain.
#[tokio::test]
async fn a_running_step_is_counted_live_and_unconfirmed_deliveries_are_uncertain() {
    use crate::engine::log::ItemResult;
    use crate::store::{ItemStatus, NewRun, TriggerKind};

    let (_dir, project, store) = project().await;
    let params = serde_json::json!({});
    let run = NewRun { workflow: "w", file: "workflows/w.yaml", trigger: TriggerKind::Manual, params: &params, scheduled_for: None };
    let id = store.start_run(run).await.unwrap();
    store.start_step(id, "mail", 0, "send_email").await.unwrap();
    let w = store.item_writer();
    for (seq, (key, status)) in [("T-2", ItemStatus::Ok), ("T-1", ItemStatus::Ok), ("T-3", ItemStatus::Failed)].into_iter().enumerate() {
        let (step_id, key) = ("mail".to_string(), key.to_string());
        w.write(ItemResult { run_id: id, step_id, key, seq: seq as i64, status, attempts: 1, error: None, output: None, claim: None })
            .await;
    }
    w.flush().await.unwrap();
    for k in ["T-4", "T-5"] {
        store.claim_key(&format!("w/mail/{k}"), "w", id, "mail", k).await.unwrap();
    }
    let (addr, shutdown, task) = serve(project, store).await;
    let get = |path: String| async move {
        reqwest::get(format!("http://{addr}{path}")).await.unwrap().json::<serde_json::Value>().await.unwrap()
    };

    let v = get(format!("/api/runs/{id}")).await;
    let step = &v["steps"][0];
    assert_eq!(
        (&step["status"], &step["ok"], &step["failed"], &step["skipped"]),
        (&"running".into(), &2.into(), &1.into(), &0.into()),
        "{v}"
    );
    let uncertain = serde_json::json!([
        {"key": "w/mail/T-4", "step": "mail", "item_key": "T-4"},
        {"key": "w/mail/T-5", "step": "mail", "item_key": "T-5"},
    ]);
    assert_eq!(v["uncertain"], uncertain);
    // Input order, a page at a time; the cursor is `<position>.<seq>.<row>`.
    let page = get(format!("/api/runs/{id}/items?limit=2")).await;
    let keys: Vec<&str> = page["items"].as_array().unwrap().iter().map(|i| i["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["T-2", "T-1"]);
    let next = page["next"].as_str().unwrap().to_string();
    assert!(next.starts_with("0.1."), "{page}");
    let rest = get(format!("/api/runs/{id}/items?after={next}")).await;
    assert_eq!(rest["items"][0]["key"], "T-3");
    assert!(rest["next"].is_null(), "{rest}");

    shutdown.cancel();
    task.await.unwrap();
}
