//! The hostile-records corpus (`tests/hostile/`) through `route` (digests) and `browser` (the
//! demo portal), end to end: record text arrives as text, never as markup or a template.

mod browser_common;
#[path = "hostile/corpus.rs"]
mod corpus;
mod support;

use corpus::*;
use serde_json::Value;
use support::TestProject;

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

#[test]
fn route_digests_show_record_text_as_text() {
    let p = TestProject::new();
    let recs = write_sources(&p);
    p.copy_from_repo(&["templates/feedback_digest.html.hbs", "templates/feedback_digest.txt.hbs"]);
    let feedback: Vec<Value> = recs
        .iter()
        .map(|r| {
            serde_json::json!({"id": r["id"], "created_at": "2024-05-02T09:00:00Z", "channel": "email",
                "product_area": r["file"], "rating": 2, "customer": r["email"], "text": r["text"]})
        })
        .collect();
    p.write("data/feedback.json", &serde_json::to_string(&feedback).unwrap());
    p.write(
        "routing/all.yaml",
        "teams:\n  - name: Support\n    email: support@example.com\n    when: { field: rating, gte: 1 }\n    urgent: { field: rating, lte: 5 }\n",
    );
    p.write(
        "workflows/fb.yaml",
        r#"name: fb
steps:
  - id: feedback
    read_json: data/feedback.json
  - id: routed
    route:
      input: feedback
      rules: routing/all.yaml
      as_of: "2024-05-02T12:00:00Z"
      digest:
        out_dir: out/digests
        urgent_limit: 50
        sample_size: 3
  - id: export
    write_json: { from: routed, path: out/routed.json }
"#,
    );
    p.run(&["run", "fb"]).expect_code(0);
    assert_eq!(p.run(&["routed", "fb", "routed"]).stdout.lines().count(), recs.len());
    let routed = written_json(&p, "out/routed.json");
    let support = routed.iter().find(|t| t["team"]["name"] == "Support").expect("the Support team");
    assert_eq!(support["count"], recs.len());
    let html = p.read("out/digests/support.html");
    let md = p.read("out/digests/support.md");
    for r in &recs {
        let (id, mut text) = (field(r, "id"), field(r, "text").to_string());
        // docs/security.md: control characters other than tab and line ends never reach a digest.
        text.retain(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'));
        // docs/routing.md: a digest shows at most 1000 characters of a text.
        if text.chars().count() > 1000 {
            text = text.chars().take(1000).collect::<String>() + "…";
        }
        assert!(html.contains(&escape_html(&text)), "{id}: its text is not in the HTML digest as text");
        assert!(md.contains(id), "{id} is not in the Markdown digest");
    }
    assert!(!html.contains("<script>") && !html.contains("<img"), "markup from a record is live in the HTML digest");
    assert!(!md.contains("<script>"), "markup from a record is live in the Markdown digest");
    assert!(!html.contains('\0') && !md.contains('\0') && !md.contains('\x1b'), "a control character reached a digest");
}

/// The portal's comment box gets each text as it was: a textarea keeps markup, NUL, terminal
/// escapes and 1 MB (HTML turns its line breaks into CRLF on submission, which is not data).
#[test]
fn browser_fills_the_portal_with_record_text_literally() {
    let portal = browser_common::BgPortal::start(cxflow::demo_portal::PortalOptions::default());
    let p = TestProject::new();
    let recs = write_sources(&p);
    let rows: Vec<Value> = recs.iter().map(|r| serde_json::json!({"id": r["id"], "text": r["text"]})).collect();
    p.write("data/portal.json", &serde_json::to_string(&rows).unwrap());
    p.write(
        "workflows/portal.yaml",
        &format!(
            r##"name: portal
params:
  portal: {url}
secrets: [PORTAL_USER, PORTAL_PASSWORD]
steps:
  - id: rows
    read_json: data/portal.json
  - id: register
    for_each: rows
    item_key: "{{{{item.id}}}}"
    browser:
{login}      actions:
        - goto: "{{{{params.portal}}}}/returns/new"
        - fill: {{ "#order": "{{{{item.id}}}}", "#email": "{{{{lower item.id}}}}@example.org", "#comment": "{{{{item.text}}}}" }}
        - select: {{ "#reason": "damaged" }}
        - check: "#consent"
        - submit: "#submit"
        - wait_for: {{ selector: "#confirmation", timeout: 20s }}
"##,
            login = browser_common::LOGIN,
            url = portal.url
        ),
    );
    browser_common::cxflow(&p).args(["run", "portal"]).output().map(support::Run::from).unwrap().expect_code(0);
    let got = portal.records();
    assert_eq!(got.len(), recs.len(), "{:?}", got.iter().map(|r| &r.order).collect::<Vec<_>>());
    for r in &recs {
        let id = field(r, "id");
        let rec = got.iter().find(|g| g.order == id).unwrap_or_else(|| panic!("{id} not submitted"));
        let want = field(r, "text").replace("\r\n", "\n");
        assert!(
            rec.comment.replace("\r\n", "\n") == want,
            "{id}: the portal got another comment: {:?}",
            rec.comment.chars().take(200).collect::<String>()
        );
    }
}
