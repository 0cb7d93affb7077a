//! Items spread over nodes (`spread_items: true`) on a real PostgreSQL: a `cxflow run` (the
//! run's node) and `cxflow worker` processes, each in its own project folder with the same
//! files, share one run's items. Judged from the other side: the lines the commands appended
//! (with the PID of the node that ran them), the messages at the SMTP server, the rows in
//! PostgreSQL. A worker killed with `kill -9` loses nothing and its items are finished by the
//! others soon after its lease; a worker paused past its lease cannot record what was taken over.

#[path = "support/smtp.rs"]
mod smtp;
mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use smtp::SmtpSink;
use support::pg_log::PgLog;
use support::serve::{Logs, Serve};
use support::{wait_for_some, wait_until, TestProject};

const LEASE_MS: u64 = 1500;

/// Appends `ID PID` to the shared file: which item ran, and on which node (the program's parent).
const COMMANDS: &str = r#"name: spread
vars:
  out: "{out}"
steps:
  - id: records
    read_csv: data/records.csv
  - id: act
    for_each: records
    item_key: "{{item.id}}"
    command: [sh, -c, 'sleep {sleep}; echo "$1 $PPID" >> "$2"; echo "$PPID"', sh, "{{item.id}}", "{{vars.out}}"]
    concurrency: {concurrency}
"#;

struct Cluster {
    pg: PgLog,
    projects: Vec<TestProject>,
    out: PathBuf,
    lease_ms: u64,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// `nodes` project folders with the same files: a workflow over `n` records.
    fn new(nodes: usize, n: usize, sleep: &str, concurrency: usize) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.txt");
        let wf = COMMANDS
            .replace("{out}", &out.display().to_string())
            .replace("{sleep}", sleep)
            .replace("{concurrency}", &concurrency.to_string());
        let csv: String = std::iter::once("id\n".to_string()).chain((1..=n).map(|i| format!("r{i}\n"))).collect();
        let projects = (0..nodes)
            .map(|_| {
                let p = TestProject::new();
                p.write("workflows/spread.yaml", &wf);
                p.write("data/records.csv", &csv);
                p.write("cxflow.yaml", "spread_items: true\nshutdown_grace: 5s\n");
                p
            })
            .collect();
        Cluster { pg: PgLog::fresh(), projects, out, lease_ms: LEASE_MS, _dir: dir }
    }

    fn cmd(&self, node: usize) -> std::process::Command {
        let mut c = self.pg.cxflow(&self.projects[node]);
        c.env("CXFLOW_LEASE_MS", self.lease_ms.to_string());
        c
    }

    fn worker(&self, node: usize) -> (Serve, Logs) {
        Serve::start_args(self.cmd(node), &["worker"])
    }

    fn origin(&self) -> (Serve, Logs) {
        Serve::start_args(self.cmd(0), &["run", "spread"])
    }

    /// (item id, pid) per line the commands appended so far.
    fn lines(&self) -> Vec<(String, u32)> {
        lines_of(&self.out)
    }
}

fn lines_of(out: &Path) -> Vec<(String, u32)> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        // A line being appended right now may be cut short: only whole ones count.
        .filter_map(|l| {
            let (id, pid) = l.split_once(' ')?;
            Some((id.to_string(), pid.parse().ok()?))
        })
        .collect()
}

/// The nodes each item ran on. A program the killed node had just started, before its shell
/// read `$PPID`, finds its parent gone and reports its new one (init, or a subreaper): only the
/// killed node leaves orphans, so a PID that is none of the live nodes' is the killed one's.
fn ran_on(lines: &[(String, u32)], live: &[u32], killed: u32) -> HashMap<String, Vec<u32>> {
    let mut by_id: HashMap<String, Vec<u32>> = HashMap::new();
    for (id, pid) in lines {
        by_id.entry(id.clone()).or_default().push(if live.contains(pid) { *pid } else { killed });
    }
    by_id
}

fn ended(s: &mut Serve, deadline: Duration, what: &str) -> i32 {
    wait_for_some(deadline, what, || s.0.try_wait().unwrap()).code().unwrap_or(-1)
}

fn owner_of(pg: &PgLog, pid: u32) -> String {
    pg.wait_for_rows(Duration::from_secs(30), "the node registered", &format!("SELECT id FROM owners WHERE pid = {pid}")).remove(0)
}

