//! The hostile-records corpus (`tests/hostile/`) through every step kind, end to end with the
//! real binary: each record either arrives literally on the other side (the command's argument,
//! the written file, the SMTP sink, the digest, the portal) or fails as one item whose error
//! names it, and the other records go through untouched. Nothing panics.

#[path = "support/smtp.rs"]
mod smtp;
mod support;

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use support::TestProject;

type Rec = Map<String, Value>;

/// A field of 1 MB, with markup at its end where a cut would hide it.
const BIG_ID: &str = "H11";
/// A CSV row whose `text` is Latin-1, not UTF-8.
const BAD_UTF8_ID: &str = "H12";

fn corpus() -> Vec<Rec> {
    let raw = std::fs::read_to_string(support::repo().join("tests/hostile/records.json")).unwrap();
    serde_json::from_str::<Vec<Value>>(&raw).unwrap().into_iter().map(|v| v.as_object().unwrap().clone()).collect()
}

fn big() -> Rec {
    let mut r = Rec::new();
    for (k, v) in [("id", BIG_ID), ("name", "Big Field"), ("email", "h11@example.org"), ("file", "")] {
        r.insert(k.into(), v.into());
    }
    r.insert("text".into(), format!("{}<script>x</script>", "x".repeat(1 << 20)).into());
    r
}

fn field<'a>(r: &'a Rec, k: &str) -> &'a str {
    r[k].as_str().unwrap()
}

/// The corpus and the 1 MB record as `data/hostile.csv`, then a row that is not UTF-8 (the
/// last: the CSV reader must fail that row alone), and as `data/hostile.json`.
fn write_sources(p: &TestProject) -> Vec<Rec> {
    let mut recs = corpus();
    recs.push(big());
    let cols = ["id", "name", "email", "text", "file"];
    let mut w = csv::Writer::from_writer(vec![]);
    w.write_record(cols).unwrap();
    for r in &recs {
        w.write_record(cols.map(|c| field(r, c))).unwrap();
    }
    let mut bytes = w.into_inner().unwrap();
    bytes.extend_from_slice(format!("{BAD_UTF8_ID},Bad Bytes,h12@example.org,").as_bytes());
    bytes.extend_from_slice(b"caf\xe9 cr\xe8me,\n");
    std::fs::create_dir_all(p.path().join("data")).unwrap();
    std::fs::write(p.path().join("data/hostile.csv"), bytes).unwrap();
    p.write("data/hostile.json", &serde_json::to_string(&recs).unwrap());
    recs
}

/// `step_id` → item key → (status, error).
fn items(p: &TestProject, step: &str) -> BTreeMap<String, (String, String)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", p.db().display())).await.unwrap();
        let rows: Vec<(String, String, Option<String>)> =
            sqlx::query_as("SELECT item_key, status, error FROM items WHERE step_id = ?1").bind(step).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows.into_iter().map(|(k, s, e)| (k, (s, e.unwrap_or_default()))).collect()
    })
}

#[track_caller]
fn ok_except(got: &BTreeMap<String, (String, String)>, recs: &[Rec], failing: &[&str]) {
    for r in recs {
        let id = field(r, "id");
        let (status, error) = got.get(id).unwrap_or_else(|| panic!("no item {id} in {got:?}"));
        let want = if failing.contains(&id) { "failed" } else { "ok" };
        assert_eq!(status, want, "{id}: {error}");
    }
}

fn written_json(p: &TestProject, rel: &str) -> Vec<Rec> {
    serde_json::from_str::<Vec<Value>>(&p.read(rel)).unwrap().into_iter().map(|v| v.as_object().unwrap().clone()).collect()
}

/// `step_id` → item key → output JSON.
fn outputs(p: &TestProject, step: &str) -> BTreeMap<String, Value> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", p.db().display())).await.unwrap();
        let rows: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT item_key, output FROM items WHERE step_id = ?1").bind(step).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows.into_iter().map(|(k, o)| (k, o.map(|o| serde_json::from_str(&o).unwrap()).unwrap_or(Value::Null))).collect()
    })
}

#[track_caller]
fn error_of<'a>(got: &'a BTreeMap<String, (String, String)>, key: &str) -> &'a str {
    let (status, error) = got.get(key).unwrap_or_else(|| panic!("no item {key} in {got:?}"));
    assert_eq!(status, "failed", "{key}");
    error
}

