//! Fire claims: several `cxflow serve` nodes share one run log, and each scheduled fire (a
//! workflow at one scheduled instant) runs on one of them. The claim is the run row itself,
//! inserted with ON CONFLICT DO NOTHING against the unique index `runs_fire` (workflow,
//! scheduled_for) of scheduled rows: whichever node inserts first has the fire, run, skipped or
//! failed; the others learn it from the insert and do nothing for it.

use chrono::{DateTime, Utc};

use super::db::on_db;
use super::{now, owner, Result, Store};

/// What a node records for a fire it claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FireOutcome<'a> {
    /// It runs here: the row is `running`, owned by this process.
    Run,
    /// It does not run (overlap, calendar, pause, missed while down): `skipped` with the reason.
    Skipped(&'a str),
    /// It cannot start (a missing secret, a required parameter): `failed` with the reason.
    Failed(&'a str),
}

/// One fire to claim.
#[derive(Debug, Clone, Copy)]
pub struct NewFire<'a> {
    pub workflow: &'a str,
    pub file: &'a str,
    pub fire: DateTime<Utc>,
    /// Hash of the workflow file the fire was planned from (`spec_hash`).
    pub spec_hash: &'a str,
    pub outcome: FireOutcome<'a>,
}

/// The row that already holds a fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenFire {
    pub run_id: i64,
    pub status: String,
    pub spec_hash: Option<String>,
    /// The host of the node that claimed it, when its owner row is still there.
    pub host: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireClaim {
    /// This node has the fire: its run row.
    Claimed(i64),
    /// Another node (or this one, earlier) has it.
    Taken(TakenFire),
}

/// A scheduled run of the workflow still running on another live node, which an overlap policy
/// waits for or skips behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningElsewhere {
    pub run_id: i64,
    pub scheduled_for: String,
    pub host: String,
}

/// Scheduled instants as the run log spells them (`scheduled_for`): one spelling for every node.
pub(crate) fn fire_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

