//! A record cannot reach outside the project (docs/security.md, "Records stay inside the
//! project"): paths rendered from records, addresses rendered from records, and the files the
//! runner writes. The real binary, a real SQLite run log and the SMTP sink on 127.0.0.1.

#[path = "support/smtp.rs"]
mod smtp;
mod support;

use smtp::SmtpSink;
use support::TestProject;

/// A project whose step `mail` sends one email per row of `data/rows.csv` (`id,email,file`);
/// `email_extra` goes under `send_email:`.
fn email_project(rows: &[[&str; 3]], email_extra: &str) -> TestProject {
    let p = TestProject::new();
    p.write("templates/note.txt.hbs", "Hello {{item.id}}");
    let mut csv = csv::Writer::from_writer(vec![]);
    csv.write_record(["id", "email", "file"]).unwrap();
    for r in rows {
        csv.write_record(r).unwrap();
    }
    p.write("data/rows.csv", &String::from_utf8(csv.into_inner().unwrap()).unwrap());
    p.write(
        "workflows/x.yaml",
        &format!(
            r#"name: notes
steps:
  - id: rows
    read_csv: data/rows.csv
  - id: mail
    for_each: rows
    item_key: "{{{{item.id}}}}"
    send_email:
      from: "Acme <support@acme.example>"
      subject: "Note {{{{item.id}}}}"
      template: note
{email_extra}"#
        ),
    );
    p
}

fn run(p: &TestProject, sink: &SmtpSink) -> support::Run {
    support::Run::from(p.cxflow().env("CXFLOW_SMTP_URL", sink.url()).args(["run", "x"]).output().unwrap())
}

fn error_of(p: &TestProject, key: &str) -> String {
    p.query(&format!("SELECT error FROM items WHERE step_id = 'mail' AND item_key = '{key}'")).remove(0)
}

#[test]
fn an_attachment_path_from_a_record_must_stay_inside_the_project_or_the_folder_the_workflow_names() {
    let sink = SmtpSink::start();
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("brochure.txt"), "brochure").unwrap();
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(secret.path().join("key.txt"), "do not send").unwrap();
    let key = secret.path().join("key.txt").to_string_lossy().into_owned();
    let rows = [
        ["in", "a@example.org", "receipts/a.txt"],
        ["up", "b@example.org", "../../../../../../etc/passwd"],
        ["abs", "c@example.org", &key],
        ["link", "d@example.org", "receipts/out/key.txt"],
    ];
    let p = email_project(&rows, "      to: \"{{item.email}}\"\n      attachments: [\"{{item.file}}\"]\n");
    p.write("receipts/a.txt", "receipt a");
    // A symlink inside the project that points out of it does not make its target "inside".
    std::os::unix::fs::symlink(secret.path(), p.path().join("receipts/out")).unwrap();
    run(&p, &sink).expect_code(1);
    let got = sink.messages();
    assert_eq!(got.iter().map(|m| m.to.join(",")).collect::<Vec<_>>(), ["a@example.org"]);
    assert_eq!(got[0].parts().iter().find(|x| x.filename.as_deref() == Some("a.txt")).unwrap().text(), "receipt a");
    let e = error_of(&p, "up");
    assert!(
        e.starts_with(
            "item `up`: refusing `send_email.attachments[0]`: path `../../../../../../etc/passwd` resolves to `/etc/passwd`, \
             outside the project folder `"
        ),
        "{e}"
    );
    assert!(e.contains("a path rendered from a template must stay inside the project folder"), "{e}");
    assert!(error_of(&p, "abs").contains("outside the project folder"));
    assert!(error_of(&p, "link").contains(&format!("resolves to `{}`", secret.path().canonicalize().unwrap().join("key.txt").display())));

    // A folder the workflow writes before the template is allowed, and nothing past it.
    let sink = SmtpSink::start();
    let rows = [["ok", "a@example.org", "brochure.txt"], ["escape", "b@example.org", "../x/../../etc/passwd"]];
    let extra = format!("      to: \"{{{{item.email}}}}\"\n      attachments: [\"{}/{{{{item.file}}}}\"]\n", shared.path().display());
    let p = email_project(&rows, &extra);
    run(&p, &sink).expect_code(1);
    let got = sink.messages();
    assert_eq!(got.iter().map(|m| m.to.join(",")).collect::<Vec<_>>(), ["a@example.org"]);
    let e = error_of(&p, "escape");
    assert!(e.contains(&format!("or inside `{}/`, the folder the template starts with", shared.path().display())), "{e}");
}

#[test]
fn a_rendered_output_path_that_leaves_the_project_fails_the_step_and_writes_nothing() {
    let p = TestProject::new();
    p.write("data/t.csv", "id\n1\n");
    p.write(
        "workflows/w.yaml",
        "name: w\nparams:\n  batch: b1\nsteps:\n  - id: t\n    read_csv: data/t.csv\n  - id: out\n    write_csv: { from: t, path: \"out/{{params.batch}}.csv\" }\n",
    );
    let outside = tempfile::tempdir().unwrap();
    let escape = format!("batch=../../../../../../..{}/x", outside.path().display());
    let r = p.run(&["run", "w", "--var", &escape]);
    r.expect_code(1);
    assert!(r.stdout.contains("step `out`: path `out/../../../../../../.."), "{}", r.stdout);
    assert!(r.stdout.contains("outside the project folder `"), "{}", r.stdout);
    assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none(), "nothing written outside the project");
    // Inside the project, the same template still writes.
    p.run(&["run", "w", "--var", "batch=b2"]).expect_code(0);
    assert_eq!(p.read("out/b2.csv"), "id\n1\n");
}

#[test]
fn a_comma_in_a_records_address_adds_no_recipient() {
    let sink = SmtpSink::start();
    let rows = [["ok", "ann@example.org", ""], ["two", "ann@example.org, evil@evil.test", ""], ["named", "Ann, Jr. <ann@example.org>", ""]];
    // A list the workflow writes itself may still hold several addresses, next to a rendered one.
    let p = email_project(&rows, "      to: \"{{item.email}}\"\n      bcc: \"audit@acme.example, desk@acme.example\"\n");
    run(&p, &sink).expect_code(1);
    let mut rcpts: Vec<Vec<String>> = sink.messages().into_iter().map(|m| m.to).collect();
    rcpts.sort();
    let want = vec!["ann@example.org".to_string(), "audit@acme.example".into(), "desk@acme.example".into()];
    assert_eq!(rcpts, [want.clone(), want], "RCPT lists");
    let tos: Vec<String> = sink.messages().iter().map(|m| m.header("To").unwrap()).collect();
    // The comma inside a display name stays part of the name (`Ann, Jr.`, encoded).
    assert!(tos.contains(&"=?utf-8?b?QW5uLCBKci4=?= <ann@example.org>".to_string()), "{tos:?}");
    let e = error_of(&p, "two");
    assert!(
        e.starts_with(
            "item `two`: `to` rendered `ann@example.org, evil@evil.test`, more than one address; an address rendered from a \
             template must be exactly one mailbox"
        ),
        "{e}"
    );
}
