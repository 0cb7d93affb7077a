//! What one `/metrics` scrape costs on a large run log: 30,000 runs of 12 workflows (4 steps
//! each), 1,000,000 item rows, 300,000 ledger rows (a few still `sending`), 2,000 skipped fires.
//! `cargo bench --bench metrics_scrape` (release). Prints figures; asserts nothing about time.

use std::time::Instant;

use cxflow::store::Store;

const SEED: &[&str] = &[
    // 30,000 runs: 12 workflows, mostly succeeded, some failed/partial, 2,000 skipped fires.
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30000)
     INSERT INTO runs (workflow, file, trigger, params, scheduled_for, started_at, finished_at, status, error)
     SELECT 'workflow-' || (i % 12), 'w.yaml', 'schedule', '{}', NULL,
            strftime('%Y-%m-%dT%H:%M:%fZ', 1700000000 + i * 600, 'unixepoch'),
            strftime('%Y-%m-%dT%H:%M:%fZ', 1700000000 + i * 600 + (i % 900), 'unixepoch'),
            CASE WHEN i % 15 = 0 THEN 'skipped' WHEN i % 23 = 0 THEN 'failed' WHEN i % 31 = 0 THEN 'partial' ELSE 'succeeded' END,
            CASE WHEN i % 15 = 0 THEN '2025-06-07 is a Saturday (business_days: true)' END
     FROM n",
    // Four steps per run that ran.
    "INSERT INTO steps (run_id, step_id, position, kind, status, ok, failed, skipped, started_at, finished_at)
     SELECT r.id, k.step_id, k.pos, k.kind, 'succeeded', 30 + r.id % 7, r.id % 3, r.id % 2, r.started_at, r.finished_at
     FROM runs r, (SELECT 'read' AS step_id, 0 AS pos, 'read_csv' AS kind UNION ALL SELECT 'route', 1, 'route'
                   UNION ALL SELECT 'mail', 2, 'send_email' UNION ALL SELECT 'portal', 3, 'browser') k
     WHERE r.status != 'skipped'",
    // 1,000,000 items (the table the scrape must not count).
    "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999999)
     INSERT INTO items (run_id, step_id, item_key, seq, status, attempts, output, finished_at)
     SELECT 1 + (i % 28000), 'mail', 'customer-' || i || '@example.com', i, 'ok', 1, '{\"message_id\":\"<x@y>\"}', '2025-06-02T00:00:00Z' FROM n",
    // 300,000 ledger rows, 40 of them still `sending` with no owner (uncertain).
    "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 299999)
     INSERT INTO ledger (key, workflow, run_id, step_id, item_key, state, updated_at)
     SELECT 'email/' || hex(randomblob(16)), 'workflow-' || (i % 12), 1 + (i % 28000), 'mail', 'customer-' || i,
            CASE WHEN i % 7500 = 0 THEN 'sending' ELSE 'sent' END, '2025-06-02T00:00:00Z' FROM n",
];

/// User and system CPU time of this process so far (SQLite runs on sqlx's worker threads).
fn cpu_seconds() -> f64 {
    #[allow(unsafe_code)]
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    // METRICS_BENCH_KEEP=1 leaves the seeded run log in the tempdir's place, for EXPLAIN.
    let dir = if std::env::var_os("METRICS_BENCH_KEEP").is_some() { dir.keep() } else { dir.path().to_path_buf() };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Store::open(&format!("sqlite://{}", dir.join("bench.sqlite").display())).await.unwrap();
        let t = Instant::now();
        for sql in SEED {
            sqlx::query(sqlx::AssertSqlSafe(*sql))
                .execute(store.sqlite_pool().expect("the benchmark seeds a SQLite run log"))
                .await
                .unwrap();
        }
        println!("seeded {} in {:.1} s", dir.display(), t.elapsed().as_secs_f64());
        let first = Instant::now();
        let text = cxflow::metrics::render(&store, None).await.unwrap();
        let first = first.elapsed();
        let n = 20;
        let (t, cpu) = (Instant::now(), cpu_seconds());
        for _ in 0..n {
            std::hint::black_box(cxflow::metrics::render(&store, None).await.unwrap());
        }
        let each = t.elapsed() / n;
        // CPU time says what a scrape costs on a busy machine, where wall time mostly waits.
        let cpu_each = (cpu_seconds() - cpu) / f64::from(n);
        let series = text.lines().filter(|l| !l.starts_with('#')).count();
        println!(
            "first scrape {:.1} ms; then {:.1} ms wall, {:.1} ms CPU per scrape ({n} scrapes); {} bytes, {series} series",
            first.as_secs_f64() * 1e3,
            each.as_secs_f64() * 1e3,
            cpu_each * 1e3,
            text.len()
        );
        for line in
            text.lines().filter(|l| l.starts_with("cxflow_emails{workflow=\"workflow-1\"") || l.starts_with("cxflow_run_log_size_bytes"))
        {
            println!("  {line}");
        }
    });
}
