//! End to end: what cxflow writes to a terminal, and what it does when it cannot write at all.

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::TestProject;

fn slow_project(n: usize) -> TestProject {
    let p = support::script_project("id", (1..=n).map(|i| format!("r{i:02}")));
    p.write(
        "workflows/w.yaml",
        "name: w\nsteps:\n  - id: records\n    read_csv: data/records.csv\n  - id: act\n    for_each: records\n    item_key: \"{{item.id}}\"\n    command: [python3, script.py, \"{{item.id}}\", slow]\n",
    );
    p
}

/// stderr is a pipe whose reader has gone (a closed terminal, `2>&1 | head`, a stopped log
/// collector): every write fails with EPIPE. (Closing fd 2 itself is not this case: the Rust
/// runtime reopens a closed 0, 1 or 2 on /dev/null before `main`.)
#[test]
fn sigterm_with_stderr_closed_ends_the_run_interrupted_with_exit_130() {
    let p = slow_project(40);
    let mut child = p.cxflow().args(["run", "w"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stderr.take());
    support::wait_until(Duration::from_secs(60), "two items done", || p.count("SELECT count(*) FROM items WHERE status = 'ok'") >= 2);
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = support::wait_for_some(Duration::from_secs(60), "cxflow to exit after SIGTERM", || child.try_wait().unwrap());
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert_eq!(p.query("SELECT status FROM runs"), ["interrupted"]);
}
