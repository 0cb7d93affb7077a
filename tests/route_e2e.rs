//! End to end: the real binary routes feedback on a real SQLite run log: digests by content,
//! escaping of hostile text, once-only routing across runs, positioned rule-file errors, and a
//! webhook POST received by a real HTTP listener on 127.0.0.1.

mod support;

use std::sync::{Arc, Mutex};

use serde_json::Value;
use support::TestProject;

/// The shipped sample (rules, data, templates) with the email step replaced by a JSON export of
/// the routed records, so it runs without an SMTP server.
fn sample_project(extra_route: &str) -> TestProject {
    let p = TestProject::new();
    p.copy_from_repo(&[
        "routing/teams.yaml",
        "data/feedback.csv",
        "templates/feedback_digest.html.hbs",
        "templates/feedback_digest.txt.hbs",
    ]);
    p.write(
        "workflows/fb.yaml",
        &format!(
            r#"name: fb
steps:
  - id: feedback
    read_csv: data/feedback.csv
  - id: routed
    route:
      input: feedback
      rules: routing/teams.yaml
      unmatched: Triage
      as_of: "2024-05-02T12:00:00Z"
{extra_route}      digest:
        out_dir: out/digests
        urgent_limit: 5
        sample_size: 3
  - id: export
    write_json: {{ from: routed, path: out/routed.json }}
"#
        ),
    );
    p
}

fn routed(p: &TestProject) -> Vec<Value> {
    serde_json::from_str::<Value>(&p.read("out/routed.json")).unwrap().as_array().unwrap().clone()
}

fn team<'a>(records: &'a [Value], name: &str) -> &'a Value {
    records.iter().find(|r| r["team"]["name"] == name).unwrap_or_else(|| panic!("no team {name}"))
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect()
}

