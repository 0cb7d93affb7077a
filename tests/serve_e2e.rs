//! `cxflow serve` end to end: the real binary on an every-second schedule, a real SQLite run
//! log, a second scheduler refused, a broken file hot-reloaded, SIGTERM mid-run.

mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::TestProject;

const SCRIPT: &str = include_str!("support/script.py");

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
    let p = TestProject::new();
    p.write("script.py", SCRIPT);
    let mut csv = String::from("id\n");
    for i in 1..=30 {
        csv.push_str(&format!("r{i:02}\n"));
    }
    p.write("data/records.csv", &csv);
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
