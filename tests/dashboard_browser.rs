//! The dashboard end to end in a real headless Chromium (WebDriver through chromedriver), as an
//! operator uses it: log in, find the failed run, open its screenshot, resolve an uncertain
//! delivery, start a run with a parameter and watch it finish, pause a schedule. Each step
//! checks what the page shows and what the other side holds (the run log, the portal,
//! `cxflow next`). With `CXFLOW_SCREENSHOTS=1` the tests also save the PNGs of
//! docs/screenshots/ (1280×800) for the documentation.

mod browser_common;
#[path = "support/dashboard.rs"]
mod dashboard;
mod support;

use browser_common::{cxflow, BgPortal, LOGIN};
use cxflow::demo_portal::PortalOptions;
use dashboard::{Browser, Dashboard, DEADLINE};
use serde_json::json;
use support::TestProject;

/// Who logs in to the dashboard (an operator in cxflow.yaml's `users`), and the password.
const DASHBOARD_USER: Option<(&str, &str)> = Some(("ana", "correct-horse-battery-9"));
/// The name the dashboard records actions under.
const ACTOR: &str = "ana";

/// A portal workflow that registers returns with the customer name, and says how the portal
/// refuses a record (`rejected_if`): a refusal fails the item with a screenshot. `after` are
/// actions after the confirmation (one that fails leaves the delivery uncertain).
fn portal_workflow(name: &str, portal: &BgPortal, csv: &str, after: &str) -> String {
    format!(
        r##"name: {name}
params:
  portal: {url}
secrets: [PORTAL_USER, PORTAL_PASSWORD]
steps:
  - id: returns
    read_csv: {csv}
  - id: register
    for_each: returns
    item_key: "{{{{item.order_id}}}}"
    browser:
      wait: 2s
      rejected_if: {{ selector: "#errors", text: "required" }}
{login}      actions:
        - goto: "{{{{params.portal}}}}/returns/new"
        - fill: {{ "#order": "{{{{item.order_id}}}}", "#name": "{{{{item.name}}}}", "#email": "{{{{item.email}}}}" }}
        - select: {{ "#reason": "damaged" }}
        - check: "#consent"
        - submit: "#submit"
        - wait_for: {{ selector: "#confirmation", timeout: 10s }}
        - extract: {{ confirmation_id: "#confirmation" }}
{after}"##,
        url = portal.url,
        login = LOGIN,
    )
}

/// A quick scheduled export, so the overview has more than the portal's runs.
const TICKETS: &str = r#"name: tickets
schedule:
  cron: "30 2 * * 1-5"
  catch_up: none
steps:
  - id: tickets
    read_csv: data/tickets.csv
  - id: stamp
    for_each: tickets
    item_key: "{{item.id}}"
    command: ["python3", "-c", "import json,sys; print(json.dumps({'id': sys.argv[1]}))", "{{item.id}}"]
"#;

/// Writes users to cxflow.yaml when the dashboard has logins (hashes from the real
/// `cxflow hash-password`).
fn configure_login(p: &TestProject) {
    let Some((name, password)) = DASHBOARD_USER else { return };
    use std::io::Write;
    let mut child =
        p.cxflow().arg("hash-password").stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "cxflow hash-password failed");
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    p.write("cxflow.yaml", &format!("users:\n  - name: {name}\n    role: operator\n    password_hash: \"{hash}\"\n"));
}

