//! The audit log of control actions (start, resume, cancel, pause, unpause, resolve): who did
//! what, when, to which workflow or run, and whether it was done or refused.

use serde::Serialize;
use sqlx::FromRow;

use super::db::on_db;
use super::{now, Result, Store};

/// One action as the control layer records it.
#[derive(Debug, Clone)]
pub struct NewAction<'a> {
    pub actor: &'a str,
    pub role: &'a str,
    pub action: &'a str,
    pub workflow: Option<&'a str>,
    pub run_id: Option<i64>,
    /// Parameters, items, reason: whatever the action was given (never secret values).
    pub detail: Option<&'a serde_json::Value>,
    /// `ok`, or `refused: <why>`.
    pub outcome: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct ActionRow {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub workflow: Option<String>,
    pub run_id: Option<i64>,
    /// JSON text.
    pub detail: Option<String>,
    pub outcome: String,
}

/// Which actions to list; `None` matches any.
#[derive(Debug, Clone, Default)]
pub struct ActionFilter {
    pub workflow: Option<String>,
    pub run_id: Option<i64>,
    pub actor: Option<String>,
    pub action: Option<String>,
}

impl Store {
    pub async fn record_action(&self, a: NewAction<'_>) -> Result<i64> {
        Ok(on_db!(&self.db, pool => sqlx::query_scalar(
            "INSERT INTO actions (at, actor, role, action, workflow, run_id, detail, outcome)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(now())
        .bind(a.actor)
        .bind(a.role)
        .bind(a.action)
        .bind(a.workflow)
        .bind(a.run_id)
        .bind(a.detail.map(|d| d.to_string()))
        .bind(a.outcome)
        .fetch_one(pool)
        .await)?)
    }

    /// Actions matching `filter`, newest first, with ids below `before` (keyset pagination:
    /// pass the last id of a page to get the next).
    pub async fn actions(&self, filter: &ActionFilter, before: Option<i64>, limit: i64) -> Result<Vec<ActionRow>> {
        Ok(on_db!(&self.db, pool => sqlx::query_as(
            "SELECT id, at, actor, role, action, workflow, run_id, detail, outcome FROM actions
             WHERE ($1 IS NULL OR workflow = $1) AND ($2 IS NULL OR run_id = $2) AND ($3 IS NULL OR actor = $3)
               AND ($4 IS NULL OR action = $4) AND ($5 IS NULL OR id < $5)
             ORDER BY id DESC LIMIT $6",
        )
        .bind(&filter.workflow)
        .bind(filter.run_id)
        .bind(&filter.actor)
        .bind(&filter.action)
        .bind(before)
        .bind(limit.max(0))
        .fetch_all(pool)
        .await)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::store::testing::store_test! {
    #[tokio::test]
    async fn actions_list_newest_first_filtered_and_by_pages(fresh) {
        let s = fresh.open().await;
        let detail = serde_json::json!({"reason": "maintenance"});
        for (i, w) in ["a", "b", "a", "a"].iter().enumerate() {
            let outcome = if i == 3 { "refused: already paused" } else { "ok" };
            let a = NewAction {
                actor: "ana",
                role: "operator",
                action: "pause",
                workflow: Some(w),
                run_id: None,
                detail: Some(&detail),
                outcome,
            };
            s.record_action(a).await.unwrap();
        }
        let f = ActionFilter { workflow: Some("a".into()), ..Default::default() };
        let page1 = s.actions(&f, None, 2).await.unwrap();
        assert_eq!(page1.iter().map(|r| r.id).collect::<Vec<_>>(), [4, 3]);
        assert_eq!(page1[0].outcome, "refused: already paused");
        assert_eq!(page1[0].detail.as_deref(), Some(r#"{"reason":"maintenance"}"#));
        let page2 = s.actions(&f, Some(3), 2).await.unwrap();
        assert_eq!(page2.iter().map(|r| r.id).collect::<Vec<_>>(), [1]);
        assert_eq!(s.actions(&ActionFilter::default(), None, 10).await.unwrap().len(), 4);
        assert!(s.actions(&ActionFilter { actor: Some("bo".into()), ..Default::default() }, None, 10).await.unwrap().is_empty());
    }
    }
}
