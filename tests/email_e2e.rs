//! send_email end to end: the real `cxflow` binary, a real SQLite run log, and a real SMTP
//! server (embedded sink) on 127.0.0.1.

#[path = "support/smtp.rs"]
mod smtp;
#[macro_use]
mod support;

use std::collections::HashMap;
use std::time::Duration;

use smtp::SmtpSink;
use support::backend::{Backend, LogProject};
use support::TestProject;

const HTML: &str = "{{> header}}<p>Hi {{item.name}},</p><p><a href=\"https://s.example.com/r?t={{item.ticket_id}}&s=5\">Rate ticket {{item.ticket_id}}</a></p>";
const TEXT: &str = "Hi {{item.name}},\nRate us: https://s.example.com/r?t={{item.ticket_id}}&s=5\n{{> footer}}";

fn project(rows: &[(String, String, String)], step_extra: &str, email_extra: &str) -> TestProject {
    let p = TestProject::new();
    p.write("templates/follow_up.html.hbs", HTML);
    p.write("templates/follow_up.txt.hbs", TEXT);
    p.write("templates/partials/header.html.hbs", "<h1>Acme & Co</h1>");
    p.write("templates/partials/footer.hbs", "-- Acme & Co");
    let mut csv = csv::Writer::from_writer(vec![]);
    csv.write_record(["ticket_id", "name", "email"]).unwrap();
    for (id, name, email) in rows {
        csv.write_record([id, name, email]).unwrap();
    }
    p.write("data/closed.csv", &String::from_utf8(csv.into_inner().unwrap()).unwrap());
    p.write(
        "workflows/x.yaml",
        &format!(
            r#"name: follow-up
steps:
  - id: closed
    read_csv: data/closed.csv
  - id: follow_up
    for_each: closed
    item_key: "{{{{item.ticket_id}}}}"
{step_extra}    send_email:
      to: "{{{{item.name}}}} <{{{{item.email}}}}>"
      from: "Acme Support <support@acme.example>"
      subject: "How did we do on ticket {{{{item.ticket_id}}}}?"
      template: follow_up
      idempotency_key: "follow-up/{{{{item.ticket_id}}}}"
{email_extra}"#
        ),
    );
    p
}

fn rows(n: usize) -> Vec<(String, String, String)> {
    (0..n).map(|i| (format!("T{i}"), format!("Customer {i}"), format!("c{i}@example.org"))).collect()
}

fn run_with(p: &TestProject, sink: &SmtpSink, args: &[&str]) -> support::Run {
    support::Run::from(p.cxflow().env("CXFLOW_SMTP_URL", sink.url()).args(args).output().unwrap())
}

fn show_json(p: &LogProject, run: &str) -> serde_json::Value {
    let r = p.run(&["show", run, "--json"]);
    r.expect_code(0);
    serde_json::from_str(&r.stdout).unwrap()
}

