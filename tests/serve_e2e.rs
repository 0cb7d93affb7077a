//! `cxflow serve` end to end: the real binary on an every-second schedule, a real SQLite run
//! log, a second scheduler refused, a broken file hot-reloaded, SIGTERM mid-run.

#[macro_use]
mod support;

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use support::backend::{Backend, LogProject};
use support::serve::Serve;
use support::{wait_until, TestProject};

fn time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("`{s}` is not RFC 3339: {e}")).with_timezone(&Utc)
}

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
    command: [python3, script.py, "{{item.id}}", slow]
"#;

#[test]
fn serve_runs_on_schedule_refuses_a_second_reloads_and_stops_on_sigterm() {
    let p = support::script_project("id", (1..=30).map(|i| format!("r{i:02}")));
    p.write("workflows/tick.yaml", TICK);
    p.write("cxflow.yaml", "shutdown_grace: 2s\n");

    // The first fire can be no earlier than the whole second serve was started in.
    let spawned = Utc::now().trunc_subsecs(0);
    let (mut serve, logs) = Serve::in_project(&p);

    // A scheduled run appears in the run log and is running (30 items × 0.3 s).
    let run_id = p.wait_for_rows(
        Duration::from_secs(30),
        "a running scheduled run",
        "SELECT id FROM runs WHERE status = 'running' AND trigger = 'schedule'",
    )[0]
    .clone();
    let seen = Utc::now();
    let row = p.query(&format!("SELECT scheduled_for, started_at FROM runs WHERE id = {run_id}"));
    let (fire, started) = row[0].split_once('|').unwrap();
    assert!(fire.ends_with(":00+00:00") || fire.contains('T'), "{fire}");
    // `* * * * * *` fires on whole seconds, and this one came after serve started and before
    // the run was seen; the run starts at (or after) its fire time.
    let (fire, started) = (time(fire), time(started));
    assert_eq!(fire, fire.trunc_subsecs(0), "{fire} is not on a whole second");
    assert!(spawned <= fire && fire <= seen, "fire {fire} outside [{spawned}, {seen}]");
    assert!(fire <= started, "run started at {started}, before its fire time {fire}");

    // Every-second fires while it runs are skipped, with the reason (overlap: skip).
    let skipped = p.wait_for_rows(
        Duration::from_secs(10),
        "skipped overlapping fires",
        "SELECT scheduled_for FROM runs WHERE status = 'skipped' AND error LIKE '%overlap: skip%'",
    );
    // ... and each of them is a later whole second of the same schedule.
    for s in &skipped {
        let later = time(s) - fire;
        assert!(later.num_milliseconds() > 0 && later.num_milliseconds() % 1000 == 0, "skipped fire {s} vs {fire}");
    }

    // One scheduler per run log.
    let second = p.run(&["serve"]);
    assert_eq!(second.code, 2, "{}", second.stderr);
    assert!(second.stderr.contains("another `cxflow serve` is already running"), "{}", second.stderr);

    // A broken edit is reported; the last good version keeps running.
    p.write("workflows/tick.yaml", "name: tick\nschedule:\n  cron: \"61 * * * *\"\nsteps: []\n");
    wait_until(Duration::from_secs(10), "the invalid file in the run log", || {
        !p.query("SELECT id FROM runs WHERE error LIKE '%failed validation; the last good version keeps running%'").is_empty()
    });
    let skipped_before: usize = p.query("SELECT count(*) FROM runs WHERE status = 'skipped'")[0].parse().unwrap();
    wait_until(Duration::from_secs(10), "fires still handled after the broken edit", || {
        let n: usize = p.query("SELECT count(*) FROM runs WHERE status = 'skipped'")[0].parse().unwrap();
        n > skipped_before + 1
    });

    // SIGTERM mid-run: no new runs, the run is marked interrupted, the process exits 0.
    assert_eq!(p.query(&format!("SELECT status FROM runs WHERE id = {run_id}")), vec!["running"]);
    serve.sigterm();
    let status = support::wait_for_some(Duration::from_secs(30), "serve to stop after SIGTERM", || serve.0.try_wait().unwrap());
    let out = logs.text();
    assert_eq!(status.code(), Some(0), "{out}");
    assert_eq!(p.query(&format!("SELECT status FROM runs WHERE id = {run_id}")), vec!["interrupted"], "{out}");
    assert!(p.query("SELECT id FROM runs WHERE status = 'running'").is_empty());
    // Not every item ran: the rest were left for a resume.
    let done: usize = p.query(&format!("SELECT count(*) FROM items WHERE run_id = {run_id}"))[0].parse().unwrap();
    assert!(done < 30, "{done} items done");
}

