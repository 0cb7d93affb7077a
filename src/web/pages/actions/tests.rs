use maud::Markup;
use serde_json::{json, Map, Value};

use super::forms::{params_form, PARAM_PREFIX};
use super::*;
use crate::store::{Pause, RunRow, RunStatus, TriggerKind};
use crate::web::auth::{Caller, Role};

fn viewer() -> Caller {
    let mut c = Caller::local();
    c.role = Role::Viewer;
    c
}

fn params(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn html(m: Markup) -> String {
    m.into_string()
}

fn run(status: RunStatus, trigger: TriggerKind) -> RunRow {
    RunRow {
        id: 7,
        workflow: "w".into(),
        file: "workflows/w.yaml".into(),
        trigger,
        params: "{}".into(),
        scheduled_for: None,
        started_at: "2024-06-01T10:00:00Z".into(),
        finished_at: None,
        status,
        error: None,
        resumes: 0,
    }
}

#[test]
fn the_run_now_form_has_one_input_per_param_with_its_default_and_marks_required_ones() {
    let p = params(json!({"region": "eu", "limit": 50, "ticket": null}));
    let h = html(params_form(&Caller::local(), "follow-up", &p));
    assert!(h.contains(r#"action="/workflows/follow-up/runs""#), "{h}");
    assert!(h.contains(r#"<input type="text" name="param.region" value="eu">"#), "{h}");
    assert!(h.contains(r#"<input type="text" name="param.limit" value="50">"#), "{h}");
    assert!(h.contains(r#"<input type="text" name="param.ticket" value="" required>"#), "{h}");
    assert_eq!(h.matches("abbr class=\"required\"").count(), 1, "only `ticket` is required: {h}");
    assert!(h.contains(r#"<input type="hidden" name="csrf" value="">"#), "{h}");
}

#[test]
fn the_run_now_form_escapes_names_and_defaults_and_encodes_the_workflow_in_its_url() {
    let p = params(json!({"<b>x</b>": "\"><script>alert(1)</script>"}));
    let h = html(params_form(&Caller::local(), "a b/<c>", &p));
    assert!(!h.contains("<script>") && !h.contains("<b>x"), "{h}");
    assert!(h.contains("value=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\""), "{h}");
    assert!(h.contains(r#"action="/workflows/a%20b%2F%3Cc%3E/runs""#), "{h}");
}

#[test]
fn viewers_get_no_action_forms_but_see_a_pause() {
    let v = viewer();
    assert_eq!(html(params_form(&v, "w", &params(json!({"a": 1})))), "");
    assert_eq!(html(run_actions(&v, &run(RunStatus::Running, TriggerKind::Manual), &["a"])), "");
    assert_eq!(html(resolve_form(&v, 7, &[("mail".into(), "k1".into())])), "");
    let pause = Pause {
        workflow: "w".into(),
        paused_by: "ana".into(),
        paused_at: "2024-06-01T10:00:00Z".into(),
        reason: Some("<maintenance>".into()),
    };
    let h = html(pause_toggle(&v, "w", Some(&pause)));
    assert!(h.contains("paused by ana since 2024-06-01T10:00:00Z: &lt;maintenance&gt;"), "{h}");
    assert!(!h.contains("<form"), "{h}");
    assert!(!html(pause_toggle(&v, "w", None)).contains("<form"));
}

#[test]
fn run_actions_offer_cancel_while_running_and_resume_otherwise() {
    let c = Caller::local();
    let h = html(run_actions(&c, &run(RunStatus::Running, TriggerKind::Manual), &["read", "mail"]));
    assert!(h.contains(r#"action="/runs/7/cancel""#) && !h.contains("/resume"), "{h}");
    let h = html(run_actions(&c, &run(RunStatus::Interrupted, TriggerKind::Manual), &["read", "mail"]));
    assert!(!h.contains("/cancel") && h.matches(r#"action="/runs/7/resume""#).count() == 2, "{h}");
    assert!(h.contains(r#"<option value="mail">mail</option>"#), "{h}");
    // A succeeded run has nothing left to resume: only "from a step" redoes work.
    let h = html(run_actions(&c, &run(RunStatus::Succeeded, TriggerKind::Schedule), &["read"]));
    assert_eq!(h.matches(r#"action="/runs/7/resume""#).count(), 1, "{h}");
    assert!(h.contains(r#"name="from""#), "{h}");
    assert_eq!(html(run_actions(&c, &run(RunStatus::Failed, TriggerKind::DryRun), &["read"])), "");
}

#[test]
fn the_resolve_form_lists_each_item_with_all_and_says_what_each_answer_means() {
    let h = html(resolve_form(&Caller::local(), 7, &[("mail".into(), "t<1>".into()), ("mail".into(), "t2".into())]));
    assert!(h.contains(r#"action="/runs/7/resolve""#), "{h}");
    assert!(h.contains(r#"name="items" value="t&lt;1&gt;""#) && h.contains(r#"name="items" value="t2""#), "{h}");
    assert!(h.contains(r#"name="all" value="1""#) && h.contains("all 2 uncertain deliveries"), "{h}");
    assert!(h.contains(r#"name="as" value="sent""#) && h.contains("never send it again"), "{h}");
    assert!(h.contains(r#"name="as" value="not-sent""#) && h.contains("the next resume sends it"), "{h}");
    assert_eq!(html(resolve_form(&Caller::local(), 7, &[])), "");
}

#[test]
fn form_params_skip_empty_fields_and_keep_an_unchanged_default_typed() {
    let declared = params(json!({"limit": 50, "region": "eu", "ticket": null}));
    let f = |k: &str, v: &str| (format!("{PARAM_PREFIX}{k}"), v.to_string());
    let fields = vec![("csrf".into(), "x".into()), f("limit", "50"), f("region", "us"), f("ticket", "")];
    assert_eq!(Value::Object(form_params(&fields, Some(&declared))), json!({"limit": 50, "region": "us"}));
    assert_eq!(Value::Object(form_params(&[f("limit", "60")], Some(&declared))), json!({"limit": "60"}));
}

#[test]
fn urls_and_flash_messages_are_encoded_and_escaped() {
    assert_eq!(with_done("/runs/3", "run 3 & co <ok>"), "/runs/3?done=run+3+%26+co+%3Cok%3E");
    assert_eq!(workflow_url("w", ""), "/workflows/w");
    assert_eq!(html(flash(Some("<i>hi</i>"))), r#"<div class="flash" role="status">&lt;i&gt;hi&lt;/i&gt;</div>"#);
    assert_eq!(html(flash(None)), "");
}

#[test]
fn refusals_map_to_statuses() {
    use crate::control::ControlError;
    use axum::http::StatusCode;
    let s = |e| control_error(e).status();
    assert_eq!(s(ControlError::NoSuchWorkflow("x".into())), StatusCode::NOT_FOUND);
    assert_eq!(s(ControlError::NoSuchRun(1)), StatusCode::NOT_FOUND);
    assert_eq!(s(ControlError::Invalid("m".into())), StatusCode::BAD_REQUEST);
    assert_eq!(s(ControlError::StillRunning("m".into())), StatusCode::CONFLICT);
    assert_eq!(s(ControlError::NotRunning("m".into())), StatusCode::CONFLICT);
    assert_eq!(s(ControlError::Forbidden("m".into())), StatusCode::FORBIDDEN);
}
