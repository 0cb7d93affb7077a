//! Several `cxflow serve` nodes on one PostgreSQL run log: three real processes, each with its
//! own project folder holding the same workflow, firing every second. Every scheduled instant
//! gets exactly one run row, counted in PostgreSQL, and the command ran once per succeeded run
//! (the lines it appended in the three folders); a node killed with `kill -9` leaves no instant
//! missing, and the run it was in the middle of is resumed by another node.

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use support::pg_log::PgLog;
use support::serve::{Logs, Serve};
use support::{wait_for_some, wait_until, TestProject};

/// Every second; long enough a step that a node is often in the middle of one.
const TICK: &str = r#"name: tick
schedule:
  cron: "* * * * * *"
  overlap: skip
  resume: auto
steps:
  - id: hello
    command: [sh, -c, "sleep 0.3; echo fired >> fired.txt"]
"#;

struct Node {
    project: TestProject,
    serve: Serve,
    logs: Logs,
}

fn node(pg: &PgLog, workflow: &str) -> Node {
    let project = TestProject::new();
    project.write("workflows/tick.yaml", workflow);
    project.write("cxflow.yaml", "shutdown_grace: 2s\n");
    let mut cmd = pg.cxflow(&project);
    cmd.env("CXFLOW_LEASE_MS", "1500");
    let (serve, logs) = Serve::start(cmd);
    Node { project, serve, logs }
}

fn instants(pg: &PgLog) -> usize {
    pg.count("SELECT count(DISTINCT scheduled_for) FROM runs WHERE workflow = 'tick' AND trigger = 'schedule'")
}

fn stop(nodes: &mut [Node]) {
    for n in nodes.iter() {
        n.serve.sigterm();
    }
    for n in nodes.iter_mut() {
        let status = wait_for_some(Duration::from_secs(30), "serve to stop after SIGTERM", || n.serve.0.try_wait().unwrap());
        assert_eq!(status.code(), Some(0), "{}", n.logs.text());
    }
}

