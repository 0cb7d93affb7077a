//! Items spread over nodes (`spread_items: true`, PostgreSQL only). The node running a run (its
//! origin) shares each per-item step: a `work_steps` row with the template context, and a
//! `work_items` row per item. Every node claims items in batches with `FOR UPDATE SKIP LOCKED`,
//! under a lease on the database's clock (one clock for all nodes, whatever theirs say) that its
//! heartbeat extends. An item whose lease lapsed is claimable again, under a new token.
//!
//! Fencing: a result (`items.rs`) and a delivery's claim and confirmation (`ledger.rs`) are
//! written only where the claim still has the writer's token and an unexpired lease, in the same
//! statement or transaction. The heartbeat extends only leases that still hold, so a node that
//! was paused past its lease never gets its claims back: it can record nothing for them.

use sqlx::PgPool;

use super::db::Db;
use super::owner::{lease, me};
use super::{Result, Store, StoreError};
#[cfg(test)]
use crate::engine::log::Claim;
use crate::engine::log::{ClaimedItem, QueuedItem, ShareProgress, SharedStep};

/// A lease in milliseconds, for SQL (`$n * interval '1 millisecond'`).
fn lease_ms() -> i64 {
    lease().as_millis().min(i64::MAX as u128) as i64
}

/// Claimable: queued, or claimed under a lease that lapsed. (`state <> 'done'` lets the
/// planner use the partial index.)
macro_rules! claimable {
    () => {
        "state <> 'done' AND (state = 'queued' OR lease_until < clock_timestamp())"
    };
}

impl Store {
    fn work_pool(&self) -> Result<&PgPool> {
        match &self.db {
            Db::Pg(pool) => Ok(pool),
            Db::Sqlite(_) => Err(StoreError::NeedsPostgres),
        }
    }

    pub async fn share_step(&self, s: &SharedStep) -> Result<()> {
        self.work_pool()?;
        let owner = self.register_owner().await?;
        sqlx::query(
            "INSERT INTO work_steps (run_id, step_id, workflow, origin, spec_hash, ctx, cap, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'open')
             ON CONFLICT (run_id, step_id) DO UPDATE SET origin = excluded.origin, spec_hash = excluded.spec_hash,
                 ctx = excluded.ctx, cap = excluded.cap, state = 'open'",
        )
        .bind(s.run_id)
        .bind(&s.step_id)
        .bind(&s.workflow)
        .bind(owner)
        .bind(&s.spec_hash)
        .bind(&s.ctx)
        .bind(s.cap.map(i64::from))
        .execute(self.work_pool()?)
        .await?;
        Ok(())
    }

    /// An item queued before keeps its row (a node may hold it now, or have done it since the
    /// resume read which items were done) unless it is done and failed: a resume redoes it.
    pub async fn queue_items(&self, run_id: i64, step_id: &str, items: &[QueuedItem]) -> Result<()> {
        let seqs: Vec<i64> = items.iter().map(|i| i.seq).collect();
        let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
        let records: Vec<&str> = items.iter().map(|i| i.record.as_str()).collect();
        let pool = self.work_pool()?;
        // In seq order, the order the result writer (`items.rs`) locks rows in; a deadlock
        // with anything else is tried again.
        super::group_commit::again_on_deadlock(|| {
            sqlx::query(
                "INSERT INTO work_items (run_id, step_id, seq, item_key, record, state)
                 SELECT $1, $2, t.seq, t.item_key, t.record, 'queued' FROM unnest($3::bigint[], $4::text[], $5::text[]) AS t(seq, item_key, record)
                 ORDER BY t.seq
                 ON CONFLICT (run_id, step_id, seq) DO UPDATE SET item_key = excluded.item_key, record = excluded.record,
                     state = 'queued', owner = NULL, token = NULL, lease_until = NULL
                 WHERE work_items.state = 'done' AND NOT work_items.succeeded",
            )
            .bind(run_id)
            .bind(step_id)
            .bind(&seqs)
            .bind(&keys)
            .bind(&records)
            .execute(pool)
        })
        .await?;
        Ok(())
    }