#[test]
fn csv_records_reach_a_command_as_one_literal_argument_each() {
    let p = TestProject::new();
    let recs = write_sources(&p);
    p.write(
        "workflows/hostile.yaml",
        r#"name: hostile
steps:
  - id: rows
    read_csv: data/hostile.csv
  - id: echo
    for_each: rows
    item_key: "{{item.id}}"
    command: [printf, "%s", "{{item.text}}"]
"#,
    );
    // Partial: the record that is not UTF-8, the NUL and the 1 MB field fail, each alone.
    p.run(&["run", "workflows/hostile.yaml"]).expect_code(1);
    let got = items(&p, "echo");
    ok_except(&got, &recs, &["H03", BAD_UTF8_ID, BIG_ID]);
    let out = outputs(&p, "echo");
    for r in recs.iter().filter(|r| got[field(r, "id")].0 == "ok") {
        let id = field(r, "id");
        assert_eq!(out[id]["stdout"].as_str(), Some(field(r, "text").trim()), "{id}: the program got another argument");
    }
    assert_eq!(
        error_of(&got, "H03"),
        "argument 2 of `printf` contains a NUL byte (from this record's data), which a program argument cannot hold; remove it from the data"
    );
    let big = error_of(&got, BIG_ID);
    assert!(big.starts_with("cannot start `printf`: its arguments are too long for the system (the longest is 1048594 bytes"), "{big}");
    assert!(!big.contains("check that it exists"), "{big}");
    // The bad row is an item of its own, named by file and line.
    let bad = got.iter().find(|(_, (_, e))| e.contains("not valid UTF-8")).map(|(_, (_, e))| e.as_str());
    assert_eq!(bad, Some("bad record: `./data/hostile.csv` line 17: this row is not valid UTF-8; save the file as UTF-8"));
}

