//! A run's artifacts (by id, so a page can link one file) and its uncertain deliveries.

use serde::Serialize;
use sqlx::FromRow;

use super::{page_limit, Page};
use crate::store::db::on_db;
use crate::store::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct ArtifactWithId {
    pub id: i64,
    pub step_id: String,
    pub item_key: Option<String>,
    pub kind: String,
    /// As the step wrote it (relative to the project folder, or absolute).
    pub path: String,
    pub created_at: String,
}

/// A delivery claimed and never confirmed nor released: it may or may not have happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct UncertainRow {
    /// The ledger key (`cxflow resolve` takes it).
    pub key: String,
    pub step_id: String,
    pub item_key: String,
    /// When the claim was last written: the delivery started then.
    pub since: String,
}

macro_rules! artifact_select {
    ($rest:literal) => {
        concat!("SELECT id, step_id, item_key, kind, path, created_at FROM artifacts WHERE ", $rest)
    };
}

pub(super) const PAGE: &str = artifact_select!("run_id = $1 AND id > $2 ORDER BY id LIMIT $3");
pub(super) const OF_ITEM: &str = artifact_select!("run_id = $1 AND step_id = $2 AND item_key = $3 ORDER BY id");
pub(super) const UNCERTAIN: &str = "SELECT key, step_id, item_key, updated_at AS since FROM ledger WHERE run_id = $1 AND state = 'sending'
     ORDER BY updated_at, key";

impl Store {
    /// One artifact of one run; `None` if the id is unknown or belongs to another run (a URL
    /// cannot reach another run's file by changing the id alone).
    pub async fn artifact(&self, run_id: i64, artifact_id: i64) -> Result<Option<ArtifactWithId>> {
        Ok(on_db!(&self.db, pool => sqlx::query_as(artifact_select!("id = $1 AND run_id = $2"))
            .bind(artifact_id)
            .bind(run_id)
            .fetch_optional(pool)
            .await)?)
    }

    /// A page of a run's artifacts in the order they were recorded; `after`: the previous
    /// page's `next`. A browser step can leave one per item, so this is paged like the items.
    pub async fn artifacts_with_ids(&self, run_id: i64, after: Option<i64>, limit: i64) -> Result<Page<ArtifactWithId>> {
        let limit = page_limit(limit);
        let rows = on_db!(&self.db, pool => sqlx::query_as(PAGE)
            .bind(run_id)
            .bind(after.unwrap_or(0))
            .bind(limit + 1)
            .fetch_all(pool)
            .await)?;
        Ok(Page::from_extra(rows, limit, |a: &ArtifactWithId| a.id))
    }

    /// The artifacts of one item of a step (every attempt's), oldest first.
    pub async fn item_artifacts(&self, run_id: i64, step_id: &str, item_key: &str) -> Result<Vec<ArtifactWithId>> {
        Ok(on_db!(&self.db, pool => sqlx::query_as(OF_ITEM)
            .bind(run_id)
            .bind(step_id)
            .bind(item_key)
            .fetch_all(pool)
            .await)?)
    }

    /// The deliveries of a run left uncertain, oldest first.
    pub async fn uncertain_for_run(&self, run_id: i64) -> Result<Vec<UncertainRow>> {
        Ok(on_db!(&self.db, pool => sqlx::query_as(UNCERTAIN).bind(run_id).fetch_all(pool).await)?)
    }
}
