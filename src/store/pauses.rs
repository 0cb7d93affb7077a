//! Paused schedules: while a workflow is paused, the scheduler records its fires as skipped.
//! Kept in the run log so that a pause made by one process (`cxflow pause`, the dashboard) is
//! seen by the scheduler in another.

use serde::Serialize;
use sqlx::FromRow;

use super::db::on_db;
use super::{now, Result, Store};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct Pause {
    pub workflow: String,
    pub paused_by: String,
    /// RFC 3339, UTC.
    pub paused_at: String,
    pub reason: Option<String>,
}

impl Pause {
    /// What a skipped fire records and `cxflow next` shows.
    pub fn skip_reason(&self) -> String {
        match &self.reason {
            Some(r) => format!("paused by {} since {}: {r}", self.paused_by, self.paused_at),
            None => format!("paused by {} since {}", self.paused_by, self.paused_at),
        }
    }
}

impl Store {
    /// Pause `workflow`'s schedule. Pausing a paused workflow keeps the first pause (who and
    /// since when) and returns it; otherwise returns the new one.
    pub async fn pause_schedule(&self, workflow: &str, by: &str, reason: Option<&str>) -> Result<Pause> {
        on_db!(&self.db, pool => sqlx::query(
            "INSERT INTO schedule_pauses (workflow, paused_by, paused_at, reason) VALUES ($1, $2, $3, $4)
             ON CONFLICT (workflow) DO NOTHING",
        )
        .bind(workflow)
        .bind(by)
        .bind(now())
        .bind(reason)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(self.schedule_pause(workflow).await?.unwrap_or_else(|| Pause {
            // Unpaused by someone else between the two statements: report what was asked.
            workflow: workflow.into(),
            paused_by: by.into(),
            paused_at: now(),
            reason: reason.map(String::from),
        }))
    }

    /// Lift the pause of `workflow`; the pause that was lifted, `None` when it was not paused.
    pub async fn unpause_schedule(&self, workflow: &str) -> Result<Option<Pause>> {
        Ok(on_db!(&self.db, pool => sqlx::query_as(
            "DELETE FROM schedule_pauses WHERE workflow = $1 RETURNING workflow, paused_by, paused_at, reason",
        )
        .bind(workflow)
        .fetch_optional(pool)
        .await)?)
    }

    /// The pause of `workflow`, if it is paused.
    pub async fn schedule_pause(&self, workflow: &str) -> Result<Option<Pause>> {
        Ok(on_db!(&self.db, pool => sqlx::query_as(
            "SELECT workflow, paused_by, paused_at, reason FROM schedule_pauses WHERE workflow = $1",
        )
        .bind(workflow)
        .fetch_optional(pool)
        .await)?)
    }

    /// Every paused workflow, by name.
    pub async fn paused_schedules(&self) -> Result<Vec<Pause>> {
        Ok(on_db!(&self.db, pool => sqlx::query_as("SELECT workflow, paused_by, paused_at, reason FROM schedule_pauses ORDER BY workflow")
            .fetch_all(pool)
            .await)?)
    }
}

#[cfg(test)]
mod tests {
    crate::store::testing::store_test! {
    #[tokio::test]
    async fn a_pause_is_seen_by_another_handle_until_lifted(fresh) {
        let (a, b) = (fresh.open().await, fresh.open().await);
        let p = a.pause_schedule("nightly", "ana", Some("portal maintenance")).await.unwrap();
        assert_eq!((p.paused_by.as_str(), p.reason.as_deref()), ("ana", Some("portal maintenance")));
        assert!(p.skip_reason().starts_with("paused by ana since 20"), "{}", p.skip_reason());
        // A second pause keeps the first one's author.
        assert_eq!(b.pause_schedule("nightly", "bo", None).await.unwrap().paused_by, "ana");
        assert_eq!(b.schedule_pause("nightly").await.unwrap(), Some(p.clone()));
        assert_eq!(b.paused_schedules().await.unwrap(), vec![p.clone()]);
        assert_eq!(b.unpause_schedule("nightly").await.unwrap(), Some(p));
        assert_eq!(a.schedule_pause("nightly").await.unwrap(), None);
        assert_eq!(a.unpause_schedule("nightly").await.unwrap(), None);
    }
    }
}