#[test]
fn sample_routes_to_teams_and_writes_digests() {
    let p = sample_project("");
    p.run(&["run", "fb"]).expect_code(0);
    let out = routed(&p);
    let names: Vec<&str> = out.iter().map(|r| r["team"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Trust & Safety", "Billing", "Delivery", "Mobile app", "Triage"]);

    let billing = team(&out, "Billing");
    assert_eq!(billing["count"], 4);
    assert_eq!(billing["team"]["email"], "billing@example.com, finance-ops@example.com");
    // Urgent: rating <= 2 and a refund keyword; worst rating first, then newest.
    assert_eq!(ids(&billing["urgent"]), ["FB-1001", "FB-1012"]);
    assert_eq!(billing["urgent_count"], 2);
    assert_eq!(billing["avg_rating"], 2.5);
    assert_eq!(billing["csat"], 25.0);
    assert_eq!(billing["previous"], Value::Null);
    let kw: Vec<&str> = billing["keywords"].as_array().unwrap().iter().map(|k| k["keyword"].as_str().unwrap()).collect();
    assert!(kw.contains(&"charged twice") && kw.contains(&"refund"), "{kw:?}");

    let trust = team(&out, "Trust & Safety");
    assert_eq!(ids(&trust["urgent"]), ["FB-1004", "FB-1017"], "both within a day of as_of, worst rating first");
    let mobile = team(&out, "Mobile app");
    assert_eq!(ids(&mobile["urgent"]), ["FB-1009", "FB-1002"]);
    assert_eq!(team(&out, "Triage")["count"], 5);
    assert_eq!(team(&out, "Mobile app")["count"], 5);

    let html = p.read("out/digests/billing.html");
    assert!(html.contains("Billing: 4 new pieces of feedback"), "{html}");
    assert!(html.contains("<svg") && html.contains("Feedback by channel"));
    let first = html.find("FB-1001").unwrap();
    assert!(first < html.find("FB-1012").unwrap(), "urgent items in urgency order");
    let md = p.read("out/digests/trust-safety.md");
    assert!(md.starts_with("# Trust & Safety: 2 new pieces of feedback"), "{md}");
    assert!(md.contains("1. [1/5]"), "{md}");

    let logged = p.query("SELECT team, count, urgent, printf('%.1f', avg_rating) FROM route_digests ORDER BY team");
    assert!(logged.contains(&"Billing|4|2|2.5".to_string()), "{logged:?}");
    // The ids remembered as routed (stored compressed), each with the run that routed it.
    let routed = p.run(&["routed", "fb", "routed"]);
    routed.expect_code(0);
    assert_eq!(routed.stdout.lines().count(), 20, "{}", routed.stdout);
    assert!(routed.stdout.lines().any(|l| l == "FB-1001\t1"), "{}", routed.stdout);
    assert!(routed.stdout.lines().all(|l| l.ends_with("\t1")), "{}", routed.stdout);
    let none = p.run(&["routed", "fb", "feedback"]);
    none.expect_code(0);
    assert_eq!(none.stdout, "");
    assert!(none.stderr.contains("no ids routed by step `feedback` of workflow `fb`"), "{}", none.stderr);
    let artifacts = p.query("SELECT count(*) FROM artifacts WHERE kind = 'digest'");
    assert_eq!(artifacts, ["10"]);
}

#[test]
fn hostile_feedback_is_text_in_html_digests() {
    let p = sample_project("");
    p.run(&["run", "fb"]).expect_code(0);
    let html = p.read("out/digests/triage.html");
    assert!(html.contains("FB-1011"), "the hostile record is listed: {html}");
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("<b>again"), "{html}");
    assert!(html.contains("&lt;script&gt;alert("), "{html}");
    let md = p.read("out/digests/triage.md");
    assert!(md.contains("\\<script\\>"), "{md}");
}

#[test]
fn feedback_is_routed_once_across_runs_and_digests_show_change() {
    let p = sample_project("");
    p.run(&["run", "fb"]).expect_code(0);
    // Second run on the same data: nothing new.
    p.run(&["run", "fb"]).expect_code(0);
    assert_eq!(routed(&p).len(), 0);
    let out = p.query("SELECT output FROM steps WHERE run_id = 2 AND step_id = 'routed'");
    let summary: Value = serde_json::from_str(&out[0]).unwrap();
    assert_eq!(summary["already_routed"], 20);
    assert_eq!(summary["routed"], 0);

    // New feedback arrives: only it is routed, and the digest compares with run 1.
    let mut csv = p.read("data/feedback.csv");
    csv.push_str("FB-2001,2024-05-02T11:50:00Z,email,billing,5,zed@example.com,Refund arrived quickly\n");
    p.write("data/feedback.csv", &csv);
    p.run(&["run", "fb"]).expect_code(0);
    let out = routed(&p);
    assert_eq!(out.len(), 1);
    let billing = team(&out, "Billing");
    assert_eq!(billing["count"], 1);
    assert_eq!(billing["previous"]["run_id"], 1);
    assert_eq!(billing["change"]["avg_rating"], 2.5);
    assert_eq!(billing["change"]["csat"], 75.0);
    assert_eq!(billing["change"]["count"], -3);
    assert!(p.read("out/digests/billing.html").contains("(+2.5 since the previous digest)"));

    // `reroute: true` routes everything again.
    std::fs::write(
        p.path().join("workflows/fb.yaml"),
        p.read("workflows/fb.yaml").replace("unmatched: Triage\n", "unmatched: Triage\n      reroute: true\n"),
    )
    .unwrap();
    p.run(&["run", "fb"]).expect_code(0);
    assert_eq!(routed(&p).iter().map(|r| r["count"].as_u64().unwrap()).sum::<u64>(), 21);
}

#[test]
fn rule_file_errors_point_into_the_rule_file() {
    let p = sample_project("");
    let rules = "teams:\n  - name: A\n    email: a@example.com\n    when:\n      any:\n        - { field: text, regex: 'refund(' }\n        - { field: rating, below: 2 }\n  - name: Triage\n";
    p.write("routing/teams.yaml", rules);
    let r = p.run(&["validate", "workflows/fb.yaml"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("unknown field `below`"), "{}", r.stderr);
    assert!(r.stderr.contains("routing/teams.yaml:7:"), "{}", r.stderr);

    let rules = "teams:\n  - name: A\n    when:\n      any:\n        - { field: text, regex: 'refund(' }\n        - { field: created_at, within: soon }\n  - name: Triage\n";
    p.write("routing/teams.yaml", rules);
    let r = p.run(&["validate", "workflows/fb.yaml"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("error: invalid regex `refund(`"), "{}", r.stderr);
    assert!(r.stderr.contains("routing/teams.yaml:5:33"), "{}", r.stderr);
    assert!(r.stderr.contains("routing/teams.yaml:6:40"), "{}", r.stderr);

    let rules = "teams:\n  - name: A\n    when:\n      any:\n        - { field: text, keywords: [refund, ' invoice'] }\n  - name: Triage\n";
    p.write("routing/teams.yaml", rules);
    let r = p.run(&["validate", "workflows/fb.yaml"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("error: keyword ` invoice` is empty or has spaces at its ends"), "{}", r.stderr);
    assert!(r.stderr.contains("routing/teams.yaml:5:"), "{}", r.stderr);

    p.write("routing/teams.yaml", "teams:\n  - name: A\n    when: { field: text, contains: x }\n");
    let r = p.run(&["validate", "workflows/fb.yaml"]);
    assert!(r.stderr.contains("`unmatched: Triage` names no team"), "{}", r.stderr);
    assert!(r.stderr.contains("workflows/fb.yaml:9:18"), "{}", r.stderr);
}

#[test]
fn records_missing_a_rule_field_are_errors_not_crashes() {
    let p = TestProject::new();
    p.write(
        "data/fb.json",
        r#"[{"id": "a", "text": "refund please", "rating": 1},
            {"id": "b", "rating": 2},
            {"id": "c", "text": "hello", "rating": "five"},
            {"id": "d", "text": "thanks", "rating": 5}]"#,
    );
    p.write(
        "workflows/j.yaml",
        r#"name: j
steps:
  - id: fb
    read_json: data/fb.json
  - id: routed
    route:
      input: fb
      unmatched: rest
      teams:
        - name: refunds
          when: { field: text, contains: refund }
          urgent: { field: rating, lte: 2 }
        - name: rest
  - id: export
    write_json: { from: routed, path: out/routed.json }
"#,
    );
    let r = p.run(&["run", "j"]);
    // The bad record fails, the others are routed: a partial run, as with any failed item.
    r.expect_code(1);
    assert!(r.stderr.contains("field `text` is missing"), "{}", r.stderr);
    assert!(r.stdout.contains("routed               partial       ok 3 failed 1"), "{}", r.stdout);
    assert!(r.stdout.contains("1 record(s) failed; `cxflow show 1 --json` has the step's error samples"), "{}", r.stdout);
    let out = routed(&p);
    assert_eq!(ids(&team(&out, "refunds")["urgent"]), ["a"]);
    // "five" is only read by the urgent rule of `refunds`, which `c` does not reach.
    assert_eq!(team(&out, "rest")["count"], 2);
    let summary: Value = serde_json::from_str(&p.query("SELECT output FROM steps WHERE step_id = 'routed'")[0]).unwrap();
    assert_eq!(summary["errors"], 1);
    assert_eq!(summary["error_samples"][0]["record"], "b");
}

/// The sample project with `app` serving the Billing team's webhook on 127.0.0.1. The listener
/// runs on the returned runtime; the test thread runs the binary and reads the run log.
fn project_with_billing_webhook(app: axum::Router) -> (TestProject, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await });
    let p = sample_project("");
    let rules = p.read("routing/teams.yaml").replace(
        "    email: [billing@example.com, finance-ops@example.com]\n",
        &format!("    email: [billing@example.com, finance-ops@example.com]\n    webhook: http://{addr}/hook/billing\n"),
    );
    p.write("routing/teams.yaml", &rules);
    (p, rt)
}

#[test]
fn webhook_receives_the_bucket() {
    use axum::{routing::post, Json, Router};
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = got.clone();
    let app = Router::new().route(
        "/hook/{team}",
        post(move |Json(body): Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let (p, rt) = project_with_billing_webhook(app);
    p.run(&["run", "fb"]).expect_code(0);
    let bodies = got.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "one POST, for the one team with a webhook");
    let b = &bodies[0];
    assert_eq!(b["text"], "*Billing*: 4 new pieces of feedback, average rating 2.5, CSAT 25%, 2 urgent");
    assert_eq!(b["bucket"]["count"], 4);
    assert_eq!(ids(&b["bucket"]["urgent"]), ["FB-1001", "FB-1012"]);
    assert!(b["bucket"].get("html").is_none() && b["bucket"]["team"].get("webhook").is_none());
    assert_eq!(team(&routed(&p), "Billing")["webhook"]["status"], "sent");
    assert_eq!(p.query("SELECT kind FROM artifacts WHERE kind = 'webhook'"), ["webhook"]);
    assert_eq!(p.query("SELECT state FROM ledger WHERE key LIKE 'route-webhook:%'"), ["sent"]);
    rt.shutdown_background();
}

#[test]
fn a_webhook_that_refuses_makes_the_run_partial_and_leaves_no_claim() {
    use axum::{http::StatusCode, routing::post, Router};
    let app = Router::new().route("/hook/{team}", post(|| async { (StatusCode::BAD_REQUEST, "no such channel") }));
    let (p, rt) = project_with_billing_webhook(app);
    // A digest that did not reach its team is not a green run.
    let r = p.run(&["run", "fb"]);
    r.expect_code(1);
    let out = routed(&p);
    let hook = &team(&out, "Billing")["webhook"];
    assert_eq!(hook["status"], "failed", "{hook}");
    assert!(hook["error"].as_str().unwrap().contains("400"), "{hook}");
    assert_eq!(p.query("SELECT count(*) FROM ledger WHERE key LIKE 'route-webhook:%'"), ["0"], "refused: released, not uncertain");
    rt.shutdown_background();
}

/// A receiver on 127.0.0.1 that keeps every body POSTed to it; returns its address.
fn keeping_receiver(rt: &tokio::runtime::Runtime, got: Arc<Mutex<Vec<Value>>>) -> std::net::SocketAddr {
    use axum::{routing::post, Json, Router};
    let app = Router::new().fallback(post(move |Json(body): Json<Value>| {
        let got = got.clone();
        async move {
            got.lock().unwrap().push(body);
            "ok"
        }
    }));
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await });
    addr
}

