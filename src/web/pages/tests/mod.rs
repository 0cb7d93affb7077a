//! The pages rendered over a real SQLite run log seeded through the Store API, fetched from a
//! real server on 127.0.0.1:0.

mod artifacts;
mod digests;
mod overview;
mod run;
mod runs;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::cli::Project;
use crate::engine::log::{ItemResult, NewArtifact, StepEnd};
use crate::scheduler::launch::Plans;
use crate::store::{ItemStatus, NewRun, RunStatus, StepStatus, Store, TriggerKind};
use crate::web::workflows::Workflows;
use crate::web::{App, AppInner};

pub(super) const SCHEDULED: &str = "name: nightly\nschedule:\n  cron: \"0 9 * * 6\"\n  timezone: Europe/Paris\n  business_days: true\nsteps:\n  - id: t\n    read_csv: data/t.csv\n";
pub(super) const MANUAL: &str = "name: by-hand\nsteps:\n  - id: t\n    read_csv: data/t.csv\n";

pub(super) struct Fixture {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub app: App,
    base: String,
    client: reqwest::Client,
}

pub(super) struct Got {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
    pub raw: Vec<u8>,
}

impl Fixture {
    /// A project with `files` (relative path, content) and a dashboard over it; `scheduled`
    /// stands for the plans a `serve` runs.
    pub(super) async fn new(files: &[(&str, &str)], scheduled: Option<Plans>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("workflows")).unwrap();
        std::fs::create_dir_all(dir.path().join("artifacts")).unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/t.csv"), "id\n1\n").unwrap();
        for (rel, text) in files {
            std::fs::write(dir.path().join(rel), text).unwrap();
        }
        let project = Arc::new(Project::open(dir.path()).unwrap());
        let store = project.store().await.unwrap();
        let app = App::for_project(project, store.clone(), scheduled, CancellationToken::new());
        let (addr, _task) = crate::web::start(app.clone(), SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        Fixture { dir, store, app, base: format!("http://{addr}"), client: reqwest::Client::new() }
    }

    pub(super) async fn get(&self, path: &str) -> Got {
        let r = self.client.get(format!("{}{path}", self.base)).send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let raw = r.bytes().await.unwrap().to_vec();
        Got { status, headers, body: String::from_utf8_lossy(&raw).into_owned(), raw }
    }

    /// The page at `path`, which must answer 200.
    pub(super) async fn page(&self, path: &str) -> String {
        let g = self.get(path).await;
        assert_eq!(g.status, 200, "GET {path}: {}", g.body);
        g.body
    }

    pub(super) fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.app.shutdown.cancel();
    }
}

/// One item: step, key, status, error, output.
pub(super) type Item<'a> = (&'a str, &'a str, ItemStatus, Option<&'a str>, Option<serde_json::Value>);

/// A run of `workflow` through the Store API, its steps from `items` (in order of first
/// appearance), finished with `status` (left running with `Running`).
pub(super) async fn seed(store: &Store, workflow: &str, status: RunStatus, error: Option<&str>, items: &[Item<'_>]) -> i64 {
    seed_with(store, workflow, TriggerKind::Manual, &serde_json::json!({}), status, error, items).await
}

pub(super) async fn seed_with(
    store: &Store,
    workflow: &str,
    trigger: TriggerKind,
    params: &serde_json::Value,
    status: RunStatus,
    error: Option<&str>,
    items: &[Item<'_>],
) -> i64 {
    let id = store
        .start_run(NewRun { workflow, file: &format!("workflows/{workflow}.yaml"), trigger, params, scheduled_for: None })
        .await
        .unwrap();
    let mut steps: Vec<&str> = Vec::new();
    for (s, ..) in items {
        if !steps.contains(s) {
            steps.push(s);
        }
    }
    let w = store.item_writer();
    for (pos, step) in steps.iter().enumerate() {
        store.start_step(id, step, pos, "command").await.unwrap();
        for (seq, (_, key, st, err, out)) in items.iter().filter(|i| i.0 == *step).enumerate() {
            w.write(ItemResult {
                run_id: id,
                step_id: step.to_string(),
                key: key.to_string(),
                seq: seq as i64,
                status: *st,
                attempts: 1,
                error: err.map(str::to_string),
                output: out.clone(),
                claim: None,
            })
            .await;
        }
        w.flush().await.unwrap();
        if status != RunStatus::Running {
            let failed = items.iter().any(|i| i.0 == *step && i.2 == ItemStatus::Failed);
            let st = if failed { StepStatus::Partial } else { StepStatus::Succeeded };
            store.finish_step(id, step, StepEnd { status: st, error: None, output: None, records: None }).await.unwrap();
        }
    }
    if status != RunStatus::Running {
        store.finish_run(id, status, error).await.unwrap();
    }
    id
}

pub(super) async fn artifact(store: &Store, run: i64, step: &str, kind: &str, path: &std::path::Path) {
    let a = NewArtifact { step_id: step.into(), item_key: Some("k1".into()), kind: kind.into(), path: path.display().to_string() };
    store.add_artifacts(run, &[a]).await.unwrap();
}

/// Ids of the artifacts of a run, in order.
pub(super) async fn artifact_ids(store: &Store, run: i64) -> Vec<i64> {
    store.artifacts_with_ids(run, None, 100).await.unwrap().rows.iter().map(|a| a.id).collect()
}
