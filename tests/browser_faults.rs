//! Exactly once under faults, for the `browser` step: the portal refusing records, the browser
//! blocking a form, chromedriver killed or frozen mid-run. Real Chromium through chromedriver,
//! the demo portal on loopback, the real binary; every check reads the other side (the records
//! the portal stored, the run log's rows, the files).

mod browser_common;
mod support;

use std::collections::HashSet;
use std::time::Duration;

use browser_common::*;
use cxflow::demo_portal::PortalOptions;
use support::TestProject;

/// One CSV row: order, customer name, email.
type Row = (String, String, String);

fn rows(n: usize) -> Vec<Row> {
    (1..=n).map(|i| (format!("SO-{}", 7000 + i), format!("Customer {i}"), format!("c{i}@example.com"))).collect()
}

fn write_csv(p: &TestProject, rows: &[Row]) {
    let mut csv = String::from("order_id,name,email\n");
    for (o, n, e) in rows {
        csv.push_str(&format!("{o},{n},{e}\n"));
    }
    p.write("data/returns.csv", &csv);
}

/// A project whose browser step fills order, name and email, says how the portal refuses
/// (`rejected_if`), and has `extra` (indented step keys) on top.
fn project(portal: &BgPortal, rows: &[Row], extra: &str) -> TestProject {
    let p = TestProject::new();
    write_csv(&p, rows);
    p.write(
        "workflows/returns.yaml",
        &format!(
            r##"name: returns
params:
  portal: {url}
  month: "2026-11"
secrets: [PORTAL_USER, PORTAL_PASSWORD]
steps:
  - id: returns
    read_csv: data/returns.csv
  - id: register
    for_each: returns
    item_key: "{{{{item.order_id}}}}"
    browser:
{extra}
      rejected_if: {{ selector: "#errors", text: "required" }}
{login}      actions:
        - goto: "{{{{params.portal}}}}/returns/new"
        - fill: {{ "#order": "{{{{item.order_id}}}}", "#name": "{{{{item.name}}}}", "#email": "{{{{item.email}}}}" }}
        - select: {{ "#reason": "damaged" }}
        - check: "#consent"
        - submit: "#submit"
        - wait_for: {{ selector: "#confirmation", timeout: 10s }}
        - extract: {{ confirmation_id: "#confirmation" }}
"##,
            login = browser_common::LOGIN,
            url = portal.url
        ),
    );
    p
}

fn count(p: &TestProject, sql: &str) -> usize {
    p.query(sql)[0].parse().unwrap()
}

/// How many times each order is on the portal.
fn on_portal(portal: &BgPortal) -> std::collections::HashMap<String, usize> {
    let mut m = std::collections::HashMap::new();
    for r in portal.records() {
        *m.entry(r.order).or_insert(0) += 1;
    }
    m
}

