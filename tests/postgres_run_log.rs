//! The run log on PostgreSQL, end to end: the README's sample workflows run unchanged with
//! `CXFLOW_DATABASE_URL=postgres://…` (a throwaway server on loopback, a database per test),
//! checked from the other side: rows in PostgreSQL, mail at a real SMTP server, records at the
//! demo portal, files on disk, and no SQLite file anywhere.

mod browser_common;
#[path = "support/smtp.rs"]
mod smtp;
mod support;

use std::time::Duration;

use smtp::SmtpSink;
use support::pg_log::PgLog;
use support::serve::Serve;
use support::TestProject;

/// A project holding the repository's `files`, as they ship.
fn sample(files: &[&str]) -> TestProject {
    let p = TestProject::new();
    p.copy_from_repo(files);
    p
}

/// Nothing was written to SQLite: the default run log file was never created.
#[track_caller]
fn no_sqlite_file(p: &TestProject) {
    let files: Vec<_> = support::files_under(p.path()).into_iter().filter(|f| f.to_string_lossy().contains(".sqlite")).collect();
    assert!(files.is_empty(), "{files:?}");
}

#[test]
fn closed_tickets_export_runs_and_is_logged_in_postgres() {
    let pg = PgLog::fresh();
    let p = sample(support::EXPORT_SAMPLE);
    let r = pg.run(&p, &["run", "closed-tickets-export", "--var", "batch=weekly"]);
    r.expect_code(0);
    assert!(r.stdout.starts_with("run 1 of closed-tickets-export: succeeded"), "{}", r.stdout);
    let csv = p.read("out/stamped-weekly.csv");
    assert_eq!(csv.lines().next(), Some("ticket_id,owner,batch"));
    assert!(csv.contains("T-1003,SAM,weekly"), "{csv}");
    assert_eq!(csv.lines().count(), 6);
    let json: serde_json::Value = serde_json::from_str(&p.read("out/closed-tickets.json")).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 5);

    assert_eq!(pg.query("SELECT status, trigger, params FROM runs"), ["succeeded|manual|{\"batch\":\"weekly\"}"]);
    assert_eq!(pg.query("SELECT count(*) FROM items WHERE step_id = 'stamped' AND status = 'ok'"), ["5"]);
    assert_eq!(
        pg.query("SELECT step_id, status, ok FROM steps ORDER BY position"),
        ["closed|succeeded|0", "stamped|succeeded|5", "export_json|succeeded|5", "export_csv|succeeded|5"]
    );
    assert_eq!(pg.query("SELECT kind FROM artifacts ORDER BY id"), ["json", "csv"]);
    let out = pg.query("SELECT output FROM items WHERE item_key = 'T-1003'");
    assert_eq!(out, [r#"{"ticket_id":"T-1003","owner":"SAM","batch":"weekly"}"#]);

    // The commands that read the run log read PostgreSQL.
    let show = pg.run(&p, &["show", "1", "--json"]);
    show.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(v["run"]["status"], "succeeded");
    assert_eq!(v["steps"].as_array().unwrap().len(), 4);
    let runs = pg.run(&p, &["runs", "--status", "succeeded"]);
    runs.expect_code(0);
    assert!(runs.stdout.contains("closed-tickets-export"), "{}", runs.stdout);

    // A second run is run 2, from PostgreSQL's sequence.
    let r = pg.run(&p, &["run", "closed-tickets-export"]);
    r.expect_code(0);
    assert!(r.stdout.starts_with("run 2 of closed-tickets-export: succeeded"), "{}", r.stdout);
    assert!(p.read("out/stamped-nightly.csv").contains("T-1003,SAM,nightly"));
    no_sqlite_file(&p);
}

#[test]
fn ticket_follow_up_mails_each_customer_once() {
    let sink = SmtpSink::start();
    let pg = PgLog::fresh();
    let p = sample(support::FOLLOW_UP_SAMPLE);
    let run = |args: &[&str]| support::Run::from(pg.cxflow(&p).env("CXFLOW_SMTP_URL", sink.url()).args(args).output().unwrap());
    run(&["run", "ticket-follow-up"]).expect_code(0);
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 5);
    let mut tickets: Vec<String> = msgs.iter().filter_map(|m| m.header("X-Ticket-Id")).collect();
    tickets.sort();
    assert_eq!(tickets, ["T-1001", "T-1002", "T-1003", "T-1004", "T-1005"]);
    assert!(msgs.iter().all(|m| m.text().contains("multipart/alternative")));
    assert_eq!(pg.query("SELECT count(*) FROM ledger WHERE state = 'sent' AND run_id = 1"), ["5"]);
    assert_eq!(pg.query("SELECT key FROM ledger WHERE item_key = 'T-1003'"), ["follow-up/T-1003"]);
    assert_eq!(pg.query("SELECT count(*) FROM items WHERE run_id = 1 AND status = 'ok'"), ["5"]);

    // Run again: the ledger in PostgreSQL remembers every key, nothing is sent twice.
    run(&["run", "ticket-follow-up"]).expect_code(0);
    assert_eq!(sink.count(), 5);
    assert_eq!(pg.query("SELECT id, status FROM runs ORDER BY id"), ["1|succeeded", "2|succeeded"]);
    assert_eq!(pg.query("SELECT count(*) FROM ledger"), ["5"]);
    no_sqlite_file(&p);
}

