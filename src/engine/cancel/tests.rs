use std::sync::Arc;
use std::time::Duration;

use crate::engine::{self, RunOptions, RunStatus, Trigger};
use crate::store::Store;

const N: usize = 40;

async fn items_logged(store: &Store, run_id: i64) -> usize {
    store.items(run_id, None, 0).await.map(|items| items.iter().filter(|i| i.step_id == "act").count()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_from_another_handle_stops_the_run_and_names_who() {
    let dir = tempfile::tempdir().unwrap();
    let ids: String = (1..=N).map(|i| format!("r{i:02}\n")).collect();
    std::fs::write(dir.path().join("r.csv"), format!("id\n{ids}")).unwrap();
    // Each item marks that it started, then takes a while.
    let src =
        "name: w\nsteps:\n  - id: records\n    read_csv: r.csv\n  - id: act\n    for_each: records\n    item_key: \"{{item.id}}\"\n    \
               command: [sh, -c, 'echo $0 >> started.txt; sleep 0.2', \"{{item.id}}\"]\n";
    let file = Arc::new(crate::spec::parse(&dir.path().join("w.yaml"), src.into()).unwrap());
    let config = Arc::new(crate::config::Config::default());
    let plan = crate::plan::build(file, &config, dir.path(), &crate::steps::REGISTRY).map_err(|d| d.to_string()).unwrap();
    let url = format!("sqlite://{}", dir.path().join("runs.db").display());
    let (runner, other) = (Store::open(&url).await.unwrap(), Store::open(&url).await.unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let opts = RunOptions {
        trigger: Trigger::Manual,
        params: Default::default(),
        dry_run: false,
        shutdown: Default::default(),
        grace: Duration::from_secs(10),
        progress_bars: false,
        on_start: Some(tx),
    };
    let run = tokio::spawn(async move { engine::run(&plan, Arc::new(runner), config, Default::default(), opts).await });
    let run_id = rx.await.expect("the run reports its id once it is in the run log");
    // Once two items are done, someone else asks it to stop.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while items_logged(&other, run_id).await < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no item finished within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    other.request_cancel(run_id, "ana").await.unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(60), run).await.expect("the run stops within 60 s").unwrap().unwrap();
    assert_eq!(summary.status, RunStatus::Interrupted);
    let row = other.run(run_id).await.unwrap();
    assert_eq!(row.status, RunStatus::Interrupted);
    let error = row.error.unwrap_or_default();
    assert!(error.starts_with("cancelled by ana at 20"), "{error}");
    // Nothing started after the stop: every item that started was logged, and most never started.
    let started = std::fs::read_to_string(dir.path().join("started.txt")).unwrap().lines().count();
    let logged = items_logged(&other, run_id).await;
    assert_eq!(started, logged, "items started after the cancel, or in-flight items were not given the grace");
    assert!(logged < N, "all {N} items ran: the cancel request was not seen");
}