#[test]
fn batch_of_500_arrives_once_with_both_parts_and_a_second_run_sends_nothing() {
    let sink = SmtpSink::start();
    let p = project(&rows(500), "    concurrency: 16\n", "      headers: {X-Campaign: follow-up}\n");
    run_with(&p, &sink, &["run", "workflows/x.yaml"]).expect_code(0);
    let got = sink.messages();
    assert_eq!(got.len(), 500);
    let m = got.iter().find(|m| m.to == ["c42@example.org"]).expect("c42 got one");
    assert_eq!(m.from, "support@acme.example");
    assert_eq!(m.header("Subject").unwrap(), "How did we do on ticket T42?");
    assert_eq!(m.header("To").unwrap(), "\"Customer 42\" <c42@example.org>");
    assert_eq!(m.header("X-Campaign").unwrap(), "follow-up");
    assert_eq!(m.header("Message-ID").unwrap(), "<follow-up/T42.cxflow@acme.example>");
    assert!(m.header("Content-Type").unwrap().starts_with("multipart/alternative"));
    let parts = m.parts();
    assert_eq!(parts.len(), 2, "{parts:?}");
    // Text part: nothing escaped, `&` stays `&`. HTML part: the link's query string is intact.
    let text = m.part("text/plain").unwrap();
    assert_eq!(text, "Hi Customer 42,\nRate us: https://s.example.com/r?t=T42&s=5\n-- Acme & Co".replace('\n', "\r\n"));
    let html = m.part("text/html").unwrap();
    assert_eq!(html, "<h1>Acme & Co</h1><p>Hi Customer 42,</p><p><a href=\"https://s.example.com/r?t=T42&s=5\">Rate ticket T42</a></p>");
    let mut per_rcpt: HashMap<String, usize> = HashMap::new();
    for m in &got {
        *per_rcpt.entry(m.to[0].clone()).or_default() += 1;
    }
    assert!(per_rcpt.values().all(|&c| c == 1) && per_rcpt.len() == 500);
    assert_eq!(p.query("SELECT count(*) FROM ledger WHERE state = 'sent'"), ["500"]);

    run_with(&p, &sink, &["run", "workflows/x.yaml"]).expect_code(0);
    assert_eq!(sink.count(), 500, "second run must send nothing new");
    let skipped = p.query("SELECT count(*) FROM items WHERE run_id = 2 AND status = 'skipped' AND output LIKE '%already sent%'");
    assert_eq!(skipped, ["500"]);
    assert_eq!(p.query("SELECT ok, skipped FROM steps WHERE run_id = 2 AND step_id = 'follow_up'"), ["0|500"]);
}

#[test]
fn transient_4xx_is_retried_and_5xx_fails_one_item_with_the_servers_words() {
    let sink = SmtpSink::start();
    sink.fail_transient("c1@example.org", 1);
    sink.fail_permanent("c2@example.org", "5.1.1 <c2@example.org>: Recipient address rejected: mailbox gone");
    let p = project(&rows(5), "    retry: { attempts: 3, backoff: 10ms }\n", "");
    let r = run_with(&p, &sink, &["run", "workflows/x.yaml"]);
    assert_ne!(r.code, 0, "a failed item makes the run partial");
    assert_eq!(sink.count(), 4);
    assert_eq!(sink.messages().iter().filter(|m| m.to == ["c1@example.org"]).count(), 1);
    let rows = p.query("SELECT item_key, status, attempts, error FROM items WHERE step_id = 'follow_up' ORDER BY item_key");
    assert!(rows.contains(&"T1|ok|2|NULL".to_string()), "{rows:?}");
    let t2 = rows.iter().find(|r| r.starts_with("T2|")).unwrap();
    assert!(t2.starts_with("T2|failed|1|") && t2.contains("550") && t2.contains("mailbox gone"), "{t2}");
    // 5xx released the key: nothing is uncertain and a later run may try again.
    assert_eq!(p.query("SELECT count(*) FROM ledger WHERE key = 'follow-up/T2'"), ["0"]);
    let shown = p.run(&["show", "1"]);
    assert!(shown.stdout.contains("mailbox gone"), "{}", shown.stdout);
}

#[test]
fn malformed_address_and_crlf_in_a_name_fail_clearly_and_send_nothing() {
    let sink = SmtpSink::start();
    let mut r = rows(3);
    r[0].2 = "not-an-address".into();
    r[1].1 = "Eve\r\nBcc: everyone@example.org".into();
    let p = project(&r, "", "");
    run_with(&p, &sink, &["run", "workflows/x.yaml"]);
    assert_eq!(sink.count(), 1);
    assert_eq!(sink.messages()[0].to, ["c2@example.org"]);
    let errs = p.query("SELECT item_key, error FROM items WHERE status = 'failed' ORDER BY item_key");
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].contains("not a valid address") && errs[0].contains("not-an-address"), "{errs:?}");
    assert!(errs[1].contains("line break") && errs[1].contains("header injection"), "{errs:?}");
    assert_eq!(p.query("SELECT count(*) FROM ledger WHERE state = 'sending'"), ["0"]);
}