#[test]
fn feedback_routing_routes_and_mails_each_team_once() {
    let sink = SmtpSink::start();
    let pg = PgLog::fresh();
    let p = sample(support::ROUTING_SAMPLE);
    let run = |args: &[&str]| support::Run::from(pg.cxflow(&p).env("CXFLOW_SMTP_URL", sink.url()).args(args).output().unwrap());
    run(&["run", "feedback-routing"]).expect_code(0);

    let msgs = sink.messages();
    assert_eq!(msgs.len(), 5);
    let rows = p.read("data/feedback.csv").lines().count() - 1;
    let total: usize = msgs
        .iter()
        .filter_map(|m| m.header("Subject"))
        .map(|s| s.split(": ").nth(1).and_then(|n| n.split(' ').next()).unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(total, rows, "every piece of feedback is in exactly one digest");
    assert!(p.read("out/digests/trust-safety.md").starts_with("# Trust & Safety: 2 new pieces of feedback"));
    let routed: serde_json::Value = serde_json::from_str(&p.read("out/routed-feedback.json")).unwrap();
    assert!(!routed.as_array().unwrap().is_empty());

    // The routing state and the digests' figures are in PostgreSQL.
    assert_eq!(pg.query("SELECT count(*) FROM route_routed"), [rows.to_string()]);
    assert_eq!(pg.query("SELECT count(DISTINCT run_id) FROM route_routed_ids"), ["1"]);
    let billing = pg.query("SELECT team, count, urgent, avg_rating FROM route_digests WHERE team = 'Billing'");
    assert_eq!(billing, ["Billing|4|2|2.5"]);
    assert_eq!(pg.query("SELECT count(*) FROM ledger WHERE state = 'sent'"), ["5"]);
    assert_eq!(pg.query("SELECT count(*) FROM artifacts WHERE kind = 'digest'"), ["10"]);

    // A second run routes nothing new, so no team is mailed again.
    run(&["run", "feedback-routing"]).expect_code(0);
    assert_eq!(sink.count(), 5);
    assert_eq!(pg.query("SELECT count(*) FROM route_routed"), [rows.to_string()]);
    assert_eq!(pg.query("SELECT status FROM runs ORDER BY id"), ["succeeded", "succeeded"]);
    no_sqlite_file(&p);
}

#[test]
fn portal_returns_fills_each_record_once() {
    use browser_common::{duplicates, BgPortal, PASSWORD, USER};
    let portal = BgPortal::start(cxflow::demo_portal::PortalOptions::default());
    let pg = PgLog::fresh();
    let p = sample(&["workflows/portal-returns.yaml", "data/returns.csv"]);
    let url = format!("portal_url={}", portal.url);
    let run = || {
        support::Run::from(
            pg.cxflow(&p)
                .env("PORTAL_USER", USER)
                .env("PORTAL_PASSWORD", PASSWORD)
                .args(["run", "portal-returns", "--var", &url])
                .output()
                .unwrap(),
        )
    };
    run().expect_code(0);
    let n = p.read("data/returns.csv").lines().count() - 1;
    let recs = portal.records();
    assert_eq!(recs.len(), n, "{recs:#?}");
    assert!(duplicates(&recs).is_empty());
    assert_eq!(pg.query("SELECT count(*) FROM ledger WHERE state = 'sent'"), [n.to_string()]);
    // Each item keeps the portal's confirmation number.
    for row in pg.query("SELECT item_key, output FROM items WHERE step_id = 'register_returns' ORDER BY seq") {
        let (key, output) = row.split_once('|').unwrap();
        let rec = recs.iter().find(|r| r.order == key).unwrap_or_else(|| panic!("{key} not at the portal"));
        assert_eq!(output, format!(r#"{{"confirmation_id":"{}"}}"#, rec.confirmation_id));
    }

    // Again: every record is known as submitted, the portal gets nothing new.
    run().expect_code(0);
    assert_eq!(portal.records().len(), n);
    no_sqlite_file(&p);
}

const TICK: &str = r#"name: tick
schedule:
  cron: "* * * * * *"
  overlap: skip
steps:
  - id: hello
    command: [sh, -c, "echo fired >> fired.txt"]
"#;

/// The dashboard's address as `serve` prints it.
fn dashboard(logs: &support::serve::Logs) -> String {
    support::wait_for_some(Duration::from_secs(30), "serve prints the dashboard's address", || {
        logs.text().lines().find_map(|l| l.strip_prefix("dashboard: ")).map(|u| u.trim_end_matches('/').to_string())
    })
}

fn get(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let r = reqwest::get(url).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

#[test]
fn serve_schedules_on_postgres_serves_the_dashboard_beside_a_second_node() {
    let pg = PgLog::fresh();
    let p = TestProject::new();
    p.write("workflows/tick.yaml", TICK);
    p.write("cxflow.yaml", "shutdown_grace: 2s\n");
    let (mut serve, logs) = Serve::start(pg.cxflow(&p));
    let url = dashboard(&logs);

    pg.wait_for_rows(
        Duration::from_secs(30),
        "a scheduled run that succeeded",
        "SELECT id FROM runs WHERE trigger = 'schedule' AND status = 'succeeded'",
    );
    assert!(p.read("fired.txt").starts_with("fired\n"));
    let (status, page) = get(&format!("{url}/"));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("tick"), "{page}");
    let (status, metrics) = get(&format!("{url}/metrics"));
    assert_eq!(status, 200, "{metrics}");
    assert!(metrics.contains("cxflow_run_log_up 1"), "{metrics}");
    assert!(metrics.contains(r#"cxflow_runs{workflow="tick",status="succeeded"}"#), "{metrics}");

    // Several serve nodes share one run log on PostgreSQL (`tests/serve_nodes.rs`): a second
    // one starts beside it.
    let (mut second, second_logs) = Serve::start(pg.cxflow(&p));
    dashboard(&second_logs);

    for s in [&serve, &second] {
        s.sigterm();
    }
    for (s, l) in [(&mut serve, &logs), (&mut second, &second_logs)] {
        let status = support::wait_for_some(Duration::from_secs(30), "serve to stop after SIGTERM", || s.0.try_wait().unwrap());
        assert_eq!(status.code(), Some(0), "{}", l.text());
    }
    assert!(pg.query("SELECT id FROM runs WHERE status = 'running'").is_empty());
    assert!(pg.query("SELECT scheduled_for FROM runs WHERE trigger = 'schedule' GROUP BY scheduled_for HAVING count(*) > 1").is_empty());
    no_sqlite_file(&p);
}

/// The lock `migrate-log` holds while it copies, taken by the test itself: `serve` is refused
/// before it touches anything, naming the session that holds it.
#[test]
fn serve_is_refused_while_migrate_log_holds_the_scheduler_lock() {
    use sqlx::Connection;
    let pg = PgLog::fresh();
    let p = TestProject::new();
    p.write("workflows/tick.yaml", TICK);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let holder = rt.block_on(async {
        let mut c = sqlx::PgConnection::connect(&pg.url).await.unwrap();
        // 0x6378666c6f77, `cxflow` in ASCII: the key `store::scheduler_lock` takes.
        sqlx::query("SELECT pg_advisory_lock(109368765607799)").execute(&mut c).await.unwrap();
        c
    });
    let r = pg.run(&p, &["serve"]);
    r.expect_code(2);
    assert!(r.stderr.contains(&format!("`cxflow migrate-log` is copying into the run log `{}`", pg.url)), "{}", r.stderr);
    assert!(
        r.stderr.contains("its scheduler lock is held by PostgreSQL session ") && r.stderr.contains(" from 127.0.0.1 since "),
        "{}",
        r.stderr
    );
    assert!(!p.path().join("fired.txt").exists());
    rt.block_on(holder.close()).unwrap();
}

#[test]
fn commands_that_manage_runs_work_on_postgres() {
    let pg = PgLog::fresh();
    let p = support::script_project("id", (1..=3).map(|i| format!("r{i}")));
    p.write(
        "workflows/tick.yaml",
        "name: tick\nschedule:\n  cron: \"0 3 * * *\"\nsteps:\n  - id: records\n    read_csv: data/records.csv\n",
    );
    p.write(
        "workflows/w.yaml",
        "name: w\nsteps:\n  - id: records\n    read_csv: data/records.csv\n  - id: act\n    for_each: records\n    item_key: \"{{item.id}}\"\n    command: [python3, script.py, \"{{item.id}}\", \"{{#if (eq item.id 'r2')}}fail{{else}}ok{{/if}}\"]\n",
    );
    // A partial run, resumed once the item is fixed.
    pg.run(&p, &["run", "w"]).expect_code(1);
    assert_eq!(pg.query("SELECT status FROM runs WHERE id = 1"), ["partial"]);
    p.write("workflows/w.yaml", &p.read("workflows/w.yaml").replace("'r2'", "'none'"));
    pg.run(&p, &["resume", "1"]).expect_code(0);
    assert_eq!(pg.query("SELECT status, resumes FROM runs WHERE id = 1"), ["succeeded|1"]);

    // Pause and unpause, seen by `next`, recorded as actions.
    pg.run(&p, &["pause", "tick", "--reason", "migration", "--by", "ana"]).expect_code(0);
    assert_eq!(pg.query("SELECT workflow, paused_by, reason FROM schedule_pauses"), ["tick|ana|migration"]);
    let next = pg.run(&p, &["next"]);
    next.expect_code(0);
    assert!(next.stdout.contains("paused by ana"), "{}", next.stdout);
    pg.run(&p, &["unpause", "tick", "--by", "ana"]).expect_code(0);
    assert!(pg.query("SELECT workflow FROM schedule_pauses").is_empty());
    assert_eq!(pg.query("SELECT action, actor, outcome FROM actions ORDER BY id"), ["pause|ana|ok", "unpause|ana|ok"]);

    // Retention: keep one run of `w`.
    pg.run(&p, &["run", "w"]).expect_code(0);
    p.write("cxflow.yaml", "retention_runs: 1\n");
    let prune = pg.run(&p, &["prune"]);
    prune.expect_code(0);
    assert_eq!(prune.stdout.trim(), "pruned 1 run(s), 0 artifact file(s)");
    assert_eq!(pg.query("SELECT id FROM runs ORDER BY id"), ["2"]);
    no_sqlite_file(&p);
}

#[test]
fn a_database_that_cannot_be_opened_gets_one_clear_error_without_the_password() {
    let p = TestProject::new();
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let r = support::Run::from(
        p.cxflow().env("CXFLOW_DATABASE_URL", format!("postgres://cx:pg-pass-7731@127.0.0.1:{port}/runs")).args(["runs"]).output().unwrap(),
    );
    r.expect_code(1);
    assert!(r.stderr.contains(&format!("cannot open the run log `postgres://cx:***@127.0.0.1:{port}/runs`")), "{}", r.stderr);
    assert!(!r.stderr.contains("pg-pass-7731") && !r.stdout.contains("pg-pass-7731"), "{}", r.stderr);

    // A server without that database: say how to create it.
    let pg = PgLog::fresh();
    let missing = pg.url.replace(&pg.name, "no_such_db");
    let r = support::Run::from(p.cxflow().env("CXFLOW_DATABASE_URL", &missing).args(["runs"]).output().unwrap());
    r.expect_code(1);
    assert!(r.stderr.contains(r#"database "no_such_db" does not exist"#), "{}", r.stderr);
    assert!(r.stderr.contains("createdb"), "{}", r.stderr);

    // Neither SQLite nor PostgreSQL.
    let r = support::Run::from(p.cxflow().env("CXFLOW_DATABASE_URL", "mysql://cx:pw-5512@db/runs").args(["runs"]).output().unwrap());
    r.expect_code(2);
    assert!(r.stderr.contains("is not a SQLite or PostgreSQL URL"), "{}", r.stderr);
    assert!(r.stderr.contains("postgres://user@host/database"), "{}", r.stderr);
    assert!(!r.stderr.contains("pw-5512"), "{}", r.stderr);
    no_sqlite_file(&p);
}
