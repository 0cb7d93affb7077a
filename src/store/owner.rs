//! Who is running what. Each process that runs workflows registers once as an owner, with a
//! lease it renews by heartbeat; its runs and ledger claims name it. A run or a claim is taken
//! over (the run marked interrupted, an uncertain key resent) only once its owner is gone: the
//! lease expired, or, on this same machine and boot, the owner's process no longer exists.
//!
//! The lease is what several machines sharing one database rely on; the process check only
//! makes a crash on this machine visible at once instead of a lease later. A PID alone is never
//! trusted: it is compared with the process's start time and the machine's boot id, since after
//! a reboot (or a long night) the same number belongs to another process.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::Utc;

use super::db::on_db;
use super::{now, Result, Store};
use crate::process;

static CONFIGURED_LEASE: OnceLock<Duration> = OnceLock::new();

/// The project's `lease` (cxflow.yaml), set once when the project opens.
pub fn set_lease(d: Duration) {
    let _ = CONFIGURED_LEASE.set(d);
}

/// How long an owner counts as alive after its last heartbeat, and holds the items it claimed.
pub(crate) fn lease() -> Duration {
    // Tests that stop a heartbeat on purpose shorten it below what `lease` allows.
    std::env::var("CXFLOW_LEASE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .or_else(|| CONFIGURED_LEASE.get().copied())
        .unwrap_or(Duration::from_secs(30))
}

/// This process, as the owners table knows it.
#[derive(Debug)]
pub(crate) struct Me {
    pub id: String,
    pub host: String,
    pub boot: String,
    pub pid: i64,
    pub proc_start: Option<i64>,
}

pub(crate) fn me() -> &'static Me {
    static ME: OnceLock<Me> = OnceLock::new();
    ME.get_or_init(|| {
        let pid = std::process::id() as i64;
        Me {
            id: uuid::Uuid::new_v4().to_string(),
            host: process::host_name().unwrap_or_else(|| "localhost".into()),
            boot: process::boot_id(),
            pid,
            proc_start: process::start_time(pid),
        }
    })
}

/// An owner as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct OwnerRow {
    pub id: String,
    pub host: String,
    pub boot: String,
    pub pid: i64,
    pub proc_start: Option<i64>,
    pub expires_at: String,
}

impl OwnerRow {
    /// Alive: its lease holds and, when it runs on this machine, its process still exists.
    pub(crate) fn alive(&self, at: &str) -> bool {
        let me = me();
        if self.id == me.id {
            return true;
        }
        if self.expires_at.as_str() <= at {
            return false;
        }
        if self.host == me.host && !me.boot.is_empty() {
            if self.boot != me.boot {
                return false;
            }
            return match (self.proc_start, process::start_time(self.pid)) {
                (Some(want), Some(now)) => want == now,
                (_, None) => false,
                (None, Some(_)) => process::exists(self.pid),
            };
        }
        true
    }
}

