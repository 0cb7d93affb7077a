//! One scheduler per run log, however the run log is spelled: two real `cxflow serve` processes
//! whose projects name the same SQLite file differently (one through a symlink).

mod support;

use std::time::Duration;

use support::serve::Serve;
use support::{wait_for_some, wait_until, TestProject};

fn project() -> TestProject {
    let p = TestProject::new();
    p.write("data/t.csv", "id\n1\n");
    p.write("workflows/w.yaml", "name: w\nsteps:\n  - id: t\n    read_csv: data/t.csv\n");
    p
}

#[test]
fn a_second_serve_on_the_same_run_log_through_a_symlink_is_refused() {
    let a = project();
    let (first, _logs) = Serve::in_project(&a);
    let lock = a.path().join("cxflow.sqlite.serve.lock");
    wait_until(Duration::from_secs(30), "the first serve to hold its lock", || {
        std::fs::read_to_string(&lock).is_ok_and(|s| s.starts_with("pid "))
    });

    // Project b's run log is a's file, named through a symlink in b's folder.
    let b = project();
    std::os::unix::fs::symlink(a.db(), b.path().join("shared.sqlite")).unwrap();
    b.write("cxflow.yaml", "database_url: sqlite://shared.sqlite\n");
    let (mut second, logs) = Serve::in_project(&b);
    let status = wait_for_some(Duration::from_secs(30), "the second serve to exit", || second.0.try_wait().unwrap());
    assert_eq!(status.code(), Some(2), "{}", logs.text());
    wait_until(Duration::from_secs(10), "the refusal on stderr", || logs.text().contains("another `cxflow serve` is already running"));
    assert!(logs.text().contains(&format!("pid {}", first.0.id())), "{}", logs.text());
    assert!(!b.path().join("shared.sqlite.serve.lock").exists(), "no lock beside the symlink");
}
