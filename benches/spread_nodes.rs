//! Items per second as nodes are added (issue 12): one run's items spread over 1, 2 and 4 nodes
//! on one PostgreSQL. The run's node is `cxflow run`, the others `cxflow worker`, each a process
//! in a project folder of its own with the same files (`spread_items: true`). Each item is an
//! email to a loopback SMTP server that answers every message 50 ms after its data, as a server
//! that scans and queues mail would: the items are I/O-bound, at concurrency 8 per node. Counted
//! from the other side: every message arrived once, and each node's share by its sender
//! address (`node<N>@acme.example`).
//!
//! Then the coordination cost per item: on its own database, a shared step's items queued in
//! the engine's chunks of 500, then claimed in batches of 16 (concurrency 8 × 2, what a node
//! claims) and their results recorded under the claim's token, by 1 and 4 stores at once, as
//! fast as they go with no work per item: the time a node spends per item on coordination.
//!
//!   cargo bench --bench spread_nodes
//!   cargo bench --bench spread_nodes -- --nodes 1,2,4 --items 8000 --rounds 1 --bin PATH
//!   cargo bench --bench spread_nodes -- --coordination-only
//!
//! The PostgreSQL server is a throwaway one on loopback with its default settings (it syncs
//! every commit); `SPREAD_BENCH_PG='-c …'` adds server options, e.g. `auto_explain` to see
//! slow plans. Prints figures; asserts only that nothing was lost or sent twice.

#[path = "../tests/support/postgres.rs"]
mod postgres;
#[path = "../tests/support/smtp.rs"]
mod smtp;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cxflow::engine::log::{QueuedItem, SharedStep};
use cxflow::store::{ItemResult, ItemStatus, NewRun, Store, TriggerKind};
use postgres::Postgres;

const CONCURRENCY: usize = 8;
const ANSWER_AFTER: Duration = Duration::from_millis(50);

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok())
}

fn psql(url: &str, sql: &str) -> Vec<String> {
    let out = Command::new("psql").args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql, url]).output().expect("psql");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

fn fresh_db(pg: &Postgres, name: &str) -> String {
    psql(&pg.url(), &format!("CREATE DATABASE {name}"));
    format!("postgres://cx@127.0.0.1:{}/{name}", pg.port)
}

/// Node `node`'s project: its emails go out from `node<N>@acme.example`, so the server can tell
/// which node sent each.
fn project(dir: &Path, smtp_url: &str, items: usize, node: usize) {
    std::fs::create_dir_all(dir.join("workflows")).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    let mut csv = String::from("ticket_id,name,email\n");
    for i in 0..items {
        csv.push_str(&format!("{},Customer {i},c{i}@example.org\n", 100000 + i));
    }
    std::fs::write(dir.join("data/closed.csv"), csv).unwrap();
    std::fs::write(dir.join("templates/follow_up.txt.hbs"), "Hi {{item.name}},\n\nHow did we do on ticket #{{item.ticket_id}}?\n").unwrap();
    std::fs::write(
        dir.join("cxflow.yaml"),
        format!(
            "spread_items: true\nsmtp_url: \"{smtp_url}\"\nsmtp_pool_size: {CONCURRENCY}\nsmtp_from: \"Acme <node{node}@acme.example>\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("workflows/mail.yaml"),
        format!(
            r#"name: mail
steps:
  - id: closed
    read_csv: data/closed.csv
  - id: follow_up
    for_each: closed
    item_key: "{{{{item.ticket_id}}}}"
    concurrency: {CONCURRENCY}
    send_email:
      to: "{{{{item.name}}}} <{{{{item.email}}}}>"
      subject: "Ticket {{{{item.ticket_id}}}}"
      template: follow_up
"#
        ),
    )
    .unwrap();
}

fn cxflow(bin: &Path, dir: &Path, url: &str, args: &[&str], log: &str) -> Command {
    let mut c = Command::new(bin);
    c.args(args)
        .current_dir(dir)
        .env("CXFLOW_DATABASE_URL", url)
        .env_remove("CXFLOW_LEASE_MS")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join(format!("{log}.out"))).unwrap())
        .stderr(std::fs::File::create(dir.join(format!("{log}.err"))).unwrap());
    c
}