impl Store {
    /// Claims `f.fire` of `f.workflow` by inserting its run row, or says which row has it.
    pub async fn claim_fire(&self, f: NewFire<'_>) -> Result<FireClaim> {
        let owner = self.register_owner().await?;
        let (status, error, finished) = match f.outcome {
            FireOutcome::Run => ("running", None, None),
            FireOutcome::Skipped(why) => ("skipped", Some(why), Some(now())),
            FireOutcome::Failed(why) => ("failed", Some(why), Some(now())),
        };
        let at = fire_text(f.fire);
        let id: Option<i64> = on_db!(&self.db, pool => sqlx::query_scalar(
            "INSERT INTO runs (workflow, file, trigger, params, scheduled_for, started_at, finished_at, status, error, pid, owner, spec_hash)
             VALUES ($1, $2, 'schedule', '{}', $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(f.workflow)
        .bind(f.file)
        .bind(&at)
        .bind(now())
        .bind(&finished)
        .bind(status)
        .bind(error)
        .bind(std::process::id() as i64)
        .bind(owner)
        .bind(f.spec_hash)
        .fetch_optional(pool)
        .await)?;
        if let Some(id) = id {
            return Ok(FireClaim::Claimed(id));
        }
        let row: Option<(i64, String, Option<String>, Option<String>)> = on_db!(&self.db, pool => sqlx::query_as(
            "SELECT r.id, r.status, r.spec_hash, o.host FROM runs r LEFT JOIN owners o ON o.id = r.owner
             WHERE r.workflow = $1 AND r.scheduled_for = $2 AND r.trigger = 'schedule' AND r.spec_hash IS NOT NULL",
        )
        .bind(f.workflow)
        .bind(&at)
        .fetch_optional(pool)
        .await)?;
        // The conflict was on this index (the id is the only other unique key, and it is new).
        let (run_id, status, spec_hash, host) = row.ok_or(sqlx::Error::RowNotFound)?;
        Ok(FireClaim::Taken(TakenFire { run_id, status, spec_hash, host }))
    }

    /// The earliest scheduled run of `workflow` for an instant before `before` that is still
    /// running in another live process (another node), if any: what `overlap: skip` skips
    /// behind and `overlap: queue` waits for. This process's own runs are the scheduler's to
    /// know; runs whose owner is gone are not running (they are marked interrupted by the
    /// orphan sweep).
    pub async fn running_elsewhere(&self, workflow: &str, before: DateTime<Utc>) -> Result<Option<RunningElsewhere>> {
        let rows: Vec<(i64, String, Option<String>)> = on_db!(&self.db, pool => sqlx::query_as(
            "SELECT id, scheduled_for, owner FROM runs
             WHERE workflow = $1 AND trigger = 'schedule' AND status = 'running' AND scheduled_for < $2
               AND owner IS DISTINCT FROM $3
             ORDER BY scheduled_for, id",
        )
        .bind(workflow)
        .bind(fire_text(before))
        .bind(&owner::me().id)
        .fetch_all(pool)
        .await)?;
        let at = now();
        for (run_id, scheduled_for, owner) in rows {
            let Some(o) = owner else { continue };
            if let Some(o) = self.owner(&o).await?.filter(|o| o.alive(&at)) {
                return Ok(Some(RunningElsewhere { run_id, scheduled_for, host: o.host }));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    crate::store::testing::store_test! {
    #[tokio::test]
    async fn one_row_per_fire_whoever_claims_it(fresh) {
        let (a, b) = (fresh.open().await, fresh.open().await);
        let t = fire("2030-01-01T00:00:01Z");
        let new = |outcome| NewFire { workflow: "w", file: "w.yaml", fire: t, spec_hash: "h1", outcome };
        let FireClaim::Claimed(id) = a.claim_fire(new(FireOutcome::Run)).await.unwrap() else { panic!("the first claims it") };
        // A second claim, however it would end, finds the first's row.
        for outcome in [FireOutcome::Run, FireOutcome::Skipped("overlap"), FireOutcome::Failed("no secret")] {
            match b.claim_fire(NewFire { spec_hash: "h2", ..new(outcome) }).await.unwrap() {
                FireClaim::Taken(t) => {
                    assert_eq!((t.run_id, t.status.as_str(), t.spec_hash.as_deref()), (id, "running", Some("h1")));
                    assert!(t.host.is_some());
                }
                other => panic!("{other:?}"),
            }
        }
        // Another instant, another workflow, a manual run at the same instant: their own rows.
        let later = NewFire { fire: fire("2030-01-01T00:00:02Z"), ..new(FireOutcome::Skipped("overlap")) };
        assert!(matches!(b.claim_fire(later).await.unwrap(), FireClaim::Claimed(_)));
        assert!(matches!(b.claim_fire(NewFire { workflow: "v", ..new(FireOutcome::Run) }).await.unwrap(), FireClaim::Claimed(_)));
        let n: i64 = on_db!(&a.db, pool => sqlx::query_scalar("SELECT count(*) FROM runs WHERE workflow = 'w'").fetch_one(pool).await).unwrap();
        assert_eq!(n, 2);
        // Rows from before the claims (no hash) are outside the index: an old run log with two
        // rows for one instant still opens, and they do not block a claim.
        for _ in 0..2 {
            on_db!(&a.db, pool => sqlx::query(
                "INSERT INTO runs (workflow, file, trigger, scheduled_for, started_at, status) VALUES ('old', 'f', 'schedule', $1, $1, 'skipped')",
            ).bind(fire_text(t)).execute(pool).await.map(|r| r.rows_affected())).unwrap();
        }
        assert!(matches!(a.claim_fire(NewFire { workflow: "old", ..new(FireOutcome::Run) }).await.unwrap(), FireClaim::Claimed(_)));
    }
    }

    crate::store::testing::store_test! {
    #[tokio::test]
    async fn a_run_elsewhere_counts_only_while_its_owner_lives_and_only_for_earlier_fires(fresh) {
        let s = fresh.open().await;
        let t = fire("2030-01-01T00:00:05Z");
        let FireClaim::Claimed(id) =
            s.claim_fire(NewFire { workflow: "w", file: "f", fire: t, spec_hash: "h", outcome: FireOutcome::Run }).await.unwrap()
        else {
            panic!()
        };
        // Our own run is the scheduler's business.
        assert_eq!(s.running_elsewhere("w", fire("2030-01-01T00:00:06Z")).await.unwrap(), None);
        // Owned by another node, alive (another host: only its lease counts).
        let far = "2999-01-01T00:00:00.000Z";
        on_db!(&s.db, pool => sqlx::query(
            "INSERT INTO owners (id, host, boot, pid, started_at, heartbeat_at, expires_at) VALUES ('n2', 'node2', 'b', 1, $1, $1, $2)",
        ).bind(now()).bind(far).execute(pool).await.map(|r| r.rows_affected())).unwrap();
        on_db!(&s.db, pool => sqlx::query("UPDATE runs SET owner = 'n2' WHERE id = $1").bind(id).execute(pool).await.map(|r| r.rows_affected())).unwrap();
        let seen = s.running_elsewhere("w", fire("2030-01-01T00:00:06Z")).await.unwrap().unwrap();
        assert_eq!((seen.run_id, seen.host.as_str()), (id, "node2"));
        assert_eq!(seen.scheduled_for, fire_text(t));
        // Not for its own instant or an earlier one, nor for another workflow.
        assert_eq!(s.running_elsewhere("w", t).await.unwrap(), None);
        assert_eq!(s.running_elsewhere("v", fire("2030-01-01T00:00:06Z")).await.unwrap(), None);
        // Its lease lapsed: gone.
        on_db!(&s.db, pool => sqlx::query("UPDATE owners SET expires_at = '2000-01-01T00:00:00.000Z' WHERE id = 'n2'").execute(pool).await.map(|r| r.rows_affected())).unwrap();
        assert_eq!(s.running_elsewhere("w", fire("2030-01-01T00:00:06Z")).await.unwrap(), None);
    }
    }
}