#[test]
fn refused_and_blocked_records_fail_with_the_reason_unclaimed_and_resume_submits_each_once() {
    let portal = BgPortal::start(PortalOptions { require_name: true, ..Default::default() });
    let n = 7;
    let good = rows(n);
    let mut bad = good.clone();
    bad[1].1.clear(); // SO-7002: no name, the portal refuses it
    bad[4].1.clear(); // SO-7005: likewise
    bad[3].2.clear(); // SO-7004: no email, the browser blocks the form (`required`)
    let p = project(&portal, &bad, "      sessions: 2");

    let run = support::Run::from(cxflow(&p).args(["run", "returns"]).output().unwrap());
    run.expect_code(1);
    assert_eq!(p.query("SELECT status FROM runs WHERE id = 1"), ["partial"]);
    let failed = p.query("SELECT item_key, attempts, error FROM items WHERE status = 'failed' ORDER BY item_key");
    assert_eq!(failed.len(), 3, "{failed:#?}");
    for row in &failed {
        let mut f = row.splitn(3, '|');
        let (key, attempts, err) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        assert_eq!(attempts, "1", "a refusal is not retried: {row}");
        if key == "SO-7004" {
            let want = "action 5 (submit `#submit`): the browser blocks the submit: `#email`: ";
            assert!(err.starts_with(want), "{err}");
            assert!(err.contains("Please fill out this field."), "the browser's own message: {err}");
        } else {
            let want = "action 5 (submit `#submit`): refused by the portal: `Customer name is required`; \
                        not submitted (fix the record, then `cxflow resume 1`); page `";
            assert!(err.starts_with(want), "{err}");
        }
        // A screenshot of what the page showed, as a file and in the run log.
        let png = p.query(&format!("SELECT path FROM artifacts WHERE item_key = '{key}' AND kind = 'screenshot'"));
        assert_eq!(png.len(), 1, "{key}: {png:?}");
        assert!(std::fs::read(p.path().join(&png[0])).unwrap().starts_with(b"\x89PNG"));
    }
    // Nothing is left claimed for them; the others are sent, each once.
    assert_eq!(p.query("SELECT item_key FROM ledger WHERE state <> 'sent'"), Vec::<String>::new());
    assert_eq!(count(&p, "SELECT count(*) FROM ledger WHERE state = 'sent'"), n - 3);
    let seen = on_portal(&portal);
    assert_eq!(seen.len(), n - 3, "{seen:?}");
    assert!(seen.values().all(|c| *c == 1), "{seen:?}");
    assert!(!seen.contains_key("SO-7002") && !seen.contains_key("SO-7004") && !seen.contains_key("SO-7005"));
    // The blocked form never reached the portal; the two refusals did.
    assert_eq!(portal.stats().rejected, 2);

    write_csv(&p, &good);
    let resumed = support::Run::from(cxflow(&p).args(["resume", "1"]).output().unwrap());
    resumed.expect_code(0);
    assert_eq!(p.query("SELECT status FROM runs WHERE id = 1"), ["succeeded"]);
    let seen = on_portal(&portal);
    assert_eq!(seen.len(), n, "{seen:?}");
    assert!(seen.values().all(|c| *c == 1), "{seen:?}");
    let names: HashSet<String> = portal.records().into_iter().map(|r| r.name).collect();
    assert!(names.contains("Customer 2") && names.contains("Customer 5"));
    assert_eq!(count(&p, "SELECT count(*) FROM ledger WHERE state = 'sent'"), n);
    assert!(files_containing(p.path(), PASSWORD).is_empty());
}

#[test]
fn idempotency_key_lets_next_month_submit_the_same_customers_again() {
    let portal = BgPortal::start(PortalOptions::default());
    let n = 3;
    let p = project(&portal, &rows(n), "      idempotency_key: \"returns/{{params.month}}/{{item.order_id}}\"");
    support::Run::from(cxflow(&p).args(["run", "returns"]).output().unwrap()).expect_code(0);
    assert_eq!(portal.records().len(), n);
    // The same month again: every record is already on the portal.
    let again = support::Run::from(cxflow(&p).args(["run", "returns"]).output().unwrap());
    again.expect_code(0);
    assert_eq!(portal.records().len(), n);
    assert_eq!(count(&p, "SELECT count(*) FROM items WHERE run_id = 2 AND status = 'skipped'"), n);
    assert_eq!(portal.stats().logins, 1, "a record known as sent is skipped before the portal is touched, login included");
    // Next month: new keys, so each record is submitted once more.
    support::Run::from(cxflow(&p).args(["run", "returns", "--var", "month=2026-12"]).output().unwrap()).expect_code(0);
    assert_eq!(portal.records().len(), 2 * n);
    let keys = p.query("SELECT key FROM ledger WHERE state = 'sent' ORDER BY key");
    assert_eq!(keys.len(), 2 * n);
    assert_eq!(keys[0], "returns/2026-11/SO-7001");
    assert_eq!(keys[n], "returns/2026-12/SO-7001");
}

#[test]
fn a_post_answered_with_the_login_page_is_released_and_redone_after_logging_in() {
    // Every session dies at its third post: the portal answers with its login page and stores
    // nothing. The watch after the click sees the login page, releases the claim, and the item is
    // redone on a fresh login (without waiting for the confirmation that will not come).
    let portal = BgPortal::start(PortalOptions { expire_on_post: Some(3), ..Default::default() });
    let n = 5;
    let p = project(&portal, &rows(n), "      sessions: 1");
    support::Run::from(cxflow(&p).args(["run", "returns"]).output().unwrap()).expect_code(0);
    let seen = on_portal(&portal);
    assert_eq!(seen.len(), n, "{seen:?}");
    assert!(seen.values().all(|c| *c == 1), "{seen:?}");
    let st = portal.stats();
    assert_eq!((st.expired_sessions, st.logins), (2, 3), "a login, then one after each refused post");
    assert_eq!(count(&p, "SELECT count(*) FROM ledger WHERE state = 'sent'"), n);
    assert_eq!(count(&p, "SELECT count(*) FROM items WHERE status = 'ok' AND attempts = 1"), n, "redone within the attempt");
}

