//! The uncertain window: how many emails a `kill -9` leaves uncertain (claimed in the ledger,
//! never confirmed), at concurrency 8. Runs a real `cxflow` binary against a loopback SMTP sink,
//! kills it at seeded random points of a 2,000-email run, and counts from both sides: the
//! ledger's `sending` keys, and which of them the sink actually received.
//!
//!   cargo build --release && cargo bench --bench uncertain_window
//!   cargo bench --bench uncertain_window -- --bin /path/to/other/cxflow --trials 10 --seed 7
//!
//! Two binaries (before and after a change) are compared by running it twice, one after the other.

#[path = "../tests/support/smtp.rs"]
mod smtp;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok())
}

/// A small deterministic generator: the kill points are the same for every binary compared.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

const N: usize = 2000;

fn project(dir: &std::path::Path) {
    let w = |rel: &str, s: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    };
    w("templates/follow_up.txt.hbs", "Hi {{item.name}}, how did we do on ticket {{item.ticket_id}}?\n");
    let mut csv = String::from("ticket_id,name,email\n");
    for i in 0..N {
        csv.push_str(&format!("T{i},Customer {i},c{i}@example.org\n"));
    }
    w("data/closed.csv", &csv);
    // Paced so the run takes a few seconds and the kill lands inside it.
    w(
        "workflows/x.yaml",
        "name: follow-up\nsteps:\n  - id: closed\n    read_csv: data/closed.csv\n  - id: follow_up\n    for_each: closed\n    \
         item_key: \"{{item.ticket_id}}\"\n    concurrency: 8\n    send_email:\n      to: \"{{item.name}} <{{item.email}}>\"\n      \
         from: \"Acme <support@acme.example>\"\n      subject: \"Ticket {{item.ticket_id}}\"\n      template: follow_up\n      \
         idempotency_key: \"follow-up/{{item.ticket_id}}\"\n      rate_limit: 500\n",
    );
}

fn sending_keys(db: &std::path::Path) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        let keys = sqlx::query_scalar("SELECT key FROM ledger WHERE state = 'sending'").fetch_all(&pool).await.unwrap();
        pool.close().await;
        keys
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bin: PathBuf = arg(&args, "--bin").unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/cxflow"));
    // `cargo test --benches` builds this without `--bench`: nothing to measure then.
    if !args.iter().any(|a| a == "--bench") && arg::<String>(&args, "--bin").is_none() {
        println!("uncertain_window: run with `cargo bench --bench uncertain_window` after `cargo build --release`");
        return;
    }
    assert!(bin.exists(), "no cxflow binary at {}; build it with `cargo build --release` or pass --bin", bin.display());
    let trials: usize = arg(&args, "--trials").unwrap_or(10);
    let mut rng = Lcg(arg(&args, "--seed").unwrap_or(7));
    let mut totals = (0usize, 0usize);
    let mut worst = 0;
    for t in 0..trials {
        let sink = smtp::SmtpSink::start_with_threads(16);
        let dir = tempfile::tempdir().unwrap();
        project(dir.path());
        let kill_at = 200 + rng.below((N - 400) as u64) as usize;
        let mut child = Command::new(&bin)
            .current_dir(dir.path())
            .env("CXFLOW_SMTP_URL", sink.url())
            .args(["run", "workflows/x.yaml"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let got = sink.wait_for(kill_at, Duration::from_secs(120));
        assert!(got >= kill_at, "trial {t}: the run stalled at {got} messages");
        child.kill().unwrap();
        child.wait().unwrap();
        let delivered: HashSet<String> = sink.messages().iter().flat_map(|m| m.to.clone()).collect();
        let uncertain = sending_keys(&dir.path().join("cxflow.sqlite"));
        let arrived =
            uncertain.iter().filter(|k| delivered.contains(&format!("c{}@example.org", k.trim_start_matches("follow-up/T")))).count();
        println!(
            "trial {t}: killed after {got} messages: {} uncertain ({arrived} of them had reached the server, {} had not)",
            uncertain.len(),
            uncertain.len() - arrived
        );
        totals.0 += uncertain.len();
        totals.1 += arrived;
        worst = worst.max(uncertain.len());
    }
    println!(
        "uncertain_window: {} ({}): {:.1} uncertain per kill -9 on average, worst {worst}; {:.1} of them had reached the server",
        bin.display(),
        trials,
        totals.0 as f64 / trials as f64,
        totals.1 as f64 / trials as f64
    );
}
