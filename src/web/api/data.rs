//! The API's reads, one small function per endpoint, so the store calls behind them can change
//! without touching a handler. Today over `store::api_tmp`; the dashboard reads
//! (`runs_page`, `items_page`, `item_counts`, `artifacts_with_ids`, `uncertain_for_run`,
//! `workflow_summaries`, `digest_teams`, `digest_history`) replace it at merge.

use crate::store::api_tmp::{ApiArtifactRow, ApiDigestPoint, ApiDigestTeam, ApiItemRow, ApiItemsQuery, ApiPage, ApiRunsQuery};
use crate::store::{ItemStatus, LedgerRow, Result, RunFilter, RunRow, StepRow, Store};

/// The newest run of each workflow (`None`: never ran), in the order of `names`.
pub(super) async fn last_runs(store: &Store, names: &[String]) -> Result<Vec<Option<RunRow>>> {
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        let f = RunFilter { workflow: Some(n.clone()), status: None, limit: 1 };
        out.push(store.runs(&f).await?.into_iter().next());
    }
    Ok(out)
}

pub(super) async fn runs_page(store: &Store, q: &ApiRunsQuery) -> Result<ApiPage<RunRow>> {
    store.api_runs_page(q).await
}

pub(super) struct RunData {
    pub run: RunRow,
    pub steps: Vec<StepRow>,
    /// Items per (step, status), for steps still running.
    pub counts: Vec<(String, ItemStatus, i64)>,
    pub uncertain: Vec<LedgerRow>,
}

/// A run with its steps and uncertain deliveries; `NoSuchRun` when there is none.
pub(super) async fn run(store: &Store, id: i64) -> Result<RunData> {
    let run = store.run(id).await?;
    let steps = store.steps(id).await?;
    let counts =
        if steps.iter().any(|s| s.status == crate::store::StepStatus::Running) { store.api_item_counts(id).await? } else { Vec::new() };
    let uncertain = store.uncertain_keys(id).await?;
    Ok(RunData { run, steps, counts, uncertain })
}

/// A page of a run's items; `NoSuchRun` when there is no such run.
pub(super) async fn items_page(store: &Store, run_id: i64, q: &ApiItemsQuery) -> Result<ApiPage<ApiItemRow, (i64, i64, i64)>> {
    store.run(run_id).await?;
    store.api_items_page(run_id, q).await
}

pub(super) async fn artifacts_page(store: &Store, run_id: i64, after: Option<i64>, limit: i64) -> Result<ApiPage<ApiArtifactRow>> {
    store.run(run_id).await?;
    store.api_artifacts(run_id, after, limit).await
}

pub(super) async fn digest_teams(store: &Store) -> Result<Vec<ApiDigestTeam>> {
    store.api_digest_teams().await
}

/// Newest first.
pub(super) async fn digest_history(store: &Store, scope: &str, team: &str, limit: i64) -> Result<Vec<ApiDigestPoint>> {
    store.api_digest_history(scope, team, limit).await
}