fn wait_until(deadline: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Scaled {
    secs: f64,
    /// Emails each node sent, the run's node first.
    per_node: Vec<usize>,
}

/// One run of `items` emails over `nodes` nodes on a database of its own.
fn scaled(bin: &Path, pg: &Postgres, sink: &smtp::SmtpSink, nodes: usize, items: usize, round: usize) -> Scaled {
    let url = fresh_db(pg, &format!("spread_{nodes}_{round}"));
    let dir = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = (0..nodes).map(|i| dir.path().join(format!("node{i}"))).collect();
    for (i, d) in dirs.iter().enumerate() {
        project(d, &sink.url(), items, i);
    }
    sink.clear();
    // Workers one at a time: each is on the run log (a row in `owners`) before the next starts.
    let mut workers: Vec<Child> = Vec::new();
    for (i, d) in dirs.iter().enumerate().skip(1) {
        let child = cxflow(bin, d, &url, &["worker"], "worker").spawn().expect("start cxflow worker");
        let pid = child.id();
        workers.push(child);
        wait_until(Duration::from_secs(60), &format!("worker {i} to register"), || {
            psql(&url, "SELECT count(*) FROM pg_tables WHERE tablename = 'owners'") == ["1"]
                && psql(&url, &format!("SELECT count(*) FROM owners WHERE pid = {pid}")) == ["1"]
        });
    }
    let t = Instant::now();
    let st = cxflow(bin, &dirs[0], &url, &["run", "mail"], "run").status().expect("run cxflow");
    let secs = t.elapsed().as_secs_f64();
    for w in &mut workers {
        let _ = w.kill();
        let _ = w.wait();
    }
    assert!(st.success(), "cxflow run failed: {}", std::fs::read_to_string(dirs[0].join("run.err")).unwrap_or_default());
    let got = sink.messages();
    let distinct: HashSet<&String> = got.iter().flat_map(|m| &m.to).collect();
    assert_eq!((got.len(), distinct.len()), (items, items), "every email once at the server");
    let per_node = (0..nodes).map(|i| got.iter().filter(|m| m.from.contains(&format!("node{i}@"))).count()).collect();
    Scaled { secs, per_node }
}

/// `nodes` stores (each its own pool, as each node has) drain `items` queued items with no work
/// per item: claim 16, record their results fenced by the claim, again. Returns the time to queue
/// and the time to drain.
async fn coordination(url: &str, items: usize, nodes: usize) -> (f64, f64) {
    let store = Store::open(url).await.unwrap();
    let params = serde_json::json!({});
    let run_id = store
        .start_run(NewRun { workflow: "mail", file: "mail.yaml", trigger: TriggerKind::Manual, params: &params, scheduled_for: None })
        .await
        .unwrap();
    let step =
        SharedStep { run_id, step_id: "follow_up".into(), workflow: "mail".into(), spec_hash: "h".into(), ctx: "{}".into(), cap: None };
    store.share_step(&step).await.unwrap();
    let queued: Vec<QueuedItem> = (1..=items as i64)
        .map(|seq| QueuedItem {
            seq,
            key: format!("{}", 100000 + seq),
            record: format!(r#"{{"ticket_id":"{}","name":"Customer {seq}","email":"c{seq}@example.org"}}"#, 100000 + seq),
        })
        .collect();
    let t = Instant::now();
    for chunk in queued.chunks(500) {
        store.queue_items(run_id, "follow_up", chunk).await.unwrap();
    }
    let queue_secs = t.elapsed().as_secs_f64();
    let mut stores = Vec::new();
    for _ in 0..nodes {
        stores.push(Store::open(url).await.unwrap());
    }
    let t = Instant::now();
    let tasks: Vec<_> = stores
        .into_iter()
        .map(|s| {
            tokio::spawn(async move {
                let writer = s.item_writer();
                let mut done = 0;
                loop {
                    let batch = s.claim_items(run_id, "follow_up", (CONCURRENCY * 2) as u32).await.unwrap();
                    if batch.is_empty() {
                        break;
                    }
                    for it in batch {
                        done += 1;
                        writer
                            .write(ItemResult {
                                run_id,
                                step_id: "follow_up".into(),
                                key: it.key,
                                seq: it.seq,
                                status: ItemStatus::Ok,
                                attempts: 1,
                                error: None,
                                output: Some(serde_json::json!({"message_id": format!("<{}@cxflow>", it.seq)})),
                                claim: Some(it.token),
                            })
                            .await;
                    }
                }
                writer.flush().await.unwrap();
                done
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let drain_secs = t.elapsed().as_secs_f64();
    assert_eq!(total, items, "each item claimed once");
    let counted = store.step_item_counts(run_id, "follow_up").await.unwrap();
    assert_eq!(counted.0 as usize, items, "every result recorded: {counted:?}");
    (queue_secs, drain_secs)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` only builds this.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let items: usize = arg(&args, "--items").unwrap_or(8000);
    let rounds: usize = arg(&args, "--rounds").unwrap_or(1);
    let nodes: Vec<usize> = arg::<String>(&args, "--nodes")
        .map(|s| s.split(',').map(|n| n.trim().parse().expect("--nodes 1,2,4")).collect())
        .unwrap_or_else(|| vec![1, 2, 4]);
    let bin = arg::<String>(&args, "--bin").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cxflow")));
    let pg = Postgres::start_with(&format!("-c max_connections=300 {}", std::env::var("SPREAD_BENCH_PG").unwrap_or_default()));

    if !args.iter().any(|a| a == "--coordination-only") {
        let sink = smtp::SmtpSink::start_with_threads(64);
        sink.discard_data();
        sink.answer_after(ANSWER_AFTER);
        println!(
            "{items} emails, each answered by the server 50 ms after its data, concurrency {CONCURRENCY} per node, one PostgreSQL ({})",
            bin.display()
        );
        for round in 0..rounds {
            let mut base: Option<f64> = None;
            for &n in &nodes {
                let s = scaled(&bin, &pg, &sink, n, items, round);
                let rate = items as f64 / s.secs;
                let ideal = (1000.0 / ANSWER_AFTER.as_millis() as f64) * (CONCURRENCY * n) as f64;
                let x = match base {
                    Some(b) => format!("{:.2}× 1 node", rate / b),
                    None if n == 1 => {
                        base = Some(rate);
                        "1.00×".to_string()
                    }
                    None => "no 1-node figure".to_string(),
                };
                println!(
                    "  {n} node(s): {:.2} s, {rate:.0} items/s ({x}; at most {ideal:.0}/s at 50 ms each), items per node {:?}",
                    s.secs, s.per_node
                );
            }
        }
    }

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let n = 20_000;
    println!("coordination, {n} items, no work per item, batches of {}:", CONCURRENCY * 2);
    for round in 0..rounds {
        for stores in [1, 4] {
            let url = fresh_db(&pg, &format!("coord_{stores}_{round}"));
            let (queue, drain) = rt.block_on(coordination(&url, n, stores));
            println!(
                "  {stores} store(s): queued in {queue:.2} s ({:.3} ms/item); drained in {drain:.2} s, {:.0} items/s: {:.3} ms of a node's time per item",
                queue * 1000.0 / n as f64,
                n as f64 / drain,
                drain * 1000.0 * stores as f64 / n as f64,
            );
        }
    }
}