/// What a fault left: the items reported uncertain. Checks that their errors say what to do and
/// that the ledger holds exactly their keys, then settles them the way a person who cannot check
/// the portal would (`not-sent`) and resumes: nothing is lost, and only an uncertain record can
/// be on the portal twice.
fn settle_and_resume(p: &TestProject, portal: &BgPortal, n: usize, first: &support::Run) {
    let uncertain = p.query("SELECT item_key, error FROM items WHERE status = 'failed' AND error LIKE 'uncertain: %'");
    let keys: HashSet<String> = uncertain.iter().map(|r| r.split_once('|').unwrap().0.to_string()).collect();
    for row in &uncertain {
        let (key, err) = row.split_once('|').unwrap();
        assert!(err.contains("stays claimed by run 1"), "{err}");
        assert!(err.contains(&format!("`cxflow resolve 1 {key} --as sent|not-sent`")), "{err}");
    }
    eprintln!("after the fault: {} uncertain {keys:?}\n{}", keys.len(), first.stdout);
    let claimed: HashSet<String> = p.query("SELECT item_key FROM ledger WHERE state = 'sending'").into_iter().collect();
    assert_eq!(claimed, keys, "the ledger holds exactly the uncertain keys\n{}", first.stdout);
    let other_failures = count(p, "SELECT count(*) FROM items WHERE status = 'failed' AND error NOT LIKE 'uncertain: %'");
    let ok = count(p, "SELECT count(*) FROM items WHERE status = 'ok'");
    if keys.is_empty() && other_failures == 0 {
        first.expect_code(0);
        assert_eq!(ok, n);
    } else {
        first.expect_code(1);
        assert_eq!(p.query("SELECT status FROM runs WHERE id = 1"), ["partial"]);
    }
    if !keys.is_empty() {
        assert!(first.stdout.contains("uncertain:"), "{}", first.stdout);
        support::Run::from(p.cxflow().args(["resolve", "1", "--all", "--as", "not-sent"]).output().unwrap()).expect_code(0);
    }
    let resumed = support::Run::from(cxflow(p).args(["resume", "1"]).output().unwrap());
    resumed.expect_code(0);
    assert_eq!(p.query("SELECT status FROM runs WHERE id = 1"), ["succeeded"]);
    let seen = on_portal(portal);
    let lost: Vec<String> = rows(n).into_iter().map(|r| r.0).filter(|o| !seen.contains_key(o)).collect();
    assert!(lost.is_empty(), "never submitted: {lost:?}");
    let twice: Vec<&String> = seen.iter().filter(|(_, c)| **c > 1).map(|(o, _)| o).collect();
    assert!(twice.len() <= keys.len(), "submitted twice: {twice:?}, uncertain: {keys:?}");
    assert!(twice.iter().all(|o| keys.contains(*o)), "only an uncertain record may be on the portal twice: {twice:?}");
    assert!(seen.values().all(|c| *c <= 2), "{seen:?}");
}

