//! The hostile-records corpus (`tests/hostile/`) end to end with the real binary, through
//! sources (`read_csv`, `read_json`, `sql`), `command`, the file sinks and `send_email`: each record either arrives literally on
//! the other side (the program's argument, the written file, the SMTP sink) or fails as one item
//! whose error names it, and the other records go through untouched. Nothing panics.

#[path = "hostile/corpus.rs"]
mod corpus;
#[path = "support/smtp.rs"]
mod smtp;
mod support;

use corpus::*;
use support::TestProject;

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
    assert!(big.starts_with("cannot start `printf`: its arguments are too long for the system (the longest is 1000018 bytes"), "{big}");
    assert!(!big.contains("check that it exists"), "{big}");
    // The bad row is an item of its own, named by file and line.
    let bad = got.iter().find(|(_, (_, e))| e.contains("not valid UTF-8")).map(|(_, (_, e))| e.as_str());
    let csv = p.path().join("data/hostile.csv");
    let want = format!("bad record: `{}` line 17: this row is not valid UTF-8; save the file as UTF-8", csv.display());
    assert_eq!(bad, Some(want.as_str()));
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

/// The `sql` source over a SQLite table holding the corpus (and the 1 MB record): every value comes
/// back exactly, and a hostile value bound through `args` is data, never SQL.
#[test]
fn sql_rows_are_written_back_exactly_and_args_stay_data() {
    let p = TestProject::new();
    let recs = write_sources(&p);
    let db = p.path().join("data/hostile.sqlite");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&db).create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
        sqlx::query("CREATE TABLE recs (n INTEGER, id TEXT, name TEXT, email TEXT, text TEXT, file TEXT)").execute(&pool).await.unwrap();
        for (n, r) in recs.iter().enumerate() {
            let q = sqlx::query("INSERT INTO recs VALUES (?, ?, ?, ?, ?, ?)").bind(n as i64);
            let q = ["id", "name", "email", "text", "file"].iter().fold(q, |q, c| q.bind(field(r, c).to_string()));
            q.execute(&pool).await.unwrap();
        }
        pool.close().await;
    });
    p.write(
        "workflows/hostile.yaml",
        &format!(
            r#"name: hostile
params:
  skip: "x' AND 0 OR 'a'='b"
steps:
  - id: rows
    sql:
      url: "sqlite://{}"
      query: "SELECT id, name, email, text, file FROM recs WHERE id <> ?1 ORDER BY n"
      args: ["{{{{params.skip}}}}"]
  - id: out
    write_json: {{ from: rows, path: out/rows.json }}
"#,
            db.display()
        ),
    );
    p.run(&["run", "workflows/hostile.yaml"]).expect_code(0);
    assert_eq!(written_json(&p, "out/rows.json"), recs);
    // Bound, the injection-shaped value is a string no id equals, so every row came back (spliced,
    // `WHERE id <> 'x' AND 0 OR 'a'='b'` would have matched none); a real id leaves out that row.
    p.run(&["run", "workflows/hostile.yaml", "--var", &format!("skip={}", field(&recs[0], "id"))]).expect_code(0);
    assert_eq!(written_json(&p, "out/rows.json"), recs[1..].to_vec());
}