#[test]
fn json_records_are_written_back_exactly() {
    let p = TestProject::new();
    let recs = write_sources(&p);
    p.write(
        "workflows/hostile.yaml",
        r#"name: hostile
steps:
  - id: rows
    read_json: data/hostile.json
  - id: out
    write_json: { from: rows, path: out/rows.json }
  - id: lines
    write_json: { from: rows, path: out/rows.jsonl, lines: true }
  - id: table
    write_csv: { from: rows, path: out/rows.csv }
"#,
    );
    p.run(&["run", "workflows/hostile.yaml"]).expect_code(0);
    assert_eq!(written_json(&p, "out/rows.json"), recs);
    let lines: Vec<Rec> = p.read("out/rows.jsonl").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines, recs);
    let mut rdr = csv::Reader::from_path(p.path().join("out/rows.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), recs.len());
    for (row, r) in rows.iter().zip(&recs) {
        assert_eq!(row.get(3), Some(field(r, "text")), "{}", field(r, "id"));
    }
}

/// A sink reading a source with one bad row: the row fails alone and the file holds the others
/// (today the whole write step fails and no file is written).
#[test]
#[ignore = "finding (issue 11, not yet fixed): write_csv/write_json stop at a source's first bad row instead of failing that row alone"]
fn a_bad_source_row_fails_alone_in_a_sink() {
    let p = TestProject::new();
    let recs = write_sources(&p);
    p.write(
        "workflows/hostile.yaml",
        "name: hostile\nsteps:\n  - id: rows\n    read_csv: data/hostile.csv\n  - id: out\n    write_json: { from: rows, path: out/rows.json }\n",
    );
    p.run(&["run", "workflows/hostile.yaml"]).expect_code(1);
    let ids: Vec<String> = written_json(&p, "out/rows.json").iter().map(|r| field(r, "id").to_string()).collect();
    assert_eq!(ids, recs.iter().map(|r| field(r, "id").to_string()).collect::<Vec<_>>());
}

fn email_project(recs_filter: &[&str]) -> (TestProject, Vec<Rec>) {
    let p = TestProject::new();
    let recs: Vec<Rec> =
        write_sources(&p).into_iter().filter(|r| recs_filter.is_empty() || recs_filter.contains(&field(r, "id"))).collect();
    p.write("data/mail.json", &serde_json::to_string(&recs).unwrap());
    p.write("templates/note.txt.hbs", "{{item.text}}");
    p.write("templates/note.html.hbs", "<p>{{item.text}}</p>");
    p.write("templates/partials/footer.hbs", "PARTIAL-FOOTER");
    p.write(
        "workflows/mail.yaml",
        r#"name: mail
secrets: [SMTP_PASSWORD]
steps:
  - id: rows
    read_json: data/mail.json
  - id: mail
    for_each: rows
    item_key: "{{item.id}}"
    send_email:
      to: "{{item.name}} <{{item.email}}>"
      from: "Acme <support@acme.example>"
      subject: "About {{item.id}}: {{item.name}}"
      template: note
"#,
    );
    (p, recs)
}

fn send(p: &TestProject, sink: &smtp::SmtpSink) -> support::Run {
    support::Run::from(
        p.cxflow().env("CXFLOW_SMTP_URL", sink.url()).env("SMTP_PASSWORD", "pw-s3cr3t-4711").args(["run", "mail"]).output().unwrap(),
    )
}

#[test]
fn send_email_delivers_record_text_literally_and_refuses_header_injection() {
    let sink = smtp::SmtpSink::start();
    let (p, recs) = email_project(&["H01", "H02", "H03", "H04", "H05", "H07", "H08", "H09", BIG_ID]);
    send(&p, &sink).expect_code(1);
    let got = items(&p, "mail");
    ok_except(&got, &recs, &["H02"]);
    let e = error_of(&got, "H02");
    assert!(e.contains("line break") && e.contains("header injection"), "{e}");
    let msgs = sink.messages();
    assert_eq!(msgs.len(), recs.len() - 1);
    for r in recs.iter().filter(|r| field(r, "id") != "H02") {
        let id = field(r, "id");
        let m = msgs.iter().find(|m| m.to == [field(r, "email")]).unwrap_or_else(|| panic!("{id} not delivered"));
        let text = field(r, "text").replace("\r\n", "\n");
        let part = m.part("text/plain").unwrap().replace("\r\n", "\n");
        assert_eq!(part, text, "{id}: the text part is not the record's text");
        let html = m.part("text/html").unwrap().replace("\r\n", "\n");
        assert!(!html.contains("<script>"), "{id}: {html}");
        assert!(!m.text().contains("pw-s3cr3t-4711") && !m.text().contains("PARTIAL-FOOTER"), "{id}: data was run as a template");
    }
    let h04 = msgs.iter().find(|m| m.to == ["h04@example.org"]).unwrap();
    assert!(h04.part("text/plain").unwrap().starts_with("{{secrets.SMTP_PASSWORD}} {{> footer}}"));
    assert!(msgs.iter().all(|m| m.to.len() == 1 && m.header("Bcc").is_none()), "an injected recipient got mail");
}

/// A comma in a display name is part of the name; a comma between two addresses in one field is
/// not a way to add a recipient.
#[test]
fn commas_in_names_and_addresses_add_no_recipient() {
    let sink = smtp::SmtpSink::start();
    let (p, recs) = email_project(&["H06", "H10"]);
    send(&p, &sink).expect_code(1);
    let got = items(&p, "mail");
    ok_except(&got, &recs, &["H10"]);
    assert!(error_of(&got, "H10").contains("h10@example.org, all@evil.test"), "{:?}", got["H10"]);
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1, "{:?}", msgs.iter().map(|m| &m.to).collect::<Vec<_>>());
    assert_eq!(msgs[0].to, ["h06@example.org"]);
    // The name is one encoded word (RFC 2047 for `Doe, Jane`), so its comma splits nothing.
    assert_eq!(msgs[0].header("To").unwrap(), "=?utf-8?b?RG9lLCBKYW5l?= <h06@example.org>");
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

#[test]
fn route_digests_show_record_text_as_text() {
    let p = TestProject::new();
    let recs = write_sources(&p);
    let repo = support::repo();
    for f in ["templates/feedback_digest.html.hbs", "templates/feedback_digest.txt.hbs"] {
        p.write(f, &std::fs::read_to_string(repo.join(f)).unwrap());
    }
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
    assert_eq!(p.query("SELECT count(*) FROM route_routed"), [recs.len().to_string()]);
    let routed = written_json(&p, "out/routed.json");
    let support = routed.iter().find(|t| t["team"]["name"] == "Support").expect("the Support team");
    assert_eq!(support["count"], recs.len());
    let html = p.read("out/digests/support.html");
    let md = p.read("out/digests/support.md");
    for r in &recs {
        let (id, mut text) = (field(r, "id"), field(r, "text").to_string());
        // docs/routing.md: a digest shows at most 1000 characters of a text.
        if text.chars().count() > 1000 {
            text = text.chars().take(1000).collect::<String>() + "…";
        }
        assert!(html.contains(&escape_html(&text)), "{id}: its text is not in the HTML digest as text");
        assert!(md.contains(id), "{id} is not in the Markdown digest");
    }
    assert!(!html.contains("<script>") && !html.contains("<img"), "markup from a record is live in the HTML digest");
    assert!(!md.contains("<script>"), "markup from a record is live in the Markdown digest");
}
