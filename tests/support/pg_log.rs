//! The run log on PostgreSQL for end-to-end tests: one throwaway server per test binary
//! (`postgres.rs`, stopped by its watchdog when the test process ends), a new database per
//! test, and queries shaped like the SQLite helpers in `mod.rs`: each row's columns joined with
//! `|`, NULL as `NULL`, so one assertion reads the same against either run log.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use super::{wait_for_ok, Run, TestProject};

pub(crate) use super::postgres::Postgres;

/// The test binary's server. Nothing here cuts the power, so it does not sync.
pub(crate) fn server() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(|| Postgres::start_with("-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400"))
}

/// A database of its own on the test binary's server: what `database_url` points at.
pub(crate) struct PgLog {
    /// `postgres://cx@127.0.0.1:PORT/NAME`
    pub url: String,
    pub name: String,
}

impl PgLog {
    /// A new, empty database (no tables until cxflow opens it).
    pub(crate) fn fresh() -> PgLog {
        PgLog::fresh_on(server())
    }

    /// A new, empty database on `pg`: a server of the test's own, which it may stop.
    pub(crate) fn fresh_on(pg: &Postgres) -> PgLog {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!("e2e{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        execute_on(&pg.url(), &format!("CREATE DATABASE {name}"));
        PgLog { url: format!("postgres://cx@127.0.0.1:{}/{name}", pg.port), name }
    }

    /// `cxflow` in project `p` with this database as its run log.
    pub(crate) fn cxflow(&self, p: &TestProject) -> Command {
        let mut c = p.cxflow();
        c.env("CXFLOW_DATABASE_URL", &self.url);
        c
    }

    pub(crate) fn run(&self, p: &TestProject, args: &[&str]) -> Run {
        Run::from(self.cxflow(p).args(args).output().expect("run cxflow"))
    }

    /// Rows of a SQL query against the run log, each row's columns joined with `|`.
    #[track_caller]
    pub(crate) fn query(&self, sql: &str) -> Vec<String> {
        pg_query(&self.url, sql)
    }

    /// Like `query`, but an error (no tables yet while cxflow creates them) is returned.
    pub(crate) fn try_query(&self, sql: &str) -> Result<Vec<String>, String> {
        try_pg_query(&self.url, sql)
    }

    /// The first column of the first row as a number, 0 while the tables do not exist yet.
    pub(crate) fn count(&self, sql: &str) -> usize {
        self.try_query(sql).ok().and_then(|r| r.first().and_then(|n| n.parse().ok())).unwrap_or(0)
    }

    /// Waits until `sql` returns at least one row and returns the rows.
    #[track_caller]
    pub(crate) fn wait_for_rows(&self, deadline: Duration, what: &str, sql: &str) -> Vec<String> {
        wait_for_ok(deadline, what, || match self.try_query(sql) {
            Ok(rows) if rows.is_empty() => Err(format!("`{sql}` gave no rows")),
            other => other,
        })
    }

    /// Ends every other session on this database, as an administrator or a failover would
    /// (`pg_terminate_backend`); returns how many there were.
    pub(crate) fn terminate_sessions(&self) -> usize {
        let sql = "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
                   WHERE datname = current_database() AND pid <> pg_backend_pid()";
        self.query(sql).first().and_then(|n| n.parse().ok()).unwrap_or(0)
    }

    /// Runs a statement that changes the run log; returns the rows it changed.
    #[track_caller]
    pub(crate) fn execute(&self, sql: &str) -> u64 {
        execute_on(&self.url, sql)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[track_caller]
fn execute_on(url: &str, sql: &str) -> u64 {
    runtime().block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(url).await.unwrap_or_else(|e| panic!("connect {url}: {e}"));
        let n = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut c).await.unwrap_or_else(|e| panic!("`{sql}`: {e}")).rows_affected();
        c.close().await.unwrap();
        n
    })
}

/// Rows of `sql` against the PostgreSQL database at `url`, columns joined with `|`.
#[track_caller]
pub(crate) fn pg_query(url: &str, sql: &str) -> Vec<String> {
    match try_pg_query(url, sql) {
        Ok(rows) => rows,
        Err(e) => panic!("`{sql}`: {e}"),
    }
}

/// Rows of `sql` against the PostgreSQL database at `url`, or what went wrong. Values read as
/// the SQLite helper reads them: integers and reals in decimal, a boolean as `1` or `0` (what
/// SQLite gives for a comparison), text as is. Other types (`numeric`, `json`) show as
/// `?TYPE`: cast them in the query (`CAST(sum(x) AS BIGINT)`, `x::text`).
pub(crate) fn try_pg_query(url: &str, sql: &str) -> Result<Vec<String>, String> {
    use sqlx::{Column, Connection, Row, TypeInfo, ValueRef};
    runtime().block_on(async {
        let mut c = sqlx::PgConnection::connect(url).await.map_err(|e| format!("connect: {e}"))?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&mut c).await.map_err(|e| format!("query: {e}"));
        let _ = c.close().await;
        Ok(rows?
            .iter()
            .map(|r| {
                (0..r.columns().len())
                    .map(|i| {
                        if r.try_get_raw(i).map(|v| v.is_null()).unwrap_or(true) {
                            "NULL".to_string()
                        } else if let Ok(n) = r.try_get::<i64, _>(i) {
                            n.to_string()
                        } else if let Ok(n) = r.try_get::<i32, _>(i) {
                            n.to_string()
                        } else if let Ok(n) = r.try_get::<i16, _>(i) {
                            n.to_string()
                        } else if let Ok(x) = r.try_get::<f64, _>(i) {
                            x.to_string()
                        } else if let Ok(x) = r.try_get::<f32, _>(i) {
                            x.to_string()
                        } else if let Ok(b) = r.try_get::<bool, _>(i) {
                            if b { "1" } else { "0" }.to_string()
                        } else if let Ok(s) = r.try_get::<String, _>(i) {
                            s
                        } else {
                            format!("?{}", r.column(i).type_info().name())
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect())
    })
}
