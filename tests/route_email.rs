//! The feedback-routing sample end to end: digests routed from the sample data arrive at a real
//! SMTP server on 127.0.0.1, one per team, with hostile feedback text escaped.

#[path = "support/smtp.rs"]
mod smtp;
mod support;

use smtp::SmtpSink;
use support::TestProject;

fn copy_sample(p: &TestProject) {
    p.copy_from_repo(support::ROUTING_SAMPLE);
}

#[test]
fn each_team_receives_its_digest_over_smtp_once() {
    let sink = SmtpSink::start();
    let p = TestProject::new();
    copy_sample(&p);
    let run = |args: &[&str]| support::Run::from(p.cxflow().env("CXFLOW_SMTP_URL", sink.url()).args(args).output().unwrap());
    run(&["run", "feedback-routing"]).expect_code(0);

    let msgs = sink.messages();
    let subjects: Vec<String> = msgs.iter().filter_map(|m| m.header("Subject")).collect();
    assert_eq!(msgs.len(), 5, "{subjects:?}");
    let billing = msgs.iter().find(|m| m.header("Subject").is_some_and(|s| s.starts_with("Billing: "))).expect("billing digest");
    let mut to = billing.to.clone();
    to.sort();
    assert_eq!(to, ["billing@example.com", "finance-ops@example.com"]);
    // Every routed record is in exactly one digest (first_match): the counts add up to the input.
    let total: usize =
        subjects.iter().map(|s| s.split(": ").nth(1).and_then(|n| n.split(' ').next()).unwrap().parse::<usize>().unwrap()).sum();
    let rows = std::fs::read_to_string(p.path().join("data/feedback.csv")).unwrap().lines().count() - 1;
    assert_eq!(total, rows);
    // The hostile review arrives as text in the HTML part, never as markup.
    let with_script = msgs.iter().find(|m| m.part("text/html").is_some_and(|h| h.contains("alert("))).expect("the hostile review");
    let html = with_script.part("text/html").unwrap();
    assert!(html.contains("&lt;script&gt;alert("), "{html}");
    assert!(!html.contains("<script>"), "{html}");
    assert!(with_script.part("text/plain").unwrap().contains("<script>alert('digest')</script>"));

    // A second run routes nothing new: no team gets a digest again for the same feedback.
    run(&["run", "feedback-routing"]).expect_code(0);
    assert_eq!(sink.count(), 5);
}