/// A one-shot HTTP receiver on 127.0.0.1: answers 200 to each POST and hands over the bodies.
fn webhook_receiver() -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(5) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tx.send(String::from_utf8_lossy(&body).into_owned());
        }
    });
    (url, rx)
}

#[test]
fn max_runtime_fails_the_run_and_on_failure_webhook_is_posted() {
    let p = support::script_project("id", (1..=30).map(|i| format!("r{i:02}")));
    let (url, bodies) = webhook_receiver();
    p.write(
        "workflows/slow.yaml",
        &format!(
            r#"name: slow
schedule:
  cron: "* * * * * *"
  max_runtime: 1s
  on_failure:
    webhook: {url}
    email: [ops@example.com]
steps:
  - id: records
    read_csv: data/records.csv
  - id: act
    for_each: records
    item_key: "{{{{item.id}}}}"
    command: [python3, script.py, "{{{{item.id}}}}", slow]
"#
        ),
    );
    p.write("cxflow.yaml", "shutdown_grace: 2s\n");
    let (mut serve, logs) = Serve::in_project(&p);
    let body = bodies.recv_timeout(Duration::from_secs(40)).expect("on_failure webhook");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["workflow"], "slow");
    assert_eq!(v["status"], "failed");
    assert!(v["message"].as_str().unwrap().contains("max_runtime of 1s"), "{v}");
    let run_id = v["run_id"].as_i64().unwrap();
    let row = p.query(&format!("SELECT status, error FROM runs WHERE id = {run_id}"));
    assert!(row[0].starts_with("failed|run exceeded max_runtime of 1s"), "{row:?}");
    // No smtp_url: the notification email lands in the outbox folder.
    wait_until(Duration::from_secs(10), "the on_failure email in the outbox", || {
        std::fs::read_dir(p.path().join("outbox")).map(|d| d.count() > 0).unwrap_or(false)
    });
    // The file is there as soon as writing starts; serve says when it is written.
    wait_until(Duration::from_secs(10), "serve to log the on_failure email as sent", || {
        logs.count(&["on_failure email sent", "workflow=slow"]) > 0
    });
    serve.sigterm();
    let status = serve.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    // Read once serve is gone: later fires failed too, and their emails were still being written.
    let eml = std::fs::read_dir(p.path().join("outbox")).unwrap().next().unwrap().unwrap().path();
    let eml = std::fs::read_to_string(eml).unwrap();
    assert!(eml.contains("To: ops@example.com") && eml.contains("workflow `slow` failed"), "{eml}");
}