#[test]
fn missing_field_names_the_field() {
    let sink = SmtpSink::start();
    let p = project(&rows(1), "", "");
    p.write("templates/follow_up.txt.hbs", "Hi {{item.name}}, your {{item.product}}");
    // The CSV header is known before the run, so validation already names the field.
    let r = run_with(&p, &sink, &["run", "workflows/x.yaml"]);
    r.expect_code(2);
    assert!(r.stderr.contains("`item.product` is not a column of `data/closed.csv`"), "{}", r.stderr);
    assert_eq!(sink.count(), 0);
}

// On both run logs: what a kill leaves is the run log's to tell.
on_both!(sigkill_mid_batch_then_resume_delivers_each_key_once_except_uncertain);
fn sigkill_mid_batch_then_resume_delivers_each_key_once_except_uncertain(b: Backend) {
    let sink = SmtpSink::start();
    let n = 300;
    // Paced so the batch takes ~3 s and the kill lands in the middle of it.
    let p = LogProject::on(project(&rows(n), "    concurrency: 8\n", "      rate_limit: 100\n"), b);
    let mut child = p.cxflow().env("CXFLOW_SMTP_URL", sink.url()).args(["run", "workflows/x.yaml"]).spawn().unwrap();
    // Woken by the sink as each message arrives; the assertion below says if it never got there.
    sink.wait_for(60, Duration::from_secs(20));
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let before = sink.count();
    assert!(before >= 60 && before < n, "killed after {before} of {n}");

    let on = |args: &[&str]| support::Run::from(p.cxflow().env("CXFLOW_SMTP_URL", sink.url()).args(args).output().unwrap());
    let resumed = on(&["resume", "1"]);
    let v = show_json(&p, "1");
    let uncertain: Vec<String> = v["uncertain"].as_array().unwrap().iter().map(|u| u["key"].as_str().unwrap().to_string()).collect();
    assert!(uncertain.len() <= 8, "at most the in-flight items are uncertain: {uncertain:?}");
    // Uncertain is never green: the resume ends partial while any are left.
    resumed.expect_code(if uncertain.is_empty() { 0 } else { 1 });
    let mut per_key: HashMap<String, usize> = HashMap::new();
    for m in sink.messages() {
        let id = m.header("Subject").unwrap().trim_start_matches("How did we do on ticket ").trim_end_matches('?').to_string();
        *per_key.entry(format!("follow-up/{id}")).or_default() += 1;
    }
    for i in 0..n {
        let key = format!("follow-up/T{i}");
        let c = per_key.get(&key).copied().unwrap_or(0);
        if uncertain.contains(&key) {
            assert!(c <= 1, "{key} sent {c} times");
        } else {
            assert_eq!(c, 1, "{key} must be delivered exactly once");
        }
    }
    // Uncertain items are reported as such (failed, naming the decision to make), not resent.
    let reported =
        p.query("SELECT count(*) FROM items WHERE run_id = 1 AND status = 'failed' AND error LIKE 'uncertain: %cxflow resolve%'");
    assert_eq!(reported, [uncertain.len().to_string()]);

    let total = sink.count();
    on(&["run", "workflows/x.yaml"]).expect_code(if uncertain.is_empty() { 0 } else { 1 });
    assert_eq!(sink.count(), total, "a later run sends nothing new");
}

#[test]
fn sample_workflow_runs_on_defaults_and_fills_the_outbox() {
    let p = TestProject::new();
    p.copy_from_repo(support::FOLLOW_UP_SAMPLE);
    p.run(&["run", "workflows/ticket-follow-up.yaml"]).expect_code(0);
    let files: Vec<_> = std::fs::read_dir(p.path().join("outbox")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 5);
    assert_eq!(p.query("SELECT count(*) FROM artifacts WHERE kind = 'eml'"), ["5"]);
    let eml = std::fs::read_to_string(&files[0]).unwrap();
    assert!(eml.contains("multipart/alternative") && eml.contains("How did we do on ticket T-100"), "{eml}");
    p.run(&["run", "workflows/ticket-follow-up.yaml"]).expect_code(0);
    assert_eq!(std::fs::read_dir(p.path().join("outbox")).unwrap().count(), 5);
}

