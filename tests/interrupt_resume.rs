//! A run stopped in the middle (SIGKILL, SIGTERM) and resumed: every item ends done exactly once.
//! Each case runs on a SQLite run log (`CASE::sqlite`) and on PostgreSQL (`CASE::postgres`).

#[macro_use]
mod support;

use std::process::Stdio;
use std::time::Duration;

use support::backend::{Backend, LogProject};

const N: usize = 40;

fn project(b: Backend) -> LogProject {
    let p = LogProject::on(support::script_project("id", (1..=N).map(|i| format!("r{i:02}"))), b);
    p.write(
        "workflows/w.yaml",
        r#"name: w
steps:
  - id: records
    read_csv: data/records.csv
  - id: act
    for_each: records
    item_key: "{{item.id}}"
    command: [python3, script.py, "{{item.id}}", slow]
    concurrency: 2
"#,
    );
    p
}

/// Start a run and wait until at least `n` items are logged as done.
fn start_and_wait(p: &LogProject, n: usize) -> std::process::Child {
    let child = p.cxflow().args(["run", "w"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for_done(p, n);
    child
}

/// Waits until at least `n` items are logged as done. The run log is created by the run itself,
/// so until its tables exist there is nothing done yet (not an error).
fn wait_for_done(p: &LogProject, n: usize) {
    support::wait_until(Duration::from_secs(60), &format!("{n} items done in the run log (the run did not make progress)"), || {
        ok_count(p) >= n
    });
}

fn ok_count(p: &LogProject) -> usize {
    p.count("SELECT count(*) FROM items WHERE status = 'ok'")
}

fn marks(p: &LogProject) -> Vec<String> {
    std::fs::read_to_string(p.path().join("marks.txt")).unwrap_or_default().lines().map(String::from).collect()
}

on_both!(sigkill_mid_run_then_resume_completes_every_item_once_in_the_log);
fn sigkill_mid_run_then_resume_completes_every_item_once_in_the_log(b: Backend) {
    let p = project(b);
    let mut child = start_and_wait(&p, 6);
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    // The programs in flight outlive cxflow and may still append to marks.txt.
    p.p.wait_for_no_processes_inside(Duration::from_secs(30));
    let before: usize = p.query("SELECT count(*) FROM items WHERE status = 'ok'")[0].parse().unwrap();
    assert!(before < N, "the run finished before it was killed");
    assert_eq!(p.query("SELECT status FROM runs"), ["running"]);
    // Any command that reads the run log finds that the run's process is gone.
    let runs = p.run(&["runs"]);
    runs.expect_code(0);
    assert!(runs.stdout.contains("interrupted"), "{}", runs.stdout);
    assert_eq!(p.query("SELECT status FROM runs"), ["interrupted"]);
    let show = p.run(&["show", "1"]);
    assert!(show.stdout.contains("interrupted") && show.stdout.contains("resume with: cxflow resume 1"), "{}", show.stdout);

    let r = p.run(&["resume", "1"]);
    r.expect_code(0);
    assert_eq!(p.query("SELECT status, resumes FROM runs"), ["succeeded|1"]);
    // Each item has exactly one row, and all of them succeeded.
    assert_eq!(p.query("SELECT count(*), count(DISTINCT item_key) FROM items WHERE status = 'ok'"), [format!("{N}|{N}")]);
    // Side effects: everything logged as done before the kill was not redone; only items that were
    // in flight at the kill (at most `concurrency`) can have run twice.
    let m = marks(&p);
    let mut unique = m.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), N);
    assert!(m.len() - N <= 2, "{} duplicates", m.len() - N);
}

