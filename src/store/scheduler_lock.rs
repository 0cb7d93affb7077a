//! The scheduler lock of a PostgreSQL run log: a session advisory lock, held on a connection of
//! its own. Every `cxflow serve` node holds it shared (any number of nodes share one run log;
//! each fire is claimed by one of them, `fires.rs`); `cxflow migrate-log` takes it exclusive, so
//! it refuses to fill a run log a scheduler uses and no scheduler starts while it copies.
//! PostgreSQL drops it when that connection ends, so a process that dies (even `kill -9`)
//! leaves no stale lock behind.

use super::db::Db;
use super::{Result, Store};

/// The advisory lock's key (`cxflow` in ASCII); advisory locks are per database.
const KEY: i64 = 0x6378_666c_6f77;

/// The scheduler lock of a PostgreSQL run log, held until dropped (its connection closes).
#[derive(Debug)]
pub struct PgSchedulerLock {
    _conn: sqlx::PgConnection,
}

#[derive(Debug)]
pub enum SchedulerLock {
    Held(PgSchedulerLock),
    /// Another session holds it: who, as PostgreSQL knows it.
    Busy(String),
}

impl Store {
    /// Takes the scheduler lock of a PostgreSQL run log exclusively (`migrate-log`), or says who
    /// holds it (a serve node, or another migrate-log). None on SQLite, whose lock is a file
    /// beside the database.
    pub async fn try_lock_scheduler(&self) -> Result<Option<SchedulerLock>> {
        self.try_scheduler_lock("SELECT pg_try_advisory_lock($1)").await
    }

    /// Takes the scheduler lock shared, as each `cxflow serve` node does: refused only while
    /// someone holds it exclusively (`migrate-log` copying into the database).
    pub async fn try_share_scheduler(&self) -> Result<Option<SchedulerLock>> {
        self.try_scheduler_lock("SELECT pg_try_advisory_lock_shared($1)").await
    }

    async fn try_scheduler_lock(&self, take: &'static str) -> Result<Option<SchedulerLock>> {
        let Db::Pg(pool) = &self.db else { return Ok(None) };
        // Out of the pool: a pooled connection would go back holding the lock.
        let mut conn = pool.acquire().await?.detach();
        let got: bool = sqlx::query_scalar(take).bind(KEY).fetch_one(&mut conn).await?;
        if got {
            return Ok(Some(SchedulerLock::Held(PgSchedulerLock { _conn: conn })));
        }
        let holder: Option<(i32, Option<String>, String)> = sqlx::query_as(
            "SELECT a.pid, host(a.client_addr), to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND l.classid = $1::oid AND l.objid = $2::oid AND l.objsubid = 1",
        )
        .bind(KEY >> 32)
        .bind(KEY & 0xffff_ffff)
        .fetch_optional(&mut conn)
        .await?;
        use sqlx::Connection;
        conn.close().await?;
        Ok(Some(SchedulerLock::Busy(match holder {
            Some((pid, addr, since)) => {
                format!(
                    "its scheduler lock is held by PostgreSQL session {pid} from {} since {since}",
                    addr.as_deref().unwrap_or("a local socket")
                )
            }
            None => "its scheduler lock is held by another PostgreSQL session".into(),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    #[tokio::test]
    async fn one_holder_at_a_time_and_dropping_it_lets_the_next_in() {
        let fresh = testing::postgres().await;
        let (a, b) = (fresh.open().await, fresh.open().await);
        let Some(SchedulerLock::Held(held)) = a.try_lock_scheduler().await.unwrap() else { panic!("the first takes it") };
        match b.try_lock_scheduler().await.unwrap() {
            Some(SchedulerLock::Busy(who)) => {
                assert!(who.starts_with("its scheduler lock is held by PostgreSQL session "), "{who}");
                assert!(who.contains(" from 127.0.0.1 since 20"), "{who}");
            }
            other => panic!("{other:?}"),
        }
        // Other databases on the same server have locks of their own.
        let elsewhere = testing::postgres().await.open().await;
        assert!(matches!(elsewhere.try_lock_scheduler().await.unwrap(), Some(SchedulerLock::Held(_))));
        drop(held);
        // The server sees the connection end a moment later.
        let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match b.try_lock_scheduler().await.unwrap() {
                Some(SchedulerLock::Held(_)) => break,
                _ if std::time::Instant::now() < end => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                other => panic!("still not free: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn serve_nodes_share_it_and_an_exclusive_holder_keeps_them_out() {
        let fresh = testing::postgres().await;
        let (a, b, c) = (fresh.open().await, fresh.open().await, fresh.open().await);
        let Some(SchedulerLock::Held(_na)) = a.try_share_scheduler().await.unwrap() else { panic!("a node takes it shared") };
        let Some(SchedulerLock::Held(nb)) = b.try_share_scheduler().await.unwrap() else { panic!("so does a second") };
        // migrate-log is refused while a node holds it.
        assert!(matches!(c.try_lock_scheduler().await.unwrap(), Some(SchedulerLock::Busy(_))));
        drop(nb);
        drop(_na);
        let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let held = loop {
            match c.try_lock_scheduler().await.unwrap() {
                Some(SchedulerLock::Held(h)) => break h,
                _ if std::time::Instant::now() < end => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                other => panic!("still not free: {other:?}"),
            }
        };
        // And while migrate-log holds it, no node starts.
        match a.try_share_scheduler().await.unwrap() {
            Some(SchedulerLock::Busy(who)) => assert!(who.starts_with("its scheduler lock is held by PostgreSQL session "), "{who}"),
            other => panic!("{other:?}"),
        }
        drop(held);
    }

    #[tokio::test]
    async fn sqlite_has_its_lock_file_instead() {
        let fresh = testing::sqlite().await;
        let s = fresh.open().await;
        assert!(s.try_lock_scheduler().await.unwrap().is_none());
        assert!(s.try_share_scheduler().await.unwrap().is_none());
    }
}
