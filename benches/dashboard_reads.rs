//! What a run page and the overview cost the store on a big run log: one run of 1,000,000
//! items over three steps, and 1,000 workflows of 30 runs each. `cargo bench --bench
//! dashboard_reads` (release). Prints the median and p95 of each read; asserts nothing about time.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::Utc;
use cxflow::store::{ItemStatus, ItemsQuery, RunStatus, RunsQuery, Store};

#[path = "support/dashboard_data.rs"]
mod dashboard_data;
use dashboard_data::{deep_cursor, seed, RUNS_EACH, WORKFLOWS};

const REPS: usize = 20;

/// Median and 95th percentile of `REPS` runs of `f`.
async fn time<T, F: Future<Output = T>>(label: &str, mut f: impl FnMut() -> F) {
    let mut d: Vec<Duration> = Vec::with_capacity(REPS);
    f().await; // a first run warms the page cache, as a server's would be
    for _ in 0..REPS {
        let t = Instant::now();
        std::hint::black_box(f().await);
        d.push(t.elapsed());
    }
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    let p95 = d[(REPS * 95).div_ceil(100) - 1];
    println!("  {label:<44} median {:>8.2} ms   p95 {:>8.2} ms", ms(d[REPS / 2]), ms(p95));
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Store::open(&format!("sqlite://{}", dir.path().join("runlog.sqlite").display())).await.unwrap();
        let t = Instant::now();
        let run = seed(&store).await;
        let stats = store.run_log_stats().await.unwrap();
        println!(
            "run log: {} runs, {} items, {:.0} MB, seeded in {:.1} s",
            stats.runs,
            stats.items,
            stats.bytes as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );

        let deep = deep_cursor(&store, run).await;
        let items = |q: ItemsQuery| {
            let store = store.clone();
            move || {
                let store = store.clone();
                let q = q.clone();
                async move { store.items_page(run, &q).await.unwrap() }
            }
        };
        println!("run page of run {run} ({} items):", dashboard_data::ITEMS);
        time("run", || store.run(run)).await;
        time("item_counts (one step counted live)", || store.item_counts(run)).await;
        time("items_page first 100", items(ItemsQuery::default())).await;
        time("items_page 100 at item 750,000 (keyset)", items(ItemsQuery { after: Some(deep), ..Default::default() })).await;
        time("items_page status=failed", items(ItemsQuery { status: Some(ItemStatus::Failed), ..Default::default() })).await;
        let q = ItemsQuery { status: Some(ItemStatus::Failed), after: Some(deep), ..Default::default() };
        time("items_page status=failed at 750,000", items(q)).await;
        time("items_page step=mail, 500 rows", items(ItemsQuery { step: Some("mail".into()), limit: 500, ..Default::default() })).await;
        time("items_page q=T-01234 (200 matches)", items(ItemsQuery { q: Some("T-01234".into()), ..Default::default() })).await;
        time("items_page q=T- (every key)", items(ItemsQuery { q: Some("T-".into()), ..Default::default() })).await;
        time("items_page q=nothing", items(ItemsQuery { q: Some("X".into()), ..Default::default() })).await;
        time("artifacts_with_ids first 100", || store.artifacts_with_ids(run, None, 100)).await;
        time("uncertain_for_run", || store.uncertain_for_run(run)).await;
        let page = || async {
            let run = store.run(run).await.unwrap();
            let counts = store.item_counts(run.id).await.unwrap();
            let items = store.items_page(run.id, &ItemsQuery::default()).await.unwrap();
            let arts = store.artifacts_with_ids(run.id, None, 100).await.unwrap();
            let unc = store.uncertain_for_run(run.id).await.unwrap();
            (counts, items.rows.len(), arts.rows.len(), unc)
        };
        time("whole run page (the five above, in turn)", page).await;

        println!("overview and lists ({} workflows x {} runs):", WORKFLOWS, RUNS_EACH);
        let names: Vec<String> = (0..WORKFLOWS).map(dashboard_data::workflow_name).collect();
        time("workflow_summaries for 1,000 workflows", || store.workflow_summaries(&names, Utc::now())).await;
        let newest = RunsQuery { limit: 50, ..Default::default() };
        time("runs_page newest 50", || store.runs_page(&newest)).await;
        let q = RunsQuery { before: Some(15_000), limit: 50, ..Default::default() };
        time("runs_page 50 before id 15,000", || store.runs_page(&q)).await;
        let q = RunsQuery { workflow: Some("workflow-0007".into()), status: Some(RunStatus::Succeeded), limit: 50, ..Default::default() };
        time("runs_page workflow + status", || store.runs_page(&q)).await;
        let q = RunsQuery { status: Some(RunStatus::Failed), limit: 50, ..Default::default() };
        time("runs_page status=failed", || store.runs_page(&q)).await;
        time("digest_teams", || store.digest_teams()).await;
        time("digest_history (30 points)", || store.digest_history("workflow-0001/route", "team-3", 100)).await;
        time("run_log_stats (counts every item)", || store.run_log_stats()).await;
    });
}
