//! How fast the run log takes item results, and how a million-row CSV streams through a run.
//! `cargo bench --bench run_log` (release). Prints figures; asserts nothing about time.

use std::io::Write;
use std::time::Instant;

use cxflow::store::{ItemResult, ItemStatus, NewRun, Store};

fn peak_child_rss_mb() -> f64 {
    #[allow(unsafe_code)]
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru
    };
    ru.ru_maxrss as f64 / 1024.0
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();

    // 1. 100,000 item results through the batched writer.
    let n = 100_000;
    let secs = rt.block_on(async {
        let store = Store::open(&format!("sqlite://{}", dir.path().join("bench.sqlite").display())).await.unwrap();
        let params = serde_json::json!({});
        let run_id = store
            .start_run(NewRun {
                workflow: "bench",
                file: "bench.yaml",
                trigger: cxflow::store::TriggerKind::Manual,
                params: &params,
                scheduled_for: None,
            })
            .await
            .unwrap();
        let writer = store.item_writer();
        let t = Instant::now();
        for i in 0..n {
            writer
                .write(ItemResult {
                    run_id,
                    step_id: "follow_up".into(),
                    key: format!("T-{i}"),
                    seq: i,
                    status: if i % 50 == 0 { ItemStatus::Failed } else { ItemStatus::Ok },
                    attempts: 1,
                    error: (i % 50 == 0).then(|| "550 mailbox unavailable".to_string()),
                    output: Some(serde_json::json!({"message_id": format!("<{i}@cxflow>")})),
                    claim: None,
                })
                .await;
        }
        writer.flush().await.unwrap();
        t.elapsed().as_secs_f64()
    });
    println!("run log: {n} item results written in {secs:.3} s ({:.0} items/s)", n as f64 / secs);

    // 2. A 1,000,000-row CSV read and written back out by the real binary: time and peak memory.
    let rows = 1_000_000;
    let project = dir.path().join("p");
    std::fs::create_dir_all(project.join("data")).unwrap();
    std::fs::create_dir_all(project.join("workflows")).unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(project.join("data/big.csv")).unwrap());
    writeln!(f, "id,name,email,rating,comment").unwrap();
    for i in 0..rows {
        writeln!(f, "{i},Customer {i},c{i}@example.test,{},\"fine, thanks\"", i % 5 + 1).unwrap();
    }
    f.flush().unwrap();
    drop(f);
    std::fs::write(
        project.join("workflows/big.yaml"),
        "name: big\nsteps:\n  - id: rows\n    read_csv: data/big.csv\n  - id: out\n    write_json: { from: rows, path: out/big.jsonl, lines: true }\n",
    )
    .unwrap();
    let t = Instant::now();
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_cxflow"))
        .args(["run", "big"])
        .current_dir(&project)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let secs = t.elapsed().as_secs_f64();
    println!(
        "streaming: {rows} CSV rows -> JSON Lines in {secs:.2} s ({:.0} rows/s), peak RSS of cxflow {:.1} MB",
        rows as f64 / secs,
        peak_child_rss_mb()
    );
}