/// A sink reading a source with one bad row: the row fails alone (an item naming file and line,
/// as in a per-item step) and the file holds the others.
#[test]
fn a_bad_source_row_fails_alone_in_a_sink() {
    let p = TestProject::new();
    let recs = write_sources(&p);
    // The 1 MB record is over the default `max_record_bytes`: let it through, so the one bad row
    // is the one that is not UTF-8.
    p.write("cxflow.yaml", "max_record_bytes: 2097152\n");
    p.write(
        "workflows/hostile.yaml",
        "name: hostile\nsteps:\n  - id: rows\n    read_csv: data/hostile.csv\n  - id: out\n    write_json: { from: rows, path: out/rows.json }\n",
    );
    p.run(&["run", "workflows/hostile.yaml"]).expect_code(1);
    let ids: Vec<String> = written_json(&p, "out/rows.json").iter().map(|r| field(r, "id").to_string()).collect();
    assert_eq!(ids, recs.iter().map(|r| field(r, "id").to_string()).collect::<Vec<_>>());
    let bad = format!("#{}", recs.len() + 1);
    let got = items(&p, "out");
    assert_eq!(got.keys().collect::<Vec<_>>(), [&bad], "{got:?}");
    let csv = p.path().join("data/hostile.csv");
    assert_eq!(
        error_of(&got, &bad),
        format!("bad record: `{}` line 17: this row is not valid UTF-8; save the file as UTF-8", csv.display())
    );
    assert_eq!(
        p.query("SELECT status || ' ' || error FROM steps WHERE step_id = 'out'"),
        ["partial 1 item(s) failed; `cxflow show 1` lists them"]
    );
    assert_eq!(p.query("SELECT status FROM runs"), ["partial"]);
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

/// A header refused for a line break in a 1 MB field quotes 80 characters of it, escaped, in
/// the run log: not the megabyte, and not the escape sequence.
#[test]
fn a_refused_header_quotes_a_huge_field_cut_and_escaped() {
    let sink = smtp::SmtpSink::start();
    let (p, _) = email_project(&["H01"]);
    let subject = format!("Hi\r\nBcc: all@x.test \u{1b}[2J{}", "x".repeat(1_000_000));
    p.write("data/mail.json", &serde_json::json!([{"id": "H01", "name": subject, "email": "h01@example.org", "text": "t"}]).to_string());
    p.write(
        "workflows/mail.yaml",
        &p.read("workflows/mail.yaml")
            .replace("\"About {{item.id}}: {{item.name}}\"", "\"{{item.name}}\"")
            .replace("{{item.name}} <{{item.email}}>", "{{item.email}}"),
    );
    send(&p, &sink).expect_code(1);
    assert_eq!(
        error_of(&items(&p, "mail"), "H01"),
        format!(
            r#"`steps[1].send_email.subject` contains a line break ("Hi\r\nBcc: all@x.test \u{{1b}}[2J{}"… (1000024 bytes)); refusing to send (header injection): a header must be one line, remove the line break from the data"#,
            "x".repeat(56)
        )
    );
    assert!(sink.messages().is_empty());
}

/// NUL and terminal escapes in a record never reach the HTML part; the text part keeps the
/// record's text as written.
#[test]
fn control_characters_reach_no_html_part() {
    let sink = smtp::SmtpSink::start();
    let (p, recs) = email_project(&["H03", "H07"]);
    send(&p, &sink).expect_code(0);
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 2);
    for (id, html) in [("H03", "<p>beforeafter</p>"), ("H07", "<p>[2J]0;pwned[31mred[0m</p>")] {
        let r = recs.iter().find(|r| field(r, "id") == id).unwrap();
        let m = msgs.iter().find(|m| m.to == [field(r, "email")]).unwrap_or_else(|| panic!("{id} not delivered"));
        assert_eq!(m.part("text/html").unwrap().trim_end(), html, "{id}");
        assert_eq!(m.part("text/plain").unwrap().replace("\r\n", "\n"), field(r, "text"), "{id}");
    }
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

/// A `../` path in a record's data must not reach a file outside the project folder: the item
/// fails naming the path, and nothing is sent with it attached.
#[test]
fn a_dotdot_path_in_a_record_attaches_nothing_from_outside_the_project() {
    let sink = smtp::SmtpSink::start();
    let p = TestProject::new();
    std::fs::write(p.path().join("outside.txt"), "OUTSIDE-SECRET").unwrap();
    let recs: Vec<Rec> = corpus().into_iter().filter(|r| ["H05", "H09"].contains(&field(r, "id"))).collect();
    p.write("proj/data/mail.json", &serde_json::to_string(&recs).unwrap().replace(r#""file":"""#, r#""file":"note.txt""#));
    p.write("proj/attachments/note.txt", "a note");
    p.write("proj/templates/note.txt.hbs", "{{item.text}}");
    p.write(
        "proj/workflows/mail.yaml",
        "name: mail\nsteps:\n  - id: rows\n    read_json: data/mail.json\n  - id: mail\n    for_each: rows\n    item_key: \"{{item.id}}\"\n    send_email:\n      to: \"{{item.email}}\"\n      from: support@acme.example\n      subject: \"About {{item.id}}\"\n      template: note\n      attachments: [\"attachments/{{item.file}}\"]\n",
    );
    let out = p.cxflow().current_dir(p.path().join("proj")).env("CXFLOW_SMTP_URL", sink.url()).args(["run", "mail"]).output().unwrap();
    support::Run::from(out).expect_code(1);
    let got = items_at(&p.path().join("proj/cxflow.sqlite"), "mail");
    assert_eq!(got["H09"].0, "ok");
    let e = error_of(&got, "H05");
    assert!(e.contains("../../outside.txt") && e.contains("outside the project"), "{e}");
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1);
    assert!(msgs.iter().all(|m| !m.text().contains("OUTSIDE-SECRET") && !m.text().contains("T1VUU0lERS1TRUNSRVQ")));
}