#[test]
fn cc_bcc_reply_to_and_templated_attachments() {
    let sink = SmtpSink::start();
    let p = project(
        &rows(2),
        "",
        "      cc: \"Team Lead <lead@acme.example>\"\n      bcc: [audit@acme.example]\n      reply_to: \"Help <help@acme.example>\"\n      attachments: [\"files/receipt-{{item.ticket_id}}.pdf\"]\n",
    );
    p.write("files/receipt-T0.pdf", "%PDF-1.4 receipt T0");
    p.write("files/receipt-T1.pdf", "%PDF-1.4 receipt T1");
    run_with(&p, &sink, &["run", "workflows/x.yaml"]).expect_code(0);
    let got = sink.messages();
    assert_eq!(got.len(), 2);
    let m = got.iter().find(|m| m.to.contains(&"c1@example.org".to_string())).unwrap();
    // Bcc is in the envelope only, never in the headers the customer sees.
    let mut env = m.to.clone();
    env.sort();
    assert_eq!(env, ["audit@acme.example", "c1@example.org", "lead@acme.example"]);
    assert!(m.header("Bcc").is_none());
    assert_eq!(m.header("Cc").unwrap(), "\"Team Lead\" <lead@acme.example>");
    assert_eq!(m.header("Reply-To").unwrap(), "Help <help@acme.example>");
    assert!(m.header("Content-Type").unwrap().starts_with("multipart/mixed"));
    let parts = m.parts();
    assert_eq!(parts.len(), 3, "{parts:?}");
    let pdf = parts.iter().find(|p| p.filename.as_deref() == Some("receipt-T1.pdf")).unwrap();
    assert_eq!(pdf.content_type, "application/pdf");
    assert_eq!(pdf.text(), "%PDF-1.4 receipt T1");
}

