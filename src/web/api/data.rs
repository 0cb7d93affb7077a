//! The API's reads, one small function per endpoint, so the store calls behind them can change
//! without touching a handler. Runs, items and workflows go through the dashboard's reads
//! (keyset pages on indexes, a lookup per name; `benches/dashboard` times them on a run of a
//! million items); the rest still through `store::api_tmp`.

use crate::store::api_tmp::{ApiArtifactRow, ApiDigestPoint, ApiDigestTeam, ApiPage, ApiRunsQuery};
use crate::store::{ItemCursor, ItemRowWithSeq, ItemsQuery, LedgerRow, Page, Result, RunRow, StepCounts, StepRow, Store};

/// The newest run of each workflow (`None`: never ran), in the order of `names`: one query, not
/// one per name (1,000 workflows took 130 ms that way).
pub(super) async fn last_runs(store: &Store, names: &[String]) -> Result<Vec<Option<RunRow>>> {
    let last = store.last_runs(names).await?;
    Ok(names.iter().map(|n| last.get(n).cloned()).collect())
}

pub(super) async fn runs_page(store: &Store, q: &ApiRunsQuery) -> Result<ApiPage<RunRow>> {
    store.api_runs_page(q).await
}

pub(super) struct RunData {
    pub run: RunRow,
    pub steps: Vec<StepRow>,
    /// Each step's counts: as stored for a finished step, counted now for a running one.
    pub counts: Vec<StepCounts>,
    pub uncertain: Vec<LedgerRow>,
}

/// A run with its steps and uncertain deliveries; `NoSuchRun` when there is none.
pub(super) async fn run(store: &Store, id: i64) -> Result<RunData> {
    // Side by side, and only a running step's items counted (not the whole run's: 90 ms for a
    // million), as on the run page.
    let (run, steps, counts, uncertain) =
        tokio::try_join!(store.run(id), store.steps(id), store.item_counts(id), store.uncertain_keys(id))?;
    Ok(RunData { run, steps, counts, uncertain })
}

/// A page of a run's items; `NoSuchRun` when there is no such run.
/// The run page's read: one index range per step, where a join sorted every item of the run
/// (370 ms for a million).
pub(super) async fn items_page(store: &Store, run_id: i64, q: &ItemsQuery) -> Result<Page<ItemRowWithSeq, ItemCursor>> {
    let (_, page) = tokio::try_join!(store.run(run_id), store.items_page(run_id, q))?;
    Ok(page)
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