/// The Billing webhook answers 307 to another loopback receiver; `extra` goes after `webhook:`.
/// Returns the project, the two listeners' runtimes and what the redirect target received.
fn redirected_webhook(extra: &str) -> (TestProject, [tokio::runtime::Runtime; 2], Arc<Mutex<Vec<Value>>>) {
    use axum::{http::header::LOCATION, http::StatusCode, routing::post, Router};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let elsewhere = format!("http://{}/stolen", keeping_receiver(&rt, got.clone()));
    let app =
        Router::new().route("/hook/{team}", post(move || async move { (StatusCode::TEMPORARY_REDIRECT, [(LOCATION, elsewhere.clone())]) }));
    let (p, first) = project_with_billing_webhook(app);
    let rules = p.read("routing/teams.yaml").replace("/hook/billing\n", &format!("/hook/billing\n{extra}"));
    p.write("routing/teams.yaml", &rules);
    (p, [first, rt], got)
}

#[test]
fn a_webhook_redirect_is_not_followed_and_the_delivery_fails() {
    let (p, rts, got) = redirected_webhook("");
    p.run(&["run", "fb"]).expect_code(1);
    assert!(got.lock().unwrap().is_empty(), "the redirect target received the bucket");
    let out = routed(&p);
    let hook = &team(&out, "Billing")["webhook"];
    assert_eq!(hook["status"], "failed", "{hook}");
    let e = hook["error"].as_str().unwrap();
    assert!(e.contains("HTTP 307, a redirect, which is not followed") && e.contains("webhook_follow_redirects: true"), "{e}");
    assert!(!e.contains("/stolen"), "{e}");
    for rt in rts {
        rt.shutdown_background();
    }
}

#[test]
fn a_team_may_ask_for_its_webhook_redirects_to_be_followed() {
    let (p, rts, got) = redirected_webhook("    webhook_follow_redirects: true\n");
    p.run(&["run", "fb"]).expect_code(0);
    assert_eq!(got.lock().unwrap().len(), 1);
    assert_eq!(team(&routed(&p), "Billing")["webhook"]["status"], "sent");
    for rt in rts {
        rt.shutdown_background();
    }
}
