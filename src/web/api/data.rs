//! The API's reads, one small function per endpoint over the dashboard's store reads
//! (`src/store/dashboard/`), so a handler only turns rows into JSON.

use chrono::Utc;

use crate::store::{
    ArtifactWithId, DigestPoint, DigestTeam, ItemCursor, ItemRowWithSeq, ItemsQuery, Page, Result, RunRow, RunsQuery, StepCounts, StepRow,
    StepStatus, Store, UncertainRow,
};

/// The newest run of each workflow (`None`: never ran), in the order of `names`; one query
/// whatever their number.
pub(super) async fn last_runs(store: &Store, names: &[String]) -> Result<Vec<Option<RunRow>>> {
    let mut last = store.last_runs(names).await?;
    Ok(names.iter().map(|n| last.remove(n)).collect())
}

pub(super) async fn runs_page(store: &Store, q: &RunsQuery) -> Result<Page<RunRow>> {
    store.runs_page(q).await
}

pub(super) struct RunData {
    pub run: RunRow,
    pub steps: Vec<StepRow>,
    /// Item counts of each step, counted now for the steps still running; empty when none is.
    pub counts: Vec<StepCounts>,
    pub uncertain: Vec<UncertainRow>,
}

/// A run with its steps and uncertain deliveries; `NoSuchRun` when there is none.
pub(super) async fn run(store: &Store, id: i64) -> Result<RunData> {
    let run = store.run(id).await?;
    let steps = store.steps(id).await?;
    let counts = if steps.iter().any(|s| s.status == StepStatus::Running) { store.item_counts(id).await? } else { Vec::new() };
    let uncertain = store.uncertain_for_run(id).await?;
    Ok(RunData { run, steps, counts, uncertain })
}

/// A page of a run's items; `NoSuchRun` when there is no such run.
pub(super) async fn items_page(store: &Store, run_id: i64, q: &ItemsQuery) -> Result<Page<ItemRowWithSeq, ItemCursor>> {
    store.run(run_id).await?;
    store.items_page(run_id, q).await
}

pub(super) async fn artifacts_page(store: &Store, run_id: i64, after: Option<i64>, limit: i64) -> Result<Page<ArtifactWithId>> {
    store.run(run_id).await?;
    store.artifacts_with_ids(run_id, after, limit).await
}

pub(super) async fn digest_teams(store: &Store) -> Result<Vec<DigestTeam>> {
    store.digest_teams().await
}

/// Newest first.
pub(super) async fn digest_history(store: &Store, scope: &str, team: &str, limit: i64) -> Result<Vec<DigestPoint>> {
    store.digest_history(scope, team, limit).await
}