    /// Up to `n` claimable items of a shared step that is open in a running run, in order,
    /// under a new token. With a cap over all nodes, the claim counts the items in flight under
    /// a per-step advisory lock, so that two nodes claiming at once do not both fill the cap.
    pub async fn claim_items(&self, run_id: i64, step_id: &str, n: u32) -> Result<Vec<ClaimedItem>> {
        let owner = self.register_owner().await?;
        let pool = self.work_pool()?;
        let mut tx = pool.begin().await?;
        let cap: Option<(Option<i64>,)> = sqlx::query_as(
            "SELECT s.cap FROM work_steps s JOIN runs r ON r.id = s.run_id
             WHERE s.run_id = $1 AND s.step_id = $2 AND s.state = 'open' AND r.status = 'running'",
        )
        .bind(run_id)
        .bind(step_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((cap,)) = cap else { return Ok(Vec::new()) };
        let mut n = i64::from(n);
        if let Some(cap) = cap {
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))").bind(run_id as i32).bind(step_id).execute(&mut *tx).await?;
            let in_flight: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM work_items WHERE run_id = $1 AND step_id = $2 AND state = 'claimed' AND lease_until >= clock_timestamp()",
            )
            .bind(run_id)
            .bind(step_id)
            .fetch_one(&mut *tx)
            .await?;
            n = n.min(cap - in_flight);
        }
        if n <= 0 {
            return Ok(Vec::new());
        }
        let token = uuid::Uuid::new_v4().as_u64_pair().0 as i64;
        // The update finds the rows it locked by their physical address (a locked row's `ctid`
        // is its latest version's): by key, a planner that still thought the table empty (no
        // ANALYZE since the origin filled it) scanned every item of the step for each batch,
        // O(items²) over a step (`benches/spread_nodes.rs`).
        let sql = concat!(
            "WITH c AS MATERIALIZED (SELECT ctid FROM work_items WHERE run_id = $1 AND step_id = $2 AND ",
            claimable!(),
            " ORDER BY seq LIMIT $6 FOR UPDATE SKIP LOCKED)
             UPDATE work_items w SET state = 'claimed', owner = $3, token = $4,
                 lease_until = clock_timestamp() + $5 * interval '1 millisecond'
             WHERE w.ctid = ANY (ARRAY (SELECT ctid FROM c))
             RETURNING w.seq, w.item_key, w.record"
        );
        let mut rows: Vec<(i64, String, String)> =
            sqlx::query_as(sql).bind(run_id).bind(step_id).bind(owner).bind(token).bind(lease_ms()).bind(n).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        rows.sort_by_key(|r| r.0);
        Ok(rows.into_iter().map(|(seq, key, record)| ClaimedItem { seq, key, record, token }).collect())
    }

    /// Shared steps of running runs whose origin is another node, with items to claim.
    pub async fn shared_steps(&self) -> Result<Vec<SharedStep>> {
        let sql = concat!(
            "SELECT s.run_id, s.step_id, s.workflow, s.spec_hash, s.ctx, s.cap FROM work_steps s JOIN runs r ON r.id = s.run_id
             WHERE s.state = 'open' AND r.status = 'running' AND s.origin <> $1
               AND EXISTS (SELECT 1 FROM work_items w WHERE w.run_id = s.run_id AND w.step_id = s.step_id AND ",
            claimable!(),
            ") ORDER BY s.run_id, s.step_id"
        );
        let rows: Vec<(i64, String, String, String, String, Option<i64>)> =
            sqlx::query_as(sql).bind(&me().id).fetch_all(self.work_pool()?).await?;
        Ok(rows
            .into_iter()
            .map(|(run_id, step_id, workflow, spec_hash, ctx, cap)| SharedStep {
                run_id,
                step_id,
                workflow,
                spec_hash,
                ctx,
                cap: cap.map(|c| c.clamp(0, u32::MAX as i64) as u32),
            })
            .collect())
    }

    pub async fn share_progress(&self, run_id: i64, step_id: &str) -> Result<ShareProgress> {
        let (left, in_flight, stopped): (i64, i64, bool) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM work_items WHERE run_id = $1 AND step_id = $2 AND state <> 'done'),
                    (SELECT count(*) FROM work_items WHERE run_id = $1 AND step_id = $2 AND state = 'claimed' AND lease_until >= clock_timestamp()),
                    COALESCE((SELECT state = 'stopped' FROM work_steps WHERE run_id = $1 AND step_id = $2), true)",
        )
        .bind(run_id)
        .bind(step_id)
        .fetch_one(self.work_pool()?)
        .await?;
        Ok(ShareProgress { left: left.max(0) as u64, in_flight: in_flight.max(0) as u64, stopped })
    }

    pub async fn stop_share(&self, run_id: i64, step_id: &str) -> Result<()> {
        sqlx::query("UPDATE work_steps SET state = 'stopped' WHERE run_id = $1 AND step_id = $2")
            .bind(run_id)
            .bind(step_id)
            .execute(self.work_pool()?)
            .await?;
        Ok(())
    }

    pub async fn close_share(&self, run_id: i64, step_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM work_steps WHERE run_id = $1 AND step_id = $2")
            .bind(run_id)
            .bind(step_id)
            .execute(self.work_pool()?)
            .await?;
        Ok(())
    }

    /// Results of a step's items by status: ok, failed, skipped.
    pub async fn step_item_counts(&self, run_id: i64, step_id: &str) -> Result<(u64, u64, u64)> {
        let (ok, failed, skipped): (i64, i64, i64) = super::db::on_db!(&self.db, pool => sqlx::query_as(
            "SELECT count(CASE WHEN status = 'ok' THEN 1 END), count(CASE WHEN status = 'failed' THEN 1 END),
                    count(CASE WHEN status = 'skipped' THEN 1 END)
             FROM items WHERE run_id = $1 AND step_id = $2",
        )
        .bind(run_id)
        .bind(step_id)
        .fetch_one(pool)
        .await)?;
        Ok((ok.max(0) as u64, failed.max(0) as u64, skipped.max(0) as u64))
    }

    /// The heartbeat's part: extend this node's claims whose lease still holds. A lapsed one
    /// stays lapsed (another node may have it now, or may take it any moment). Rows another
    /// transaction holds are skipped, not waited for: they are being marked done by this node's
    /// result writer, which locks them in another order, and waiting made the two deadlock
    /// (`benches/spread_nodes.rs`); if that write fails, the next beat extends them.
    pub(crate) async fn extend_item_leases(&self) -> Result<u64> {
        let Db::Pg(pool) = &self.db else { return Ok(0) };
        let r = sqlx::query(
            "WITH c AS MATERIALIZED (SELECT ctid FROM work_items
                 WHERE owner = $2 AND state = 'claimed' AND lease_until >= clock_timestamp() FOR UPDATE SKIP LOCKED)
             UPDATE work_items w SET lease_until = clock_timestamp() + $1 * interval '1 millisecond'
             WHERE w.ctid = ANY (ARRAY (SELECT ctid FROM c))",
        )
        .bind(lease_ms())
        .bind(&me().id)
        .execute(pool)
        .await?;
        Ok(r.rows_affected())
    }
}

#[cfg(test)]
mod tests;