#[test]
fn validate_reports_template_problems_at_their_position() {
    let p = project(&rows(1), "", "");
    let wf = p
        .read("workflows/x.yaml")
        .replace("template: follow_up", "template: nope")
        .replace("subject: \"How did we do on ticket {{item.ticket_id}}?\"", "subject: \"How did we do on {{vars.ticket}}?\"");
    p.write("workflows/x.yaml", &wf);
    let r = p.run(&["validate", "workflows/x.yaml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("template `nope` not found"), "{}", r.stderr);
    assert!(r.stderr.contains("`vars.ticket` is never defined"), "{}", r.stderr);
    assert!(r.stderr.contains("x.yaml:11:16") && r.stderr.contains("x.yaml:12:17"), "{}", r.stderr);
}

#[test]
fn dry_run_renders_and_checks_but_sends_and_claims_nothing() {
    let sink = SmtpSink::start();
    let mut r = rows(3);
    r[2].2 = "broken".into();
    let p = project(&r, "", "");
    run_with(&p, &sink, &["run", "workflows/x.yaml", "--dry-run"]);
    assert_eq!(sink.count(), 0);
    assert_eq!(p.query("SELECT count(*) FROM ledger"), ["0"]);
    let out = p.query("SELECT item_key, status FROM items WHERE step_id = 'follow_up' ORDER BY item_key");
    assert_eq!(out, ["T0|ok", "T1|ok", "T2|failed"], "a bad address shows up in a dry run too");
}

/// Leave `key` as a crash would: claimed (`sending`) by a process that is gone, never confirmed.
fn make_uncertain(p: &TestProject, key: &str) {
    assert_eq!(p.execute(&format!("UPDATE ledger SET state = 'sending' WHERE key = '{key}'")), 1);
}

#[test]
fn a_person_resolves_uncertain_emails_and_the_resume_does_what_they_decided() {
    let sink = SmtpSink::start();
    let p = project(&rows(2), "", "");
    run_with(&p, &sink, &["run", "workflows/x.yaml"]).expect_code(0);
    assert_eq!(sink.count(), 2);
    // Run 1 "crashed" twice: after T1's message went out, and after claiming T2, which never went.
    let csv: String = rows(3).iter().map(|(id, name, email)| format!("{id},{name},{email}\n")).collect();
    p.write("data/closed.csv", &format!("ticket_id,name,email\n{csv}"));
    make_uncertain(&p, "follow-up/T1");
    p.execute(
        "INSERT INTO ledger (key, workflow, run_id, step_id, item_key, state, owner, updated_at)
               SELECT 'follow-up/T2', workflow, 1, step_id, 'T2', 'sending', owner, updated_at FROM ledger WHERE key = 'follow-up/T1'",
    );

    let r = run_with(&p, &sink, &["run", "workflows/x.yaml"]);
    r.expect_code(1);
    assert!(
        r.stdout.contains("uncertain: 2 item(s) may or may not have reached the other side:\n  follow_up T1\n  follow_up T2\n"),
        "{}",
        r.stdout
    );
    assert_eq!(sink.count(), 2, "nothing sent unasked");

    // Asked wrongly, the command says what to do.
    let bad = p.run(&["resolve", "1", "--as", "sent"]);
    bad.expect_code(2);
    assert!(bad.stderr.contains("name the items to resolve (`cxflow show 1` lists the uncertain ones), or pass `--all`"), "{}", bad.stderr);
    let bad = p.run(&["resolve", "1", "T9", "--as", "sent"]);
    bad.expect_code(2);
    assert!(bad.stderr.contains("run 1 has no uncertain delivery for item(s) `T9`"), "{}", bad.stderr);
    p.run(&["resolve", "1", "T0", "--as", "maybe"]).expect_code(2);

    // The operator looks at the mail server: T1 arrived, T2 did not.
    p.run(&["resolve", "1", "T1", "--as", "sent", "--by", "ana"]).expect_code(0);
    let r = p.run(&["resolve", "1", "--all", "--as", "not-sent", "--by", "ana"]);
    r.expect_code(0);
    assert!(r.stdout.contains("follow_up  T2  follow-up/T2  resolved as not-sent by ana"), "{}", r.stdout);
    assert!(r.stdout.contains("`cxflow resume 1` sends them"), "{}", r.stdout);

    let r = run_with(&p, &sink, &["resume", "2"]);
    r.expect_code(0);
    assert!(r.stdout.contains("run 2 of follow-up: succeeded"), "{}", r.stdout);
    let to = |a: &str| sink.messages().into_iter().filter(|m| m.to == [a]).count();
    assert_eq!((to("c0@example.org"), to("c1@example.org"), to("c2@example.org")), (1, 1, 1));
    assert_eq!(p.query("SELECT key, state FROM ledger ORDER BY key"), ["follow-up/T0|sent", "follow-up/T1|sent", "follow-up/T2|sent"]);
    assert_eq!(p.query("SELECT item_key, decision, decided_by FROM resolutions ORDER BY id"), ["T1|sent|ana", "T2|not-sent|ana"]);
    let shown = p.run(&["show", "1"]);
    assert!(shown.stdout.contains("resolved by hand:\n  T1 as sent by ana at "), "{}", shown.stdout);
}

#[test]
fn an_uncertain_key_is_skipped_by_default_and_resent_with_uncertain_resend() {
    let sink = SmtpSink::start();
    let p = project(&rows(2), "", "");
    run_with(&p, &sink, &["run", "workflows/x.yaml"]).expect_code(0);
    assert_eq!(sink.count(), 2);
    make_uncertain(&p, "follow-up/T1");

    // Default `uncertain: skip`: never risk a duplicate; nothing is sent, and the item fails as
    // uncertain, so the run is not green.
    let r = run_with(&p, &sink, &["run", "workflows/x.yaml"]);
    r.expect_code(1);
    assert!(r.stdout.contains("run 2 of follow-up: partial"), "{}", r.stdout);
    assert!(r.stdout.contains("uncertain: 1 item(s) may or may not have reached the other side:\n  follow_up T1\n"), "{}", r.stdout);
    assert_eq!(sink.count(), 2);
    let out = p.query("SELECT status, error FROM items WHERE run_id = 2 AND item_key = 'T1'");
    assert!(out[0].starts_with("failed|uncertain: run 1 stopped while sending `follow-up/T1`"), "{out:?}");

    // `uncertain: resend`: never risk a missing email; it goes out again and is then sent.
    let wf = p.read("workflows/x.yaml") + "      uncertain: resend\n";
    p.write("workflows/x.yaml", &wf);
    run_with(&p, &sink, &["run", "workflows/x.yaml"]).expect_code(0);
    let to_t1: Vec<_> = sink.messages().into_iter().filter(|m| m.to == ["c1@example.org"]).collect();
    assert_eq!(to_t1.len(), 2, "resent once");
    assert_eq!(sink.count(), 3, "T0 was not resent");
    assert_eq!(p.query("SELECT state FROM ledger WHERE key = 'follow-up/T1'"), ["sent"]);
}

#[test]
fn a_secret_given_to_a_helper_never_reaches_the_debug_log() {
    // Handlebars' own debug log prints a helper's parameters with their values; with
    // CXFLOW_LOG=debug that would put the secret in the journal.
    let sink = SmtpSink::start();
    let p = project(&rows(1), "", "      headers: {X-Ref: \"{{upper secrets.REF_TOKEN}}\"}\n");
    let wf = p.read("workflows/x.yaml").replacen("steps:", "secrets: [REF_TOKEN]\nsteps:", 1);
    p.write("workflows/x.yaml", &wf);
    let out = p
        .cxflow()
        .env("CXFLOW_SMTP_URL", sink.url())
        .env("CXFLOW_LOG", "debug")
        .env("REF_TOKEN", "hunter2-ref")
        .args(["run", "workflows/x.yaml"])
        .output()
        .unwrap();
    let r = support::Run::from(out);
    r.expect_code(0);
    assert_eq!(sink.messages()[0].header("X-Ref").unwrap(), "HUNTER2-REF");
    assert!(r.stderr.contains("DEBUG"), "debug logging is on: {}", r.stderr);
    assert!(!r.stderr.to_lowercase().contains("hunter2-ref"), "{}", r.stderr);
}

#[test]
fn a_csv_still_being_written_is_read_to_its_last_complete_line() {
    let sink = SmtpSink::start();
    let p = project(&rows(1), "", "");
    // The export is halfway through its last line.
    p.write("data/closed.csv", "ticket_id,name,email\nT0,Customer 0,c0@example.org\nT1,Customer 1,c1@exa");
    let r = run_with(&p, &sink, &["run", "workflows/x.yaml"]);
    r.expect_code(1);
    assert_eq!(sink.messages().iter().map(|m| m.to.clone()).collect::<Vec<_>>(), [vec!["c0@example.org".to_string()]]);
    let failed = p.query("SELECT error FROM items WHERE status = 'failed'");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("closed.csv` line 3: this last line has no line end, so the file may still be being written"), "{failed:?}");
    // The export finishes; the resume sends the completed record, once.
    p.write("data/closed.csv", "ticket_id,name,email\nT0,Customer 0,c0@example.org\nT1,Customer 1,c1@example.org\n");
    run_with(&p, &sink, &["resume", "1"]).expect_code(0);
    let to: Vec<Vec<String>> = sink.messages().iter().map(|m| m.to.clone()).collect();
    assert_eq!(to, [vec!["c0@example.org".to_string()], vec!["c1@example.org".to_string()]]);
}