fn expiry() -> String {
    let at = Utc::now() + chrono::Duration::from_std(lease()).unwrap_or(chrono::Duration::seconds(30));
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A process that runs workflows (a `serve` node, a `run`, a `resume`), as `cxflow nodes` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Node {
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub started_at: String,
    pub heartbeat_at: String,
    /// When its lease lapses unless it beats again.
    pub expires_at: String,
    /// Its lease holds and, on this machine, its process still exists.
    pub alive: bool,
    /// Runs it owns that are still `running`.
    pub running_runs: i64,
    /// Shared items (`spread_items`) it holds under a lease now.
    pub items_claimed: i64,
}

impl Store {
    /// Every owner the run log knows (retention drops the long gone), oldest first; `alive` says
    /// which still hold their lease.
    pub async fn nodes(&self) -> Result<Vec<Node>> {
        type Row = (String, String, String, i64, Option<i64>, String, String, String, i64, i64);
        // Only PostgreSQL has the work queue of items spread over nodes (`work.rs`).
        let sql = self.db.sql(
            "SELECT o.id, o.host, o.boot, o.pid, o.proc_start, o.expires_at, o.started_at, o.heartbeat_at,
                    (SELECT count(*) FROM runs r WHERE r.owner = o.id AND r.status = 'running'), 0
             FROM owners o ORDER BY o.started_at, o.id",
            "SELECT o.id, o.host, o.boot, o.pid, o.proc_start, o.expires_at, o.started_at, o.heartbeat_at,
                    (SELECT count(*) FROM runs r WHERE r.owner = o.id AND r.status = 'running'),
                    (SELECT count(*) FROM work_items w WHERE w.owner = o.id AND w.state = 'claimed' AND w.lease_until >= clock_timestamp())
             FROM owners o ORDER BY o.started_at, o.id",
        );
        let rows: Vec<Row> = on_db!(&self.db, pool => sqlx::query_as(sql)
        .fetch_all(pool)
        .await)?;
        let at = now();
        Ok(rows
            .into_iter()
            .map(|(id, host, boot, pid, proc_start, expires_at, started_at, heartbeat_at, running_runs, items_claimed)| {
                let o = OwnerRow { id, host, boot, pid, proc_start, expires_at };
                let alive = o.alive(&at);
                Node {
                    id: o.id,
                    host: o.host,
                    pid: o.pid,
                    started_at,
                    heartbeat_at,
                    expires_at: o.expires_at,
                    alive,
                    running_runs,
                    items_claimed,
                }
            })
            .collect())
    }

    /// Registers this process as an owner (once per store) and keeps its lease renewed while
    /// the process lives. Returns this process's owner id.
    pub(crate) async fn register_owner(&self) -> Result<&'static str> {
        let me = me();
        self.owner_registered
            .get_or_try_init(|| async {
                let t = now();
                on_db!(&self.db, pool => sqlx::query(
                    "INSERT INTO owners (id, host, boot, pid, proc_start, started_at, heartbeat_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at",
                )
                .bind(&me.id)
                .bind(&me.host)
                .bind(&me.boot)
                .bind(me.pid)
                .bind(me.proc_start)
                .bind(&t)
                .bind(&t)
                .bind(expiry())
                .execute(pool)
                .await
                .map(|r| r.rows_affected()))?;
                let store = self.clone();
                tokio::spawn(async move { store.heartbeat().await });
                Ok::<(), super::StoreError>(())
            })
            .await?;
        Ok(&me.id)
    }

    /// Renews the lease a sixth of it at a time, so a few missed beats on a busy machine do not
    /// lose it. A beat that cannot be written is retried at the next; if they keep failing the
    /// lease lapses, and the ledger then refuses this process's claims (see `claim_key`).
    async fn heartbeat(self) {
        let every = lease() / 6;
        loop {
            tokio::time::sleep(every).await;
            let r = on_db!(&self.db, pool => sqlx::query("UPDATE owners SET heartbeat_at = $1, expires_at = $2 WHERE id = $3")
                .bind(now())
                .bind(expiry())
                .bind(&me().id)
                .execute(pool)
                .await
                .map(|_| ()));
            if let Err(e) = r {
                tracing::warn!("cannot renew this process's lease in the run log: {e}");
            }
            if let Err(e) = self.extend_item_leases().await {
                tracing::warn!("cannot renew this node's claims on shared items: {e}");
            }
        }
    }

    pub(crate) async fn owner(&self, id: &str) -> Result<Option<OwnerRow>> {
        Ok(on_db!(&self.db, pool => sqlx::query_as("SELECT id, host, boot, pid, proc_start, expires_at FROM owners WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await)?)
    }

    /// Whether the owner `id` is alive; an owner the table does not know is not.
    pub(crate) async fn owner_alive(&self, id: Option<&str>) -> Result<bool> {
        let Some(id) = id else { return Ok(false) };
        Ok(self.owner(id).await?.is_some_and(|o| o.alive(&now())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, host: &str, boot: &str, pid: i64, start: Option<i64>, expires: &str) -> OwnerRow {
        OwnerRow { id: id.into(), host: host.into(), boot: boot.into(), pid, proc_start: start, expires_at: expires.into() }
    }

    #[test]
    fn an_owner_is_alive_only_while_its_lease_holds_and_its_own_process_runs() {
        let me = me();
        let later = "2999-01-01T00:00:00.000Z";
        let at = now();
        assert!(row(&me.id, &me.host, &me.boot, me.pid, me.proc_start, "2000-01-01T00:00:00.000Z").alive(&at), "this process");
        // Same machine, same boot, this process's PID but another start time: PID reuse.
        let reused = row("other", &me.host, &me.boot, me.pid, me.proc_start.map(|s| s + 1), later);
        assert!(!reused.alive(&at));
        // Same machine, another boot: whatever the PID is now, it is not that process.
        assert!(!row("other", &me.host, "another-boot", me.pid, me.proc_start, later).alive(&at));
        // A PID that does not exist.
        assert!(!row("other", &me.host, &me.boot, i32::MAX as i64, None, later).alive(&at));
        // Another machine: only the lease says.
        assert!(row("other", "elsewhere", "b", 1, None, later).alive(&at));
        assert!(!row("other", "elsewhere", "b", 1, None, "2000-01-01T00:00:00.000Z").alive(&at));
    }

    crate::store::testing::store_test! {
    #[tokio::test]
    async fn registering_writes_a_lease_in_the_future(fresh) {
        let store = fresh.open().await;
        let id = store.register_owner().await.unwrap();
        let o = store.owner(id).await.unwrap().unwrap();
        assert!(o.expires_at > now(), "{o:?}");
        assert!(store.owner_alive(Some(id)).await.unwrap());
        assert!(!store.owner_alive(Some("nobody")).await.unwrap());
        assert!(!store.owner_alive(None).await.unwrap());
    }
    }

    crate::store::testing::store_test! {
    #[tokio::test]
    async fn nodes_lists_live_and_lapsed_owners_with_their_running_runs(fresh) {
        let store = fresh.open().await;
        let run = store
            .start_run(crate::store::NewRun {
                workflow: "w",
                file: "w.yaml",
                trigger: crate::store::TriggerKind::Manual,
                params: &serde_json::json!({}),
                scheduled_for: None,
            })
            .await
            .unwrap();
        let me = me();
        on_db!(&store.db, pool => sqlx::query(
            "INSERT INTO owners (id, host, boot, pid, proc_start, started_at, heartbeat_at, expires_at)
             VALUES ('gone', 'elsewhere', 'b', 7, NULL, '2000-01-01T00:00:00.000Z', '2000-01-01T00:00:00.000Z', '2000-01-01T00:00:30.000Z')",
        )
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
        let nodes = store.nodes().await.unwrap();
        assert_eq!(nodes.len(), 2, "{nodes:?}");
        let (gone, mine) = (&nodes[0], &nodes[1]);
        assert_eq!((gone.id.as_str(), gone.host.as_str(), gone.pid, gone.alive, gone.running_runs), ("gone", "elsewhere", 7, false, 0));
        assert_eq!((mine.id.as_str(), mine.host.as_str(), mine.pid, mine.alive, mine.running_runs), (me.id.as_str(), me.host.as_str(), me.pid, true, 1));
        assert!(mine.expires_at > mine.heartbeat_at, "{mine:?}");
        store.finish_run(run, crate::store::RunStatus::Succeeded, None).await.unwrap();
        assert_eq!(store.nodes().await.unwrap()[1].running_runs, 0);
    }
    }
}