#[test]
fn the_failed_run_is_found_its_screenshot_loads_and_an_uncertain_delivery_is_resolved() {
    let portal = BgPortal::start(PortalOptions { require_name: true, ..Default::default() });
    let p = TestProject::new();
    configure_login(&p);
    p.write("data/tickets.csv", "id\nT-1\nT-2\nT-3\n");
    p.write("workflows/tickets.yaml", TICKETS);
    p.write(
        "data/returns.csv",
        "order_id,name,email\nSO-7001,Customer 1,c1@example.com\nSO-7002,,c2@example.com\nSO-7003,Customer 3,c3@example.com\n",
    );
    p.write("workflows/returns.yaml", &portal_workflow("returns", &portal, "data/returns.csv", ""));
    // The confirmation page has no `#receipt`: the record is on the portal, the run cannot know.
    p.write("data/late.csv", "order_id,name,email\nSO-8001,Customer 8,c8@example.com\n");
    p.write("workflows/late.yaml", &portal_workflow("late", &portal, "data/late.csv", "        - extract: { receipt: \"#receipt\" }\n"));

    p.run(&["run", "tickets"]).expect_code(0);
    let run = support::Run::from(cxflow(&p).args(["run", "returns"]).output().unwrap());
    run.expect_code(1);
    let late = support::Run::from(cxflow(&p).args(["run", "late"]).output().unwrap());
    assert_ne!(late.code, 0, "{}\n{}", late.stdout, late.stderr);
    assert_eq!(
        p.query("SELECT id, workflow, status FROM runs ORDER BY id"),
        ["1|tickets|succeeded", "2|returns|partial", "3|late|partial"]
    );
    assert_eq!(p.query("SELECT item_key FROM ledger WHERE state = 'sending'"), ["SO-8001"]);
    assert_eq!(portal.stats().rejected, 1);
    let shot = p.query("SELECT id FROM artifacts WHERE run_id = 2 AND item_key = 'SO-7002' AND kind = 'screenshot'");
    assert_eq!(shot.len(), 1, "{shot:?}");
    let shot = &shot[0];

    let ui = Dashboard::start(p.cxflow(), "ui");
    let b = Browser::open(&ui.base);
    b.login(DASHBOARD_USER, Some("login"));
    assert_eq!(p.query("SELECT user_name FROM web_sessions"), [ACTOR], "one session, of the user who logged in");
    assert_eq!(b.wait_for("header .who"), format!("{ACTOR} · operator · Log out"));

    // The overview lists the workflows, and the portal's partial run as a failure of the week.
    b.goto("/");
    b.wait_text("main", "returns");
    b.wait_text("main", "tickets");
    b.shot("overview", None);

    // Its failures figure leads to the workflow's runs of the week; the filter narrows them to
    // the partial ones.
    b.click_and_wait("main a.error[href^=\"/runs?workflow=returns&\"]");
    let path = b.path();
    assert!(path.starts_with("/runs?workflow=returns&from=20"), "{path}");
    let filter = "form[action=\"/runs\"]";
    b.fill(filter, "status", "partial");
    b.submit(filter);
    let path = b.path();
    assert!(path.contains("workflow=returns") && path.contains("status=partial") && path.contains("from=20"), "{path}");
    let listed = b.wait_for("main table tbody");
    assert!(listed.contains("returns") && listed.contains("partial"), "{listed}");
    assert!(!listed.contains("tickets") && !listed.contains("late"), "the filter holds: {listed}");
    b.shot("runs", None);

    // Open it: the failed item says why, with the portal's screenshot of the refusal.
    b.click_and_wait("main table tbody a[href=\"/runs/2\"]");
    assert_eq!(b.path(), "/runs/2");
    b.wait_text("#run-live table.summary .status", "partial");
    let items = "form[action=\"/runs/2\"]";
    b.fill(items, "status", "failed");
    b.submit(items);
    let failed = b.wait_for("#items-table");
    assert!(failed.contains("SO-7002") && failed.contains("Customer name is required"), "{failed}");
    assert!(!failed.contains("SO-7001") && !failed.contains("SO-7003"), "only the failed item: {failed}");
    b.shot("run", None);
    let img = format!("img[src=\"/runs/2/artifacts/{shot}\"]");
    let png = std::fs::read(p.path().join(&p.query(&format!("SELECT path FROM artifacts WHERE id = {shot}"))[0])).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "the artifact is a PNG");
    let file_width = u32::from_be_bytes(png[16..20].try_into().unwrap()) as u64;
    assert_eq!(b.wait_image(&img), file_width, "the browser shows the very file the browser step saved");
    b.shot("run-failed", Some("#items"));

    // The screenshot on its own, as its link serves it.
    b.goto(&format!("/runs/2/artifacts/{shot}"));
    assert!(b.wait_image("img") > 0);
    b.shot("artifact", None);

    // The late workflow's delivery: on the portal, unconfirmed in the run log.
    b.goto("/runs/3");
    let uncertain = b.wait_text("section#uncertain", "SO-8001");
    assert!(uncertain.contains("register"), "{uncertain}");
    assert!(portal.records().iter().any(|r| r.order == "SO-8001"), "the portal has the record");
    // What the portal answered, kept as HTML and shown framed: the record is there.
    let html = p.query("SELECT id FROM artifacts WHERE run_id = 3 AND item_key = 'SO-8001' AND kind = 'html'");
    assert_eq!(html.len(), 1, "{html:?}");
    let framed = b.wait_frame_text(&format!("iframe[src=\"/runs/3/artifacts/{}\"]", html[0]), "Return registered");
    assert!(framed.contains("Order SO-8001 has confirmation number"), "{framed}");
    b.shot("uncertain", Some("section#uncertain"));
    // Tick the item, press "Sent": the answer is the run page again, saying what was done.
    let resolve = "form[action=\"/runs/3/resolve\"]";
    b.fill(resolve, "items", "SO-8001");
    b.click_and_wait(&format!("{resolve} button[type=submit][name=\"as\"][value=\"sent\"]"));
    assert!(b.path().starts_with("/runs/3?"), "{}", b.path());
    b.wait_text(".flash", &format!("1 uncertain delivery of run 3 resolved as sent by {ACTOR}"));
    let left = b.wait_for("section#uncertain");
    assert!(!left.contains("SO-8001"), "resolved, no longer uncertain: {left}");
    assert_eq!(p.query("SELECT state FROM ledger WHERE item_key = 'SO-8001'"), ["sent"]);
    assert_eq!(
        p.query("SELECT decision, decided_by FROM resolutions WHERE run_id = 3 AND item_key = 'SO-8001'"),
        [format!("sent|{ACTOR}")]
    );
    assert_eq!(p.query("SELECT actor, action, run_id, outcome FROM actions WHERE action = 'resolve'"), [format!("{ACTOR}|resolve|3|ok")]);
}