// On both run logs: on PostgreSQL the killed scheduler's lock goes with its session.
on_both!(a_run_left_running_by_a_crash_is_resumed_with_resume_auto);
fn a_run_left_running_by_a_crash_is_resumed_with_resume_auto(b: Backend) {
    let p = LogProject::on(support::script_project("id", (1..=12).map(|i| format!("r{i:02}"))), b);
    p.write("workflows/tick.yaml", &TICK.replace("  overlap: skip\n", "  overlap: skip\n  resume: auto\n"));
    let (mut serve, _logs) = Serve::start(p.cxflow());
    let run_id = p.wait_for_rows(
        Duration::from_secs(30),
        "a running scheduled run with some items done",
        "SELECT run_id FROM items i JOIN runs r ON r.id = i.run_id WHERE r.status = 'running'",
    )[0]
    .clone();
    assert_eq!(p.query("SELECT id FROM runs WHERE status = 'running'"), std::slice::from_ref(&run_id));
    // Crash: SIGKILL, nothing gets to clean up.
    serve.0.kill().unwrap();
    serve.0.wait().unwrap();
    assert_eq!(p.query(&format!("SELECT status FROM runs WHERE id = {run_id}")), vec!["running"]);

    let (mut serve, logs) = Serve::start(p.cxflow());
    wait_until(Duration::from_secs(40), "the crashed run resumed and finished", || {
        p.query(&format!("SELECT status, resumes FROM runs WHERE id = {run_id}")) == vec!["succeeded|1"]
    });
    let items: usize = p.query(&format!("SELECT count(*) FROM items WHERE run_id = {run_id} AND status = 'ok'"))[0].parse().unwrap();
    assert_eq!(items, 12);
    serve.sigterm();
    assert_eq!(serve.0.wait().unwrap().code(), Some(0), "{}", logs.text());
}

#[test]
fn workflows_added_and_deleted_while_serving_take_effect_without_restart() {
    let p = TestProject::new();
    p.write("data/tickets.csv", "id\n1\n");
    // A second every-second workflow: the scheduler's clock seen from outside, so "no fires
    // since" can be checked over fires that happened instead of over a fixed time.
    p.write(
        "workflows/witness.yaml",
        "name: witness\nschedule:\n  cron: \"* * * * * *\"\nsteps:\n  - id: t\n    read_csv: data/tickets.csv\n",
    );
    let (mut serve, logs) = Serve::in_project(&p);
    wait_until(Duration::from_secs(20), "the lock file", || p.path().join("cxflow.sqlite.serve.lock").exists());
    // Logged once the folder is watched: a file written before that would not be seen.
    wait_until(Duration::from_secs(20), "serve to log that it started", || logs.count(&["cxflow serve started"]) > 0);
    p.write("workflows/new.yaml", "name: new\nschedule:\n  cron: \"* * * * * *\"\nsteps:\n  - id: t\n    read_csv: data/tickets.csv\n");
    wait_until(Duration::from_secs(15), "runs of the new workflow", || {
        p.query("SELECT count(*) FROM runs WHERE workflow = 'new' AND status = 'succeeded'")[0].parse::<usize>().unwrap() >= 2
    });
    std::fs::remove_file(p.path().join("workflows/new.yaml")).unwrap();
    wait_until(Duration::from_secs(15), "serve to unschedule the deleted file", || {
        logs.count(&["workflow file deleted; unscheduled", "workflow=new "]) > 0
    });
    // Two more fires of the witness: the removal has reached the scheduler loop.
    let witnessed = logs.fires("witness");
    wait_until(Duration::from_secs(15), "two witness fires after the deletion", || logs.fires("witness") >= witnessed + 2);
    // Every fire of `new` the scheduler handled has its row.
    let fires = logs.fires("new");
    wait_until(Duration::from_secs(15), "a row for every fire of the deleted workflow", || {
        p.query("SELECT count(*) FROM runs WHERE workflow = 'new' AND status != 'running'") == [fires.to_string()]
    });
    let before = p.query("SELECT count(*) FROM runs WHERE workflow = 'new'");
    let witnessed = logs.fires("witness");
    wait_until(Duration::from_secs(15), "two more witness fires", || logs.fires("witness") >= witnessed + 2);
    assert_eq!(p.query("SELECT count(*) FROM runs WHERE workflow = 'new'"), before, "no fires after the file was deleted");
    assert_eq!(logs.fires("new"), fires, "no fires after the file was deleted:\n{}", logs.text());
    serve.sigterm();
    assert_eq!(serve.0.wait().unwrap().code(), Some(0));
}
