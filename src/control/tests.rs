use std::time::Duration;

use serde_json::{json, Map};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::engine::RunStatus;
use crate::store::ActionFilter;

const N: usize = 30;

/// A project with workflow `slow` (an item takes 0.2 s) and `quick` (one required parameter).
async fn project(dir: &std::path::Path) -> (Project, Store) {
    std::fs::create_dir_all(dir.join("workflows")).unwrap();
    let ids: String = (1..=N).map(|i| format!("r{i:02}\n")).collect();
    std::fs::write(dir.join("r.csv"), format!("id\n{ids}")).unwrap();
    std::fs::write(
        dir.join("workflows/slow.yaml"),
        "name: slow\nschedule:\n  cron: \"0 3 * * *\"\nsteps:\n  - id: records\n    read_csv: r.csv\n  - id: act\n    for_each: records\n    \
         item_key: \"{{item.id}}\"\n    command: [sh, -c, 'sleep 0.2']\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("workflows/quick.yaml"),
        "name: quick\nparams:\n  who: null\nsteps:\n  - id: hi\n    command: [sh, -c, 'echo \"$0\" > hi.txt', \"{{params.who}}\"]\n",
    )
    .unwrap();
    let project = Project::open(dir).unwrap();
    let store = project.store().await.unwrap();
    (project, store)
}

async fn wait_for_status(store: &Store, run_id: i64, want: RunStatus) -> crate::store::RunRow {
    let end = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let row = store.run(run_id).await.unwrap();
        if row.status == want {
            return row;
        }
        assert!(tokio::time::Instant::now() < end, "run {run_id} is still {} after 60 s, not {want}", row.status);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn items_ok(store: &Store, run_id: i64) -> i64 {
    store.items(run_id, Some("ok"), 0).await.unwrap().len() as i64
}

fn ana() -> Actor {
    Actor::new("ana", Role::Operator)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_run_answers_with_the_id_and_refusals_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (project, store) = project(dir.path()).await;
    let c = Control::new(&project, store.clone(), CancellationToken::new());
    let mut params = Map::new();
    params.insert("who".into(), json!("Ana"));
    let id = c.start_run(&ana(), "quick", params).await.unwrap();
    wait_for_status(&store, id, RunStatus::Succeeded).await;
    assert_eq!(std::fs::read_to_string(dir.path().join("hi.txt")).unwrap(), "Ana\n");

    let e = c.start_run(&ana(), "quick", Map::new()).await.unwrap_err();
    assert!(matches!(&e, ControlError::Invalid(m) if m == "parameter `who` has no default; pass `--var who=...`"), "{e}");
    let e = c.start_run(&ana(), "../cxflow", Map::new()).await.unwrap_err();
    assert!(matches!(e, ControlError::NoSuchWorkflow(_)), "{e}");
    let e = c.start_run(&Actor::new("vic", Role::Viewer), "quick", Map::new()).await.unwrap_err();
    assert_eq!(e.to_string(), "`vic` has role viewer and may not start runs; an operator or admin may");

    let rows = store.actions(&ActionFilter::default(), None, 10).await.unwrap();
    let seen: Vec<(&str, &str, Option<i64>, &str)> =
        rows.iter().map(|r| (r.actor.as_str(), r.action.as_str(), r.run_id, r.outcome.split(':').next().unwrap())).collect();
    assert_eq!(
        seen,
        [("vic", "run", None, "refused"), ("ana", "run", None, "refused"), ("ana", "run", None, "refused"), ("ana", "run", Some(id), "ok")]
    );
    assert_eq!(rows[3].detail.as_deref(), Some(r#"{"params":{"who":"Ana"}}"#));
    assert_eq!(rows[3].role, "operator");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_run_started_here_at_once_and_resume_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (project, store) = project(dir.path()).await;
    let c = Control::new(&project, store.clone(), CancellationToken::new());
    let id = c.start_run(&ana(), "slow", Map::new()).await.unwrap();
    assert_eq!(c.runs_in_progress(), [id]);
    let e = c.resume(&ana(), id, None).await.unwrap_err();
    assert!(matches!(e, ControlError::StillRunning(_)), "{e}");
    let req = c.cancel(&Actor::new("bo", Role::Admin), id).await.unwrap();
    assert_eq!(req.by, "bo");
    let row = wait_for_status(&store, id, RunStatus::Interrupted).await;
    assert!(row.error.as_deref().unwrap_or_default().starts_with(&format!("cancelled by bo at {}", req.at)), "{:?}", row.error);
    assert!(items_ok(&store, id).await < N as i64, "the cancel did not stop the run");
    let e = c.cancel(&ana(), id).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("run {id} is not running (it is interrupted); there is nothing to cancel; `cxflow resume {id}` continues it")
    );

    let e = c.resume(&ana(), id, Some("nope".into())).await.unwrap_err();
    assert_eq!(e.to_string(), "workflow `slow` has no step `nope`; its steps are: records, act");
    assert_eq!(c.resume(&ana(), id, None).await.unwrap(), id);
    wait_for_status(&store, id, RunStatus::Succeeded).await;
    assert_eq!(items_ok(&store, id).await, N as i64);
    let e = c.resume(&ana(), id, None).await.unwrap_err();
    assert!(e.to_string().starts_with(&format!("run {id} already succeeded")), "{e}");
    let actions: Vec<String> = store
        .actions(&ActionFilter { run_id: Some(id), ..Default::default() }, None, 20)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert_eq!(actions, ["resume", "resume", "resume", "cancel", "cancel", "resume", "run"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shutdown_token_interrupts_background_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (project, store) = project(dir.path()).await;
    let shutdown = CancellationToken::new();
    let c = Control::new(&project, store.clone(), shutdown.clone());
    let id = c.start_run(&ana(), "slow", Map::new()).await.unwrap();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(60), c.wait_for_runs()).await.expect("runs end within 60 s");
    assert_eq!(store.run(id).await.unwrap().status, RunStatus::Interrupted);
    assert!(c.runs_in_progress().is_empty());
}

#[tokio::test]
async fn pause_and_unpause_are_kept_in_the_run_log() {
    let dir = tempfile::tempdir().unwrap();
    let (project, store) = project(dir.path()).await;
    let c = Control::new(&project, store.clone(), CancellationToken::new());
    let p = c.pause(&ana(), "slow", Some("portal down".into())).await.unwrap();
    assert_eq!((p.paused_by.as_str(), p.reason.as_deref()), ("ana", Some("portal down")));
    assert_eq!(store.schedule_pause("slow").await.unwrap(), Some(p.clone()));
    assert!(matches!(c.pause(&ana(), "nope", None).await.unwrap_err(), ControlError::NoSuchWorkflow(_)));
    assert_eq!(c.unpause(&ana(), "slow").await.unwrap(), p);
    assert_eq!(c.unpause(&ana(), "slow").await.unwrap_err().to_string(), "workflow `slow` is not paused; nothing to unpause");
    let e = c.resolve(&ana(), 999, &[], crate::store::Resolution::Sent).await.unwrap_err();
    assert_eq!(e.to_string(), "there is no run 999; `cxflow runs` lists them");
    let rows = store.actions(&ActionFilter::default(), None, 10).await.unwrap();
    let seen: Vec<(&str, &str)> = rows.iter().map(|r| (r.action.as_str(), r.outcome.split(':').next().unwrap())).collect();
    assert_eq!(seen, [("resolve", "refused"), ("unpause", "refused"), ("unpause", "ok"), ("pause", "refused"), ("pause", "ok")]);
}
