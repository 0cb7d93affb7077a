//! One test body, both run logs: a test that concerns the run log is a function taking a
//! `Backend`, with a `#[test]` wrapper per database. `LogProject` is a project whose commands
//! and queries go to that backend's run log (the project's SQLite file, or a fresh PostgreSQL
//! database), so the body never says which one it is. `on_both!(case)` (in `mod.rs`) makes the
//! two wrappers.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::pg_log::PgLog;
use super::{Run, TestProject};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// Where a project's run log is.
pub(crate) enum RunLog {
    /// The project's own `cxflow.sqlite` (the default `database_url`).
    Sqlite,
    Postgres(PgLog),
}

/// A test project and its run log. Only what is listed here is offered, on purpose: no
/// `Deref` to `TestProject`, whose `query` would read SQLite whatever the backend.
pub(crate) struct LogProject {
    pub p: TestProject,
    pub log: RunLog,
}

impl LogProject {
    pub(crate) fn new(backend: Backend) -> LogProject {
        LogProject::on(TestProject::new(), backend)
    }

    pub(crate) fn on(p: TestProject, backend: Backend) -> LogProject {
        let log = match backend {
            Backend::Sqlite => RunLog::Sqlite,
            Backend::Postgres => RunLog::Postgres(PgLog::fresh()),
        };
        LogProject { p, log }
    }

    /// A project whose run log is `pg` (a database on a server of the test's own).
    pub(crate) fn on_pg(p: TestProject, pg: PgLog) -> LogProject {
        LogProject { p, log: RunLog::Postgres(pg) }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self.log {
            RunLog::Sqlite => Backend::Sqlite,
            RunLog::Postgres(_) => Backend::Postgres,
        }
    }

    /// The PostgreSQL database, for a test that does something to it (kills its sessions).
    pub(crate) fn pg(&self) -> Option<&PgLog> {
        match &self.log {
            RunLog::Sqlite => None,
            RunLog::Postgres(pg) => Some(pg),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.p.path()
    }

    pub(crate) fn write(&self, rel: &str, content: &str) {
        self.p.write(rel, content);
    }

    /// `cxflow` in the project, with its run log.
    pub(crate) fn cxflow(&self) -> Command {
        match &self.log {
            RunLog::Sqlite => self.p.cxflow(),
            RunLog::Postgres(pg) => pg.cxflow(&self.p),
        }
    }

    pub(crate) fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cxflow().args(args).output().expect("run cxflow"))
    }

    /// Rows of a SQL query against the run log, each row's columns joined with `|`, NULL as
    /// `NULL` (write SQL both databases read: no `rowid`, cast `numeric`).
    #[track_caller]
    pub(crate) fn query(&self, sql: &str) -> Vec<String> {
        match &self.log {
            RunLog::Sqlite => self.p.query(sql),
            RunLog::Postgres(pg) => pg.query(sql),
        }
    }

    pub(crate) fn try_query(&self, sql: &str) -> Result<Vec<String>, String> {
        match &self.log {
            RunLog::Sqlite => self.p.try_query(sql),
            RunLog::Postgres(pg) => pg.try_query(sql),
        }
    }

    /// The first column of the first row as a number, 0 while the run log or its tables do not
    /// exist yet.
    pub(crate) fn count(&self, sql: &str) -> usize {
        self.try_query(sql).ok().and_then(|r| r.first().and_then(|n| n.parse().ok())).unwrap_or(0)
    }

    /// Runs a statement that changes the run log (a test playing a crash or another machine);
    /// returns the rows it changed.
    #[track_caller]
    pub(crate) fn execute(&self, sql: &str) -> u64 {
        match &self.log {
            RunLog::Sqlite => self.p.execute(sql),
            RunLog::Postgres(pg) => pg.execute(sql),
        }
    }

    #[track_caller]
    pub(crate) fn wait_for_rows(&self, deadline: Duration, what: &str, sql: &str) -> Vec<String> {
        match &self.log {
            RunLog::Sqlite => self.p.wait_for_rows(deadline, what, sql),
            RunLog::Postgres(pg) => pg.wait_for_rows(deadline, what, sql),
        }
    }
}