on_both!(sigterm_stops_gracefully_and_resume_does_each_item_exactly_once);
fn sigterm_stops_gracefully_and_resume_does_each_item_exactly_once(b: Backend) {
    let p = project(b);
    let child = start_and_wait(&p, 4);
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert_eq!(p.query("SELECT status FROM runs"), ["interrupted"]);
    let show = p.run(&["show", "1"]);
    assert!(show.stdout.contains("resume with: cxflow resume 1"), "{}", show.stdout);

    p.run(&["resume", "1"]).expect_code(0);
    let mut m = marks(&p);
    m.sort();
    let expected: Vec<String> = (1..=N).map(|i| format!("r{i:02}")).collect();
    assert_eq!(m, expected, "each item ran exactly once");
    assert_eq!(p.query("SELECT status FROM runs"), ["succeeded"]);
}

on_both!(ctrl_c_to_the_process_group_lets_items_in_flight_finish);
fn ctrl_c_to_the_process_group_lets_items_in_flight_finish(b: Backend) {
    use std::os::unix::process::CommandExt;
    let p = project(b);
    // A terminal's Ctrl-C goes to the whole foreground process group, the step's programs included.
    let child = p.cxflow().args(["run", "w"]).stdout(Stdio::null()).stderr(Stdio::null()).process_group(0).spawn().unwrap();
    wait_for_done(&p, 4);
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert_eq!(p.query("SELECT count(*) FROM items WHERE status = 'failed'"), ["0"], "items in flight were killed");
    p.run(&["resume", "1"]).expect_code(0);
    let mut m = marks(&p);
    m.sort();
    m.dedup();
    assert_eq!(m.len(), N);
}

on_both!(a_run_counts_as_dead_by_its_owners_lease_and_process_never_by_a_bare_pid);
fn a_run_counts_as_dead_by_its_owners_lease_and_process_never_by_a_bare_pid(b: Backend) {
    let p = LogProject::on(support::script_project("id", ["r1".to_string()]), b);
    p.write(
        "workflows/q.yaml",
        "name: q\nsteps:\n  - id: records\n    read_csv: data/records.csv\n  - id: act\n    for_each: records\n    item_key: \"{{item.id}}\"\n    command: [python3, script.py, \"{{item.id}}\"]\n",
    );
    p.run(&["run", "q"]).expect_code(0);
    let read = |f: &str| std::fs::read_to_string(f).unwrap().trim().to_string();
    let (host, boot) = (read("/proc/sys/kernel/hostname"), read("/proc/sys/kernel/random/boot_id"));
    // Run 2 "runs" as PID 1 of this machine: that PID is alive, but started at another time
    // than the owner recorded, so it is another process (a PID reused after a reboot).
    p.execute(&format!(
        "INSERT INTO owners (id, host, boot, pid, proc_start, started_at, heartbeat_at, expires_at)
         VALUES ('reused', '{host}', '{boot}', 1, 999999999, 'x', 'x', '2999-01-01T00:00:00.000Z')"
    ));
    // Run 3 runs on another machine whose lease holds: alive, whatever its PID means here.
    p.execute(
        "INSERT INTO owners (id, host, boot, pid, proc_start, started_at, heartbeat_at, expires_at)
         VALUES ('remote', 'other-host', 'b', 4242, NULL, 'x', 'x', '2999-01-01T00:00:00.000Z')",
    );
    for owner in ["reused", "remote"] {
        p.execute(&format!(
            "INSERT INTO runs (workflow, file, trigger, params, started_at, status, pid, owner)
             SELECT workflow, file, 'manual', params, started_at, 'running', 1, '{owner}' FROM runs WHERE id = 1"
        ));
    }
    p.run(&["runs"]).expect_code(0);
    assert_eq!(p.query("SELECT id, status FROM runs ORDER BY id"), ["1|succeeded", "2|interrupted", "3|running"]);
    let r = p.run(&["resume", "3"]);
    r.expect_code(2);
    assert!(r.stderr.contains("run 3 is still running in another process"), "{}", r.stderr);
    // Its lease lapses (the machine died): now it is taken for dead, and resumable.
    p.execute("UPDATE owners SET expires_at = '2000-01-01T00:00:00.000Z' WHERE id = 'remote'");
    p.run(&["resume", "3"]).expect_code(0);
    assert_eq!(p.query("SELECT status FROM runs WHERE id = 3"), ["succeeded"]);
}
