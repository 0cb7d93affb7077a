//! The control actions at the command line, end to end with the real binary: `cxflow pause`
//! seen by `cxflow serve` and `cxflow next`, `cxflow cancel` of a `cxflow run` in another
//! process, and `cxflow resume` after it.

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::serve::Serve;
use support::{wait_until, TestProject};

const TICK: &str = r#"name: tick
schedule:
  cron: "* * * * * *"
  overlap: skip
steps:
  - id: records
    read_csv: data/records.csv
  - id: act
    for_each: records
    item_key: "{{item.id}}"
    command: [python3, script.py, "{{item.id}}"]
"#;

fn count(p: &TestProject, sql: &str) -> usize {
    p.query(sql)[0].parse().unwrap()
}

#[test]
fn a_paused_workflow_is_skipped_by_serve_and_shown_by_next_until_unpaused() {
    let p = support::script_project("id", ["r1".to_string(), "r2".to_string()]);
    p.write("workflows/tick.yaml", TICK);
    p.write("cxflow.yaml", "shutdown_grace: 2s\n");

    let out = p.run(&["pause", "tick", "--reason", "portal maintenance", "--by", "ana"]);
    out.expect_code(0);
    assert!(out.stdout.starts_with("tick: paused by ana since 20"), "{}", out.stdout);
    assert!(out.stdout.contains(": portal maintenance\n"), "{}", out.stdout);

    let next = p.run(&["next", "--count", "3"]);
    next.expect_code(0);
    let row = next.stdout.lines().find(|l| l.starts_with("tick")).unwrap_or_else(|| panic!("no row for tick:\n{}", next.stdout));
    assert!(row.contains("paused by ana since 20") && row.contains("(`cxflow unpause tick`)"), "{row}");
    assert_eq!(
        next.stdout.lines().filter(|l| l.starts_with("tick")).count(),
        1,
        "fire times listed for a paused workflow:\n{}",
        next.stdout
    );

    let (mut serve, logs) = Serve::in_project(&p);
    wait_until(Duration::from_secs(30), "two fires skipped as paused", || {
        p.count("SELECT count(*) FROM runs WHERE workflow = 'tick' AND status = 'skipped' AND error LIKE 'paused by ana since %: portal maintenance'") >= 2
    });
    assert_eq!(count(&p, "SELECT count(*) FROM runs WHERE status != 'skipped'"), 0, "a paused workflow ran:\n{}", logs.text());
    assert!(p.query("SELECT item_key FROM items").is_empty());

    // Lifted by another process while serve runs: the next fire runs.
    p.run(&["unpause", "tick", "--by", "bo"]).expect_code(0);
    p.wait_for_rows(Duration::from_secs(30), "a scheduled run after the unpause", "SELECT id FROM runs WHERE status = 'succeeded'");
    let next = p.run(&["next", "--count", "2"]);
    next.expect_code(0);
    assert_eq!(next.stdout.lines().filter(|l| l.starts_with("tick") && !l.contains("paused")).count(), 2, "{}", next.stdout);

    serve.sigterm();
    let status = support::wait_for_some(Duration::from_secs(30), "serve to stop after SIGTERM", || serve.0.try_wait().unwrap());
    assert_eq!(status.code(), Some(0), "{}", logs.text());
    assert_eq!(
        p.query("SELECT actor, role, action, workflow, outcome FROM actions ORDER BY id"),
        ["ana|admin|pause|tick|ok", "bo|admin|unpause|tick|ok"]
    );
}

const SLOW: &str = r#"name: w
steps:
  - id: records
    read_csv: data/records.csv
  - id: act
    for_each: records
    item_key: "{{item.id}}"
    command: [python3, script.py, "{{item.id}}", slow]
"#;

#[test]
fn cancel_stops_a_run_in_another_process_and_resume_finishes_it() {
    const N: usize = 30;
    let p = support::script_project("id", (1..=N).map(|i| format!("r{i:02}")));
    p.write("workflows/w.yaml", SLOW);
    let child = p.cxflow().args(["run", "w"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let run_id = p.wait_for_rows(
        Duration::from_secs(60),
        "a running run with an item done",
        "SELECT r.id FROM runs r WHERE r.status = 'running' AND EXISTS (SELECT 1 FROM items i WHERE i.run_id = r.id)",
    )[0]
    .clone();

    let out = p.run(&["cancel", &run_id, "--by", "ana"]);
    out.expect_code(0);
    assert!(out.stdout.starts_with(&format!("run {run_id}: cancel requested by ana at 20")), "{}", out.stdout);

    let run = support::Run::from(child.wait_with_output().unwrap());
    run.expect_code(130);
    assert!(run.stdout.contains(&format!("resume with: cxflow resume {run_id}")), "{}", run.stdout);
    let row = p.query(&format!("SELECT status, error FROM runs WHERE id = {run_id}"));
    assert!(row[0].starts_with("interrupted|cancelled by ana at 20"), "{row:?}");
    let done = count(&p, &format!("SELECT count(*) FROM items WHERE run_id = {run_id} AND status = 'ok'"));
    assert!(done < N, "all {done} items ran: the cancel was not seen");

    let again = p.run(&["cancel", &run_id, "--by", "bo"]);
    again.expect_code(2);
    assert!(again.stderr.contains(&format!("run {run_id} is not running (it is interrupted)")), "{}", again.stderr);

    p.run(&["resume", &run_id]).expect_code(0);
    assert_eq!(count(&p, &format!("SELECT count(*) FROM items WHERE run_id = {run_id} AND status = 'ok'")), N);
    assert_eq!(p.query(&format!("SELECT status FROM runs WHERE id = {run_id}")), ["succeeded"]);
    let actions = p.query("SELECT actor, action, run_id, substr(outcome, 1, 7) FROM actions ORDER BY id");
    assert_eq!(actions, [format!("ana|cancel|{run_id}|ok"), format!("bo|cancel|{run_id}|refused")]);
}
