use utoipa::OpenApi;

use super::*;
use axum::body::Bytes;
use axum::http::{header, HeaderMap};
use serde_json::Value;

#[test]
fn the_document_lists_every_action_path_with_its_schemas() {
    let doc: Value = serde_json::from_str(&ActionsApi::openapi().to_json().unwrap()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/workflows/{name}/runs", "post"),
        ("/api/workflows/{name}/pause", "post"),
        ("/api/workflows/{name}/unpause", "post"),
        ("/api/runs/{id}/resume", "post"),
        ("/api/runs/{id}/cancel", "post"),
        ("/api/runs/{id}/resolve", "post"),
        ("/api/actions", "get"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} missing: {}", doc["paths"]);
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for s in ["RunRequest", "RunStarted", "ResolveRequest", "Decision", "ActionsPage", "ActionError", "PauseState"] {
        assert!(schemas.contains_key(s), "schema {s} missing: {:?}", schemas.keys().collect::<Vec<_>>());
    }
    assert_eq!(doc["components"]["schemas"]["Decision"]["enum"], serde_json::json!(["sent", "not-sent"]));
    assert!(doc["paths"]["/api/workflows/{name}/runs"]["post"]["responses"]["201"].is_object());
}

#[test]
fn a_body_must_be_declared_json_and_fit() {
    let json = {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "application/json; charset=utf-8".parse().unwrap());
        h
    };
    let r: RunRequest = body(&json, &Bytes::new()).unwrap();
    assert!(r.params.is_empty());
    let e = body::<RunRequest>(&HeaderMap::new(), &Bytes::from_static(b"{}")).err().unwrap();
    assert!(e.0.to_string().contains("Content-Type: application/json"), "{}", e.0);
    let e = body::<RunRequest>(&json, &Bytes::from_static(br#"{"parms": {}}"#)).err().unwrap();
    assert!(e.0.to_string().starts_with("the request body does not fit this endpoint: unknown field `parms`"), "{}", e.0);
    let r: ResolveRequest = body(&json, &Bytes::from_static(br#"{"all": true, "as": "not-sent"}"#)).unwrap();
    assert!(r.all && matches!(r.decision, Decision::NotSent));
}