#[test]
fn three_nodes_share_3000_items_and_a_worker_killed_mid_run_loses_none() {
    const N: usize = 3000;
    const CONCURRENCY: usize = 8;
    let c = Cluster::new(3, N, "0.02", CONCURRENCY);
    let (mut b, b_logs) = c.worker(1);
    let (mut w, w_logs) = c.worker(2);
    let (mut origin, origin_logs) = c.origin();
    let (origin_pid, b_pid, w_pid) = (origin.0.id(), b.0.id(), w.0.id());
    // Mid-run, with the worker to kill busy.
    wait_until(Duration::from_secs(120), "the worker to run 100 items and the run to reach 600", || {
        let l = c.lines();
        l.len() >= 600 && l.iter().filter(|(_, p)| *p == b_pid).count() >= 100
    });
    let b_owner = owner_of(&c.pg, b_pid);
    b.0.kill().unwrap();
    b.0.wait().unwrap();
    let killed = Instant::now();
    let held = c.pg.count(&format!("SELECT count(*) FROM work_items WHERE owner = '{b_owner}' AND state = 'claimed'"));
    // The dead node's items are taken over once its lease lapses (plus a margin for a busy machine).
    wait_until(Duration::from_secs(60), "the killed worker's items taken over", || {
        c.pg.count(&format!("SELECT count(*) FROM work_items WHERE owner = '{b_owner}' AND state = 'claimed'")) == 0
    });
    let taken_over = killed.elapsed();
    assert!(taken_over < Duration::from_millis(LEASE_MS) + Duration::from_secs(15), "took {taken_over:?} ({held} held)");

    let code = ended(&mut origin, Duration::from_secs(300), "the run to end");
    assert_eq!(code, 0, "{}", origin_logs.text());
    assert_eq!(c.pg.query("SELECT status FROM runs"), ["succeeded"]);
    assert_eq!(c.pg.query("SELECT count(*), count(DISTINCT item_key) FROM items WHERE status = 'ok'"), [format!("{N}|{N}")]);
    assert_eq!(c.pg.query("SELECT ok, failed FROM steps WHERE step_id = 'act'"), [format!("{N}|0")]);
    // From the other side: every item ran; one ran twice only if the killed node was running it.
    let lines = c.lines();
    let by_id = ran_on(&lines, &[origin_pid, w_pid], b_pid);
    assert_eq!(by_id.len(), N, "lost: {}", N - by_id.len());
    let twice: Vec<_> = by_id.iter().filter(|(_, p)| p.len() > 1).collect();
    // Those it held when it died (running, or run and not yet recorded), at most.
    assert!(twice.len() <= held, "{} ran twice, {held} held: {twice:?}", twice.len());
    for (id, pids) in &twice {
        assert!(pids.len() == 2 && pids.contains(&b_pid), "{id} ran on {pids:?}");
    }
    // All three nodes did a share; the stored output names the node that recorded the item.
    for pid in [origin_pid, b_pid, w_pid] {
        assert!(lines.iter().any(|(_, p)| *p == pid), "node {pid} ran nothing");
    }
    let recorded_by: Vec<String> = c.pg.query("SELECT DISTINCT output FROM items WHERE status = 'ok'");
    assert!(recorded_by.iter().any(|o| o.contains(&w_pid.to_string())), "{recorded_by:?}");
    // The queue is gone with the step.
    assert_eq!(c.pg.count("SELECT count(*) FROM work_items") + c.pg.count("SELECT count(*) FROM work_steps"), 0);
    // `cxflow nodes` lists the killed worker as gone once its lease lapsed.
    w.sigterm();
    assert_eq!(ended(&mut w, Duration::from_secs(30), "the worker to stop"), 0, "{}", w_logs.text());
    drop(b_logs);
}

