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

/// An escape sequence that would retitle the terminal window, and one that clears the screen.
const HOSTILE: &str = "r1\u{1b}]0;pwned\u{7}\u{1b}[2J";

#[test]
fn record_data_reaches_the_terminal_with_its_control_characters_escaped() {
    let p = support::script_project("id,mode", [format!("{HOSTILE},fail"), "r2,ok".to_string()]);
    p.write(
        "workflows/w.yaml",
        "name: w\nparams:\n  note: \"\"\nsteps:\n  - id: records\n    read_csv: data/records.csv\n  - id: act\n    for_each: records\n    item_key: \"{{item.id}}\"\n    command: [python3, script.py, \"{{item.id}}\", \"{{item.mode}}\"]\n",
    );
    let note = format!("note={HOSTILE}");
    let run = p.run(&["run", "w", "--var", &note]);
    run.expect_code(1);
    let show = p.run(&["show", "1"]);
    show.expect_code(0);
    let escaped = "r1\\x1b]0;pwned\\x07\\x1b[2J";
    for (what, out) in [("run", &run.stdout), ("show", &show.stdout)] {
        assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{what} printed a raw escape sequence:\n{out:?}");
    }
    let failed = format!("act {escaped} (attempts 1): `python3` exited with status 1: record {escaped} rejected");
    assert!(show.stdout.contains(&failed), "{}", show.stdout);
    // JSON is escaped by JSON: the same text, not a second escaping.
    let json = p.run(&["show", "1", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["failed_items"][0]["item_key"], HOSTILE, "{}", json.stdout);
}
