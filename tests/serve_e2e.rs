//! `cxflow serve` end to end: the real binary on an every-second schedule, a real SQLite run
//! log, a second scheduler refused, a broken file hot-reloaded, SIGTERM mid-run.

mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::TestProject;


fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        // Only if the test failed before stopping it.
        let _ = self.0.kill();
    }
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

    let child = p.cxflow().arg("serve").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut serve = Serve(child);

    // A scheduled run appears in the run log and is running (30 items × 0.3 s).
    wait_for("a running scheduled run", Duration::from_secs(30), || {
        p.db().exists() && !p.query("SELECT id FROM runs WHERE status = 'running' AND trigger = 'schedule'").is_empty()
    });
    let run_id = p.query("SELECT id FROM runs WHERE status = 'running'")[0].clone();
    let fire = p.query(&format!("SELECT scheduled_for FROM runs WHERE id = {run_id}"))[0].clone();
    assert!(fire.ends_with(":00+00:00") || fire.contains('T'), "{fire}");

    // Every-second fires while it runs are skipped, with the reason (overlap: skip).
    wait_for("skipped overlapping fires", Duration::from_secs(10), || {
        !p.query("SELECT id FROM runs WHERE status = 'skipped' AND error LIKE '%overlap: skip%'").is_empty()
    });

    // One scheduler per run log.
    let second = p.run(&["serve"]);
    assert_eq!(second.code, 2, "{}", second.stderr);
    assert!(second.stderr.contains("another `cxflow serve` is already running"), "{}", second.stderr);

    // A broken edit is reported; the last good version keeps running.
    p.write("workflows/tick.yaml", "name: tick\nschedule:\n  cron: \"61 * * * *\"\nsteps: []\n");
    wait_for("the invalid file in the run log", Duration::from_secs(10), || {
        !p.query("SELECT id FROM runs WHERE error LIKE '%failed validation; the last good version keeps running%'").is_empty()
    });
    let skipped_before: usize = p.query("SELECT count(*) FROM runs WHERE status = 'skipped'")[0].parse().unwrap();
    wait_for("fires still handled after the broken edit", Duration::from_secs(10), || {
        let n: usize = p.query("SELECT count(*) FROM runs WHERE status = 'skipped'")[0].parse().unwrap();
        n > skipped_before + 1
    });

    // SIGTERM mid-run: no new runs, the run is marked interrupted, the process exits 0.
    assert_eq!(p.query(&format!("SELECT status FROM runs WHERE id = {run_id}")), vec!["running"]);
    #[allow(unsafe_code)]
    let r = unsafe { libc::kill(serve.0.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(r, 0);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = serve.0.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "serve did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = serve.0.wait_with_output_now();
    assert_eq!(status.code(), Some(0), "{out}");
    assert_eq!(p.query(&format!("SELECT status FROM runs WHERE id = {run_id}")), vec!["interrupted"], "{out}");
    assert!(p.query("SELECT id FROM runs WHERE status = 'running'").is_empty());
    // Not every item ran: the rest were left for a resume.
    let done: usize = p.query(&format!("SELECT count(*) FROM items WHERE run_id = {run_id}"))[0].parse().unwrap();
    assert!(done < 30, "{done} items done");
}

trait OutputNow {
    fn wait_with_output_now(&mut self) -> String;
}

impl OutputNow for Child {
    fn wait_with_output_now(&mut self) -> String {
        use std::io::Read;
        let mut s = String::new();
        if let Some(e) = self.stderr.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
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
    let child = p.cxflow().arg("serve").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let mut serve = Serve(child);
    let body = bodies.recv_timeout(Duration::from_secs(40)).expect("on_failure webhook");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["workflow"], "slow");
    assert_eq!(v["status"], "failed");
    assert!(v["message"].as_str().unwrap().contains("max_runtime of 1s"), "{v}");
    let run_id = v["run_id"].as_i64().unwrap();
    let row = p.query(&format!("SELECT status, error FROM runs WHERE id = {run_id}"));
    assert!(row[0].starts_with("failed|run exceeded max_runtime of 1s"), "{row:?}");
    // No smtp_url: the notification email lands in the outbox folder.
    wait_for("the on_failure email in the outbox", Duration::from_secs(10), || {
        std::fs::read_dir(p.path().join("outbox")).map(|d| d.count() > 0).unwrap_or(false)
    });
    let eml = std::fs::read_dir(p.path().join("outbox")).unwrap().next().unwrap().unwrap().path();
    let eml = std::fs::read_to_string(eml).unwrap();
    assert!(eml.contains("To: ops@example.com") && eml.contains("workflow `slow` failed"), "{eml}");
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(serve.0.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = serve.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_run_left_running_by_a_crash_is_resumed_with_resume_auto() {
    let p = support::script_project("id", (1..=12).map(|i| format!("r{i:02}")));
    p.write("workflows/tick.yaml", &TICK.replace("  overlap: skip\n", "  overlap: skip\n  resume: auto\n"));
    let child = p.cxflow().arg("serve").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let mut serve = Serve(child);
    wait_for("a running scheduled run with some items done", Duration::from_secs(30), || {
        p.db().exists() && !p.query("SELECT run_id FROM items i JOIN runs r ON r.id = i.run_id WHERE r.status = 'running'").is_empty()
    });
    let run_id = p.query("SELECT id FROM runs WHERE status = 'running'")[0].clone();
    // Crash: SIGKILL, nothing gets to clean up.
    serve.0.kill().unwrap();
    serve.0.wait().unwrap();
    assert_eq!(p.query(&format!("SELECT status FROM runs WHERE id = {run_id}")), vec!["running"]);

    let child = p.cxflow().arg("serve").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut serve = Serve(child);
    wait_for("the crashed run resumed and finished", Duration::from_secs(40), || {
        p.query(&format!("SELECT status, resumes FROM runs WHERE id = {run_id}")) == vec!["succeeded|1"]
    });
    let items: usize = p.query(&format!("SELECT count(*) FROM items WHERE run_id = {run_id} AND status = 'ok'"))[0].parse().unwrap();
    assert_eq!(items, 12);
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(serve.0.id() as libc::pid_t, libc::SIGTERM);
    }
    assert_eq!(serve.0.wait().unwrap().code(), Some(0));
}

#[test]
fn workflows_added_and_deleted_while_serving_take_effect_without_restart() {
    let p = TestProject::new();
    p.write("data/tickets.csv", "id\n1\n");
    std::fs::create_dir_all(p.path().join("workflows")).unwrap();
    let child = p.cxflow().arg("serve").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let mut serve = Serve(child);
    wait_for("the lock file", Duration::from_secs(20), || p.path().join("cxflow.sqlite.serve.lock").exists());
    std::thread::sleep(Duration::from_millis(500));
    p.write(
        "workflows/new.yaml",
        "name: new\nschedule:\n  cron: \"* * * * * *\"\nsteps:\n  - id: t\n    read_csv: data/tickets.csv\n",
    );
    wait_for("runs of the new workflow", Duration::from_secs(15), || {
        p.query("SELECT count(*) FROM runs WHERE workflow = 'new' AND status = 'succeeded'")[0].parse::<usize>().unwrap() >= 2
    });
    std::fs::remove_file(p.path().join("workflows/new.yaml")).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let before = p.query("SELECT count(*) FROM runs WHERE workflow = 'new'");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(p.query("SELECT count(*) FROM runs WHERE workflow = 'new'"), before, "no fires after the file was deleted");
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(serve.0.id() as libc::pid_t, libc::SIGTERM);
    }
    assert_eq!(serve.0.wait().unwrap().code(), Some(0));
}