#[test]
fn a_worker_paused_past_its_lease_records_nothing_for_the_items_taken_over() {
    const N: usize = 40;
    let c = Cluster::new(2, N, "0.4", 2);
    let (mut b, b_logs) = c.worker(1);
    let b_owner_pid = b.0.id();
    let (mut origin, origin_logs) = c.origin();
    let b_owner = owner_of(&c.pg, b_owner_pid);
    // `cxflow nodes` shows the worker holding items.
    wait_until(Duration::from_secs(60), "`cxflow nodes` to list the worker with items", || {
        let out = c.pg.cxflow(&c.projects[1]).args(["nodes", "--json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v.as_array().into_iter().flatten().any(|n| n["pid"] == b_owner_pid && n["alive"] == true && n["items_claimed"].as_i64() > Some(0))
    });
    // Paused while it holds items, and not in the middle of a transaction (its row locks would
    // hide the items from everyone until it wakes): what it holds is read once it cannot change.
    let in_transaction = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'";
    let held: Vec<String> = wait_for_some(Duration::from_secs(60), "the worker to be paused holding items", || {
        b.signal(libc::SIGSTOP);
        let rows = c.pg.query(&format!("SELECT item_key FROM work_items WHERE owner = '{b_owner}' AND state = 'claimed' ORDER BY seq"));
        if rows.is_empty() || c.pg.count(in_transaction) > 0 {
            b.signal(libc::SIGCONT);
            return None;
        }
        Some(rows)
    });
    // Its claims lapse; the run's node takes them over and records them.
    let list = held.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(",");
    wait_until(Duration::from_secs(60), "the paused worker's items recorded by the other node", || {
        c.pg.count(&format!("SELECT count(*) FROM items WHERE item_key IN ({list}) AND status = 'ok'")) == held.len()
    });
    let left = c.pg.count("SELECT count(*) FROM work_items WHERE state <> 'done'");
    b.signal(libc::SIGCONT);
    // Awake, its programs long finished, it tries to record them: refused.
    wait_until(Duration::from_secs(60), "the woken worker to be refused", || b_logs.count(&["claim on them lapsed"]) > 0);
    assert_eq!(ended(&mut origin, Duration::from_secs(120), "the run to end"), 0, "{}", origin_logs.text());
    assert!(left > 0, "the run was still going when the worker woke");
    // One result per item; the ones the paused worker held were recorded by the run's node.
    assert_eq!(
        c.pg.query("SELECT count(*), count(DISTINCT item_key), sum(attempts)::bigint FROM items WHERE status = 'ok'"),
        [format!("{N}|{N}|{N}")]
    );
    let origin_pid = origin.0.id().to_string();
    for k in &held {
        let out = c.pg.query(&format!("SELECT output FROM items WHERE item_key = '{k}'"));
        assert!(out[0].contains(&origin_pid), "{k}: {out:?}");
    }
    b.sigterm();
    assert_eq!(ended(&mut b, Duration::from_secs(30), "the worker to stop"), 0, "{}", b_logs.text());
}

const EMAILS: &str = r#"name: mail
steps:
  - id: closed
    read_csv: data/closed.csv
  - id: follow_up
    for_each: closed
    item_key: "{{item.ticket_id}}"
    concurrency: 8
    send_email:
      to: "{{item.name}} <{{item.email}}>"
      from: "Acme Support <support@acme.example>"
      subject: "Ticket {{item.ticket_id}}"
      template: follow_up
      idempotency_key: "follow-up/{{item.ticket_id}}"
"#;

#[test]
fn a_2000_email_run_over_three_nodes_with_a_worker_killed_sends_each_email_once() {
    const N: usize = 2000;
    let server = SmtpSink::start();
    let pg = PgLog::fresh();
    let mut csv = String::from("ticket_id,name,email\n");
    for i in 0..N {
        csv.push_str(&format!("T{i},Customer {i},c{i}@example.org\n"));
    }
    let projects: Vec<TestProject> = (0..3)
        .map(|_| {
            let p = TestProject::new();
            p.write("workflows/mail.yaml", EMAILS);
            p.write("templates/follow_up.txt.hbs", "Hi {{item.name}},\nhow did we do on ticket {{item.ticket_id}}?\n");
            p.write("data/closed.csv", &csv);
            p.write("cxflow.yaml", "spread_items: true\nshutdown_grace: 5s\nsmtp_pool_size: 4\n");
            p
        })
        .collect();
    let cmd = |i: usize| {
        let mut c = pg.cxflow(&projects[i]);
        c.env("CXFLOW_LEASE_MS", LEASE_MS.to_string()).env("CXFLOW_SMTP_URL", server.url());
        c
    };
    let (mut b, _b_logs) = Serve::start_args(cmd(1), &["worker"]);
    let (mut w, w_logs) = Serve::start_args(cmd(2), &["worker"]);
    let (mut origin, origin_logs) = Serve::start_args(cmd(0), &["run", "mail"]);
    let b_owner = owner_of(&pg, b.0.id());
    wait_until(Duration::from_secs(120), "the worker to send 50 and the run 400", || {
        server.count() >= 400 && pg.count(&format!("SELECT count(*) FROM ledger WHERE owner = '{b_owner}' AND state = 'sent'")) >= 50
    });
    b.0.kill().unwrap();
    b.0.wait().unwrap();
    let code = ended(&mut origin, Duration::from_secs(300), "the run to end");
    // Counted at the server, per recipient.
    let mut got: HashMap<String, usize> = HashMap::new();
    for m in server.messages() {
        for r in m.to {
            *got.entry(r).or_default() += 1;
        }
    }
    let uncertain: Vec<String> = pg.query("SELECT item_key FROM items WHERE status = 'failed' AND error LIKE '%uncertain%'");
    let failed = pg.count("SELECT count(*) FROM items WHERE status = 'failed'");
    assert_eq!(failed, uncertain.len(), "only uncertain deliveries fail: {}", origin_logs.text());
    // The run tells the truth: green only with nothing uncertain.
    assert_eq!(code, if uncertain.is_empty() { 0 } else { 1 }, "{}", origin_logs.text());
    // Skipped: the killed worker had sent it and the ledger said so to the node that took it over.
    let ok: Vec<String> = pg.query("SELECT item_key FROM items WHERE status IN ('ok', 'skipped')");
    assert_eq!(ok.len() + uncertain.len(), N);
    for k in &ok {
        let i: usize = k.trim_start_matches('T').parse().unwrap();
        assert_eq!(got.get(&format!("c{i}@example.org")), Some(&1), "{k} recorded sent: delivered once");
    }
    let lost = (0..N).filter(|i| !got.contains_key(&format!("c{i}@example.org")) && !uncertain.contains(&format!("T{i}"))).count();
    let duplicated: usize = got.values().map(|n| n - 1).sum();
    assert_eq!(lost, 0);
    assert!(duplicated <= uncertain.len(), "{duplicated} duplicated, {} uncertain", uncertain.len());
    // The ledger agrees: every delivery is in it, sent or (uncertain) still claimed.
    assert_eq!(pg.count("SELECT count(*) FROM ledger"), N);
    // The worker that lived did its share.
    let w_owner = owner_of(&pg, w.0.id());
    assert!(pg.count(&format!("SELECT count(*) FROM ledger WHERE owner = '{w_owner}'")) > 0);
    w.sigterm();
    assert_eq!(ended(&mut w, Duration::from_secs(30), "the worker to stop"), 0, "{}", w_logs.text());
}

#[test]
fn the_runs_node_killed_mid_run_is_resumed_by_a_serve_node_and_nothing_is_lost() {
    const N: usize = 1500;
    const CONCURRENCY: usize = 8;
    let mut c = Cluster::new(3, N, "0.02", CONCURRENCY);
    // Two takeovers are right when the resuming node's lease lapses too, but then the counts
    // below would not be this test's: a lease a loaded machine's heartbeats keep.
    c.lease_ms = 4000;
    // A schedule that does not fire during the test, for `resume: auto`.
    let wf = std::fs::read_to_string(c.projects[0].path().join("workflows/spread.yaml"))
        .unwrap()
        .replace("name: spread\n", "name: spread\nschedule:\n  cron: \"0 0 1 1 *\"\n  resume: auto\n");
    for p in &c.projects {
        p.write("workflows/spread.yaml", &wf);
    }
    let (mut s1, s1_logs) = Serve::start(c.cmd(1));
    let (mut s2, s2_logs) = Serve::start(c.cmd(2));
    let (mut origin, _origin_logs) = c.origin();
    let origin_pid = origin.0.id();
    wait_until(Duration::from_secs(120), "the run's node to run 100 items and the run to reach 400", || {
        let l = c.lines();
        l.len() >= 400 && l.iter().filter(|(_, p)| *p == origin_pid).count() >= 100
    });
    let origin_owner = owner_of(&c.pg, origin_pid);
    origin.0.kill().unwrap();
    origin.0.wait().unwrap();
    let held = c.pg.count(&format!("SELECT count(*) FROM work_items WHERE owner = '{origin_owner}' AND state = 'claimed'"));
    // A serve node finds the run's node gone, and resumes the run: it is the run's node now.
    let status = wait_for_some(Duration::from_secs(180), "the run resumed and ended", || {
        let r = c.pg.query("SELECT status, resumes FROM runs");
        (r[0] != "running|0" && !r[0].starts_with("running") && !r[0].starts_with("interrupted")).then(|| r[0].clone())
    });
    assert_eq!(status, "succeeded|1", "{}\n{}", s1_logs.text(), s2_logs.text());
    assert_eq!(c.pg.query("SELECT count(*), count(DISTINCT item_key) FROM items WHERE status = 'ok'"), [format!("{N}|{N}")]);
    let by_id = ran_on(&c.lines(), &[s1.0.id(), s2.0.id()], origin_pid);
    assert_eq!(by_id.len(), N, "lost: {}", N - by_id.len());
    let twice: Vec<_> = by_id.iter().filter(|(_, p)| p.len() > 1).collect();
    assert!(twice.len() <= held, "{} ran twice, {held} held: {twice:?}", twice.len());
    for (id, pids) in &twice {
        assert!(pids.len() == 2 && pids.contains(&origin_pid), "{id} ran on {pids:?}");
    }
    assert_eq!(c.pg.count("SELECT count(*) FROM work_items") + c.pg.count("SELECT count(*) FROM work_steps"), 0);
    for (s, logs) in [(&mut s1, &s1_logs), (&mut s2, &s2_logs)] {
        s.sigterm();
        assert_eq!(ended(s, Duration::from_secs(30), "serve to stop"), 0, "{}", logs.text());
    }
}