/// Starts `cxflow run returns`, waits for `progress` records on the portal, and returns the
/// child and the pid of its chromedriver.
fn start_and_find_chromedriver(p: &TestProject, portal: &BgPortal, progress: usize) -> (std::process::Child, i32) {
    let child =
        cxflow(p).args(["run", "returns"]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id() as i32;
    support::wait_until(Duration::from_secs(90), "records on the portal (no progress)", || portal.records().len() >= progress);
    let groups = driver_groups(pid);
    assert_eq!(groups.len(), 1);
    let driver = support::wait_for_some(Duration::from_secs(10), "the chromedriver process", || {
        procs().into_iter().find(|x| x.pgid == groups[0] && x.comm == "chromedriver").map(|x| x.pid)
    });
    (child, driver)
}

#[test]
fn chromedriver_killed_mid_run_loses_nothing_after_resolve_and_resume() {
    let portal = BgPortal::start(PortalOptions { submit_delay_ms: 150, ..Default::default() });
    let n = 12;
    let p = project(&portal, &rows(n), "      sessions: 2");
    let (child, driver) = start_and_find_chromedriver(&p, &portal, 3);
    kill(driver, libc::SIGKILL);
    let first = support::Run::from(child.wait_with_output().unwrap());
    assert!(on_portal(&portal).values().all(|c| *c == 1), "no record twice within the run");
    settle_and_resume(&p, &portal, n, &first);
}

#[test]
fn chromedriver_that_stops_answering_does_not_hang_the_run() {
    let portal = BgPortal::start(PortalOptions { submit_delay_ms: 150, ..Default::default() });
    let n = 8;
    let p = project(&portal, &rows(n), "      sessions: 2\n      command_timeout: 3s");
    let (child, driver) = start_and_find_chromedriver(&p, &portal, 2);
    // Frozen, not dead: its port still accepts connections, nothing answers.
    kill(driver, libc::SIGSTOP);
    let at_freeze = portal.records().len();
    // The run must get past the frozen driver by itself (restarting it) and finish.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let first = match rx.recv_timeout(Duration::from_secs(180)) {
        Ok(out) => support::Run::from(out.unwrap()),
        Err(_) => {
            kill(driver, libc::SIGCONT);
            panic!("the run hangs on a frozen chromedriver");
        }
    };
    // The restart killed the frozen one; if it is somehow still there, let it go.
    kill(driver, libc::SIGCONT);
    support::wait_until(Duration::from_secs(10), "the frozen chromedriver to be gone", || {
        procs().iter().all(|x| x.pid != driver || x.state == 'Z')
    });
    assert!(portal.records().len() > at_freeze, "the run went on with a new chromedriver\n{}", first.stdout);
    assert!(on_portal(&portal).values().all(|c| *c == 1), "no record twice within the run");
    // The short limit was for the fault; the resume runs with the default, so a busy machine
    // cannot make a healthy command look like a frozen driver.
    let wf = p.read("workflows/returns.yaml").replace("      command_timeout: 3s\n", "");
    p.write("workflows/returns.yaml", &wf);
    settle_and_resume(&p, &portal, n, &first);
}

/// Runs one write against the run log, as another process would.
fn write_run_log(p: &TestProject, sql: &str) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(p.db()).busy_timeout(Duration::from_secs(10));
        let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
        let n = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap().rows_affected();
        pool.close().await;
        n
    })
}

#[test]
fn a_submission_the_run_log_cannot_confirm_fails_as_uncertain_and_nothing_more_is_submitted() {
    // A slow answer (5 s, a wide margin on a loaded machine) leaves time to take the claim away from the run while it submits.
    let portal = BgPortal::start(PortalOptions { submit_delay_ms: 5000, ..Default::default() });
    let n = 3;
    let p = project(&portal, &rows(n), "      sessions: 1");
    let child =
        cxflow(&p).args(["run", "returns"]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    p.wait_for_rows(Duration::from_secs(90), "the first claim", "SELECT key FROM ledger WHERE state = 'sending'");
    // Another owner now holds the key (as if this run's lease had lapsed): confirm must fail.
    assert_eq!(write_run_log(&p, "UPDATE ledger SET owner = 'someone-else' WHERE state = 'sending'"), 1);
    let run = support::Run::from(child.wait_with_output().unwrap());
    assert_ne!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let items = p.query("SELECT item_key, status, error FROM items ORDER BY seq");
    let first: Vec<&str> = items[0].splitn(3, '|').collect();
    assert_eq!(&first[..2], ["SO-7001", "failed"], "{items:#?}");
    assert!(first[2].starts_with("uncertain: the portal accepted the record, but the run log could not record it ("), "{}", first[2]);
    assert!(first[2].contains("`cxflow resolve 1 SO-7001 --as sent|not-sent`"), "{}", first[2]);
    assert!(items.iter().all(|r| !r.contains("|ok|")), "nothing counts as done: {items:#?}");
    // The record did reach the portal, and the run stopped before submitting anything else.
    let seen = on_portal(&portal);
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), [("SO-7001".to_string(), 1)]);
    assert_eq!(p.query("SELECT status FROM runs WHERE id = 1"), ["failed"]);
}