/// A nightly job whose one item waits until the test lets it finish (a file named after the
/// `batch` parameter), so the page is seen running and then finishing.
const NIGHTLY: &str = r#"name: nightly
schedule:
  cron: "0 2 * * *"
  catch_up: none
params:
  batch: null
steps:
  - id: batches
    read_csv: data/batches.csv
  - id: load
    for_each: batches
    item_key: "{{item.id}}"
    command:
      - python3
      - -c
      - |
        import json, os, sys, time
        end = time.time() + 120
        while not os.path.exists("go-" + sys.argv[1]) and time.time() < end:
            time.sleep(0.05)
        print(json.dumps({"batch": sys.argv[1], "item": sys.argv[2]}))
      - "{{params.batch}}"
      - "{{item.id}}"
"#;

#[test]
fn a_run_started_with_a_parameter_is_watched_to_the_end_and_a_schedule_paused() {
    let p = TestProject::new();
    configure_login(&p);
    p.write("data/batches.csv", "id\nb-1\n");
    p.write("workflows/nightly.yaml", NIGHTLY);
    let serve = Dashboard::start(p.cxflow(), "serve");
    let b = Browser::open(&serve.base);
    b.login(DASHBOARD_USER, None);
    // Run now, with the parameter: the answer is the new run's page.
    b.goto("/workflows/nightly");
    let run_form = "form[action=\"/workflows/nightly/runs\"]";
    b.fill(run_form, "param.batch", "2026-12-02");
    b.shot("workflow", None);
    b.submit(run_form);
    let id: i64 =
        p.wait_for_rows(DEADLINE, "the run the form started", "SELECT id FROM runs WHERE workflow = 'nightly'")[0].parse().unwrap();
    assert!(b.path().starts_with(&format!("/runs/{id}")), "{}", b.path());
    b.wait_text(".flash", &format!("run {id} of nightly started by {ACTOR}"));
    assert_eq!(p.query(&format!("SELECT trigger, params FROM runs WHERE id = {id}")), [r#"manual|{"batch":"2026-12-02"}"#]);
    b.wait_text("#run-live table.summary .status", "running");

    // The page follows the run by itself: a mark on this document survives until it reads
    // succeeded, so neither the test nor the page reloaded it.
    b.js("window.__sameDocument = 'yes'", vec![]);
    p.write("go-2026-12-02", "");
    b.wait_text("#run-live table.summary .status", "succeeded");
    assert_eq!(b.js("return window.__sameDocument", vec![]), json!("yes"), "the page was reloaded");
    b.wait_for("#run-live:not([data-live])");
    assert_eq!(p.query(&format!("SELECT status FROM runs WHERE id = {id}")), ["succeeded"]);
    assert_eq!(p.query(&format!("SELECT output FROM items WHERE run_id = {id}")), [r#"{"batch":"2026-12-02","item":"b-1"}"#]);

    // Pause the schedule; the page says so, and so does the real `cxflow next`.
    b.goto("/workflows/nightly");
    let pause = "form[action=\"/workflows/nightly/pause\"]";
    b.fill(pause, "reason", "warehouse inventory");
    b.submit(pause);
    assert!(b.path().starts_with("/workflows/nightly"), "{}", b.path());
    b.wait_text(".pause-toggle", &format!("paused by {ACTOR} since 20"));
    let next = p.run(&["next", "--count", "2"]);
    next.expect_code(0);
    let row = next.stdout.lines().find(|l| l.starts_with("nightly")).unwrap_or_else(|| panic!("no row for nightly:\n{}", next.stdout));
    assert!(row.contains(&format!("paused by {ACTOR} since 20")) && row.contains("warehouse inventory"), "{row}");
    assert_eq!(
        p.query("SELECT actor, action, workflow, run_id, outcome FROM actions ORDER BY id"),
        [format!("{ACTOR}|run|nightly|{id}|ok"), format!("{ACTOR}|pause|nightly|NULL|ok")]
    );

    // The audit log lists both, newest first, with who took them.
    b.goto("/actions");
    b.wait_text("main table.actions", "warehouse inventory");
    let rows = b.js(
        "return Array.from(document.querySelectorAll('table.actions tbody tr')).map(function (tr) { return tr.cells[1].innerText + ' ' + tr.cells[3].innerText; })",
        vec![],
    );
    assert_eq!(rows, json!([format!("{ACTOR} pause"), format!("{ACTOR} run")]));
    b.shot("actions", None);
}
