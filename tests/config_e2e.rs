//! `cxflow.yaml` end to end: the real binary reports its mistakes like workflow errors (file,
//! line, column, caret) and exits 2, names the variable when a `CXFLOW_*` override is wrong,
//! and never prints a password written into `smtp_url`.

mod support;

use support::{Run, TestProject};

const PASSWORD: &str = "pa55word-x7";

fn project() -> TestProject {
    let p = TestProject::new();
    p.write("data/tickets.csv", "id,email\nT1,a@example.org\n");
    p.write("workflows/good.yaml", "name: good\nsteps:\n  - id: t\n    read_csv: data/tickets.csv\n");
    p
}

#[test]
fn validate_reports_a_bad_key_at_its_position_and_exits_2() {
    let p = project();
    p.write("cxflow.yaml", "smtp_from: Care <care@example.com>\nshutdown_grace: soon\nsmtp_pool_size: 0\n");
    let r = p.run(&["validate"]);
    r.expect_code(2);
    assert_eq!(
        r.stderr,
        "error: `shutdown_grace`: `soon` is not a duration (expected number at 0)\n  --> cxflow.yaml:2:17\n  |\n2 | shutdown_grace: soon\n  |                 ^\n  = help: write it like `30s`, `5m` or `1h 30m`\n\n\
         error: `smtp_pool_size`: must be at least 1 connection, not `0`\n  --> cxflow.yaml:3:17\n  |\n3 | smtp_pool_size: 0\n  |                 ^\n  = help: remove it for the default of 8 connections\n"
    );
    assert_eq!(r.stdout, "");
    // An unknown key, like an unknown workflow key, with a suggestion.
    p.write("cxflow.yaml", "prune_corn: '@daily'\n");
    let r = p.run(&["validate"]);
    r.expect_code(2);
    assert_eq!(r.stderr, "error: unknown field `prune_corn`\n  --> cxflow.yaml:1:1\n  |\n1 | prune_corn: '@daily'\n  | ^\n  = help: did you mean `prune_cron`?\n");
    p.write("cxflow.yaml", "prune_cron: '@daily'\n");
    p.run(&["validate"]).expect_code(0);
}

#[test]
fn a_bad_override_names_the_variable() {
    let p = project();
    p.write("cxflow.yaml", "prune_cron: '@daily'\n");
    let r = Run::from(p.cxflow().env("CXFLOW_PRUNE_CRON", "61 3 * * *").args(["validate"]).output().unwrap());
    r.expect_code(2);
    assert!(r.stderr.starts_with("error: `CXFLOW_PRUNE_CRON`: "), "{}", r.stderr);
    assert!(
        r.stderr.contains("  --> (environment):1:19\n  |\n1 | CXFLOW_PRUNE_CRON=61 3 * * *\n  |                   ^\n"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(", or unset CXFLOW_PRUNE_CRON"), "{}", r.stderr);
    assert!(!r.stderr.contains("cxflow.yaml"), "{}", r.stderr);
    let r = Run::from(p.cxflow().env("CXFLOW_SMTP_POOL_SIZE", "lots").args(["run", "good"]).output().unwrap());
    r.expect_code(2);
    assert!(
        r.stderr.starts_with("error: invalid type: string \"lots\", expected a whole number in `CXFLOW_SMTP_POOL_SIZE`\n"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_password_in_smtp_url_never_appears_in_the_output() {
    let p = project();
    let url = format!("smtp://bot:{PASSWORD}@127.0.0.1:1");
    // A wrong type, a bad value in the file and in the environment: each quotes the line.
    for yaml in [format!("smtp_url: [{url}]\n"), format!("smtp_url: {url}?tls=maybe\n"), format!("smtp_pool_size: {url}\n")] {
        p.write("cxflow.yaml", &yaml);
        let r = p.run(&["validate"]);
        r.expect_code(2);
        assert!(r.stderr.contains("smtp://bot:***@127.0.0.1:1"), "{}", r.stderr);
        assert!(!r.stderr.contains(PASSWORD) && !r.stdout.contains(PASSWORD), "{yaml}: {}", r.stderr);
    }
    // Written unencoded, a `/`, `?` or `#` would end the password for a URL parser; the mask
    // hides it whole all the same.
    for pw in ["pa55/word-x7", "pa55?word-x7", "pa55#word-x7"] {
        p.write("cxflow.yaml", &format!("smtp_url: [smtp://bot:{pw}@127.0.0.1:1]\n"));
        let r = p.run(&["validate"]);
        r.expect_code(2);
        assert!(r.stderr.contains("1 | smtp_url: [smtp://bot:***@127.0.0.1:1]\n"), "{}", r.stderr);
        assert!(!r.stderr.contains("word-x7") && !r.stdout.contains("word-x7"), "{pw}: {}", r.stderr);
    }
    std::fs::remove_file(p.path().join("cxflow.yaml")).unwrap();
    let r = Run::from(p.cxflow().env("CXFLOW_SMTP_URL", format!("{url}?pool=2")).args(["validate"]).output().unwrap());
    r.expect_code(2);
    assert!(r.stderr.contains("CXFLOW_SMTP_URL=smtp://bot:***@127.0.0.1:1?pool=2"), "{}", r.stderr);
    assert!(!r.stderr.contains(PASSWORD), "{}", r.stderr);

    // A valid URL whose server is not there: the run stops before its first email, and neither
    // its output nor the run log holds the password.
    p.write("templates/note.txt.hbs", "Hello {{item.id}}");
    p.write(
        "workflows/mail.yaml",
        "name: mail\nsteps:\n  - id: t\n    read_csv: data/tickets.csv\n  - id: m\n    for_each: t\n    item_key: \"{{item.id}}\"\n    send_email:\n      to: \"{{item.email}}\"\n      subject: hi\n      template: note\n",
    );
    p.write("cxflow.yaml", &format!("smtp_url: {url}?tls=none\n"));
    let r = p.run(&["run", "mail"]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains(PASSWORD) && !r.stdout.contains(PASSWORD), "{}\n{}", r.stdout, r.stderr);
    let show = p.run(&["runs", "--json"]);
    assert!(!show.stdout.contains(PASSWORD), "{}", show.stdout);
}