/// (pid, alive) of each process `cxflow nodes --json` lists, asked from `project`.
fn listed_nodes(pg: &PgLog, project: &TestProject, all: bool) -> Vec<(u32, bool)> {
    let mut cmd = pg.cxflow(project);
    cmd.args(["nodes", "--json"]);
    if all {
        cmd.arg("--all");
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut pids: Vec<(u32, bool)> =
        v.as_array().unwrap().iter().map(|n| (n["pid"].as_u64().unwrap() as u32, n["alive"].as_bool().unwrap())).collect();
    pids.sort();
    pids
}

/// Every fire ran or was skipped by overlap (a slow machine), never anything else; the shutdown
/// may have cut the last ones short (interrupted within 5 s of the last instant).
#[track_caller]
fn ran_or_skipped(rows: &[(DateTime<Utc>, usize, String)]) {
    let last = rows.last().unwrap().0;
    for (t, _, status) in rows {
        assert!(
            status == "succeeded" || status == "skipped" || (status == "interrupted" && last - *t <= chrono::Duration::seconds(5)),
            "{t}: {status}"
        );
    }
}

fn fired_lines(nodes: &[&TestProject]) -> usize {
    nodes.iter().map(|p| std::fs::read_to_string(p.path().join("fired.txt")).unwrap_or_default().lines().count()).sum()
}

/// Rows per scheduled instant, from the run log: (instant, rows, statuses).
fn per_instant(pg: &PgLog) -> Vec<(DateTime<Utc>, usize, String)> {
    pg.query(
        "SELECT scheduled_for, count(*), string_agg(status, ',') FROM runs WHERE workflow = 'tick' AND trigger = 'schedule'
         GROUP BY scheduled_for ORDER BY scheduled_for",
    )
    .into_iter()
    .map(|r| {
        let mut f = r.split('|');
        let t = DateTime::parse_from_rfc3339(f.next().unwrap()).unwrap().with_timezone(&Utc);
        (t, f.next().unwrap().parse().unwrap(), f.next().unwrap().to_string())
    })
    .collect()
}

/// Exactly one row per instant, every second from the first to the last.
#[track_caller]
fn one_run_per_instant(pg: &PgLog, at_least: usize) -> Vec<(DateTime<Utc>, usize, String)> {
    let rows = per_instant(pg);
    assert!(rows.len() >= at_least, "{} instants: {rows:?}", rows.len());
    for (t, n, statuses) in &rows {
        assert_eq!(*n, 1, "instant {t} has {n} rows ({statuses})");
    }
    for w in rows.windows(2) {
        assert_eq!(w[1].0 - w[0].0, chrono::Duration::seconds(1), "an instant missing between {} and {}", w[0].0, w[1].0);
    }
    rows
}

#[test]
fn three_nodes_run_each_fire_once() {
    let pg = PgLog::fresh();
    let mut nodes: Vec<Node> = (0..3).map(|_| node(&pg, TICK)).collect();
    wait_until(Duration::from_secs(60), "30 fires", || instants(&pg) >= 30);
    stop(&mut nodes);

    let rows = one_run_per_instant(&pg, 30);
    ran_or_skipped(&rows);
    let skipped = pg.query("SELECT error FROM runs WHERE status = 'skipped'");
    assert!(skipped.iter().all(|e| e.contains("(overlap: skip)")), "{skipped:?}");
    // The command ran once per succeeded run, on whichever node had the fire (and perhaps in a
    // run the shutdown marked interrupted after its command ended).
    let succeeded = pg.count("SELECT count(*) FROM runs WHERE status = 'succeeded'");
    let interrupted = pg.count("SELECT count(*) FROM runs WHERE status = 'interrupted'");
    assert!(succeeded >= 25, "{succeeded} succeeded: {rows:?}");
    let lines = fired_lines(&nodes.iter().map(|n| &n.project).collect::<Vec<_>>());
    assert!((succeeded..=succeeded + interrupted).contains(&lines), "{lines} lines, {succeeded} succeeded: {rows:?}");
    // The nodes lost claims to each other and said so.
    let lost: usize = nodes.iter().map(|n| n.logs.count(&["fire already claimed by another node"])).sum();
    assert!(lost > 0, "{}", nodes[0].logs.text());
    assert!(pg.query("SELECT id FROM runs WHERE status = 'running'").is_empty());
    assert_eq!(pg.count("SELECT count(*) FROM runs WHERE spec_hash IS NULL"), 0);
}

#[test]
fn a_node_killed_midway_leaves_no_fire_missing_or_doubled() {
    let pg = PgLog::fresh();
    let mut nodes: Vec<Node> = (0..3).map(|_| node(&pg, TICK)).collect();
    wait_until(Duration::from_secs(40), "8 fires", || instants(&pg) >= 8);
    // `cxflow nodes` lists the three, alive.
    let mut serving: Vec<(u32, bool)> = nodes.iter().map(|n| (n.serve.0.id(), true)).collect();
    serving.sort();
    assert_eq!(listed_nodes(&pg, &nodes[1].project, false), serving);
    // Kill a node while it is in the middle of a run it claimed: whichever node that is (on a
    // loaded machine one node can win every claim for a while), moved to `nodes[0]`.
    let pids = serving.iter().map(|(p, _)| p.to_string()).collect::<Vec<_>>().join(",");
    let (run, victim) = wait_for_some(Duration::from_secs(30), "a node in the middle of a run", || {
        let r = pg.query(&format!(
            "SELECT r.id, o.pid FROM runs r JOIN owners o ON o.id = r.owner WHERE o.pid IN ({pids}) AND r.status = 'running' ORDER BY r.id DESC LIMIT 1"
        ));
        let (run, pid) = r.first()?.split_once('|')?;
        Some((run.to_string(), pid.parse::<u32>().ok()?))
    });
    let i = nodes.iter().position(|n| n.serve.0.id() == victim).expect("the run's owner is one of the nodes");
    nodes.swap(0, i);
    #[allow(unsafe_code)]
    let r = unsafe { libc::kill(victim as libc::pid_t, libc::SIGKILL) };
    assert_eq!(r, 0);
    nodes[0].serve.0.wait().unwrap();
    let killed_at = instants(&pg);
    // On this machine a dead node is seen at once, before its lease runs out.
    let listed = listed_nodes(&pg, &nodes[1].project, true);
    assert!(listed.contains(&(victim, false)), "{listed:?}");
    assert!(!listed_nodes(&pg, &nodes[1].project, false).iter().any(|(p, _)| *p == victim));

    // Another node finds its run once the owner is gone, marks it interrupted and resumes it.
    let done = pg.wait_for_rows(
        Duration::from_secs(30),
        "the killed node's run resumed by another node",
        &format!("SELECT status, resumes FROM runs WHERE id = {run} AND status = 'succeeded'"),
    );
    assert_eq!(done, ["succeeded|1"]);
    wait_until(Duration::from_secs(40), "30 fires", || instants(&pg) >= 30.max(killed_at + 10));
    let mut alive: Vec<Node> = nodes.drain(1..).collect();
    stop(&mut alive);

    let rows = one_run_per_instant(&pg, 30);
    ran_or_skipped(&rows);
    // Resumed once, by one node: the resume of two nodes at once is refused to all but one.
    let resumed: usize = alive.iter().map(|n| n.logs.count(&["resuming a run another node left interrupted"])).sum();
    assert_eq!(resumed, 1, "{}\n{}", alive[0].logs.text(), alive[1].logs.text());
    assert_eq!(pg.count("SELECT count(*) FROM runs WHERE resumes > 0"), 1);
    // The killed node's command may have finished after it died (its `sh` outlived it) and ran
    // again in the resume (a command step is not exactly-once; deliveries are): at most one line
    // more than succeeded runs, and one per run the shutdown cut short after its command.
    let succeeded = pg.count("SELECT count(*) FROM runs WHERE status = 'succeeded'");
    let interrupted = pg.count("SELECT count(*) FROM runs WHERE status = 'interrupted'");
    let lines = fired_lines(&[&nodes[0].project, &alive[0].project, &alive[1].project]);
    assert!((succeeded..=succeeded + interrupted + 1).contains(&lines), "{lines} lines, {succeeded} succeeded: {rows:?}");
    assert!(pg.query("SELECT id FROM runs WHERE status = 'running'").is_empty());
}

#[test]
fn a_workflow_file_that_differs_between_nodes_is_reported_and_still_runs_once() {
    let pg = PgLog::fresh();
    let other = TICK.replace("echo fired", "echo fired  ");
    let mut nodes = vec![node(&pg, TICK), node(&pg, &other)];
    wait_until(Duration::from_secs(40), "a node to report the other's file", || {
        nodes.iter().any(|n| n.logs.count(&["differs between this node"]) > 0)
    });
    wait_until(Duration::from_secs(40), "10 fires", || instants(&pg) >= 10);
    stop(&mut nodes);
    one_run_per_instant(&pg, 10);
    let line = nodes
        .iter()
        .flat_map(|n| n.logs.text().lines().map(String::from).collect::<Vec<_>>())
        .find(|l| l.contains("differs between this node"))
        .unwrap();
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("workflows/tick.yaml"), "{line}");
    assert!(line.contains("this_host=") && line.contains("other_host="), "{line}");
    assert_eq!(pg.count("SELECT count(DISTINCT spec_hash) FROM runs"), 2);
}
