//! Shared fixtures for end-to-end tests: a temporary project folder and the real `cxflow` binary.
#![allow(dead_code)]

/// `on_both!(case)`: the test `case::sqlite` runs `case(Backend::Sqlite)`, `case::postgres` the
/// same body on a fresh PostgreSQL database (`backend.rs`). `Backend` must be in scope.
#[allow(unused_macros)]
macro_rules! on_both {
    ($case:ident) => {
        mod $case {
            #[test]
            fn sqlite() {
                super::$case(super::Backend::Sqlite)
            }
            #[test]
            fn postgres() {
                super::$case(super::Backend::Postgres)
            }
        }
    };
}

pub(crate) mod backend;
pub(crate) mod pg_log;
pub(crate) mod postgres;
pub(crate) mod serve;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Every file under `dir`, at any depth.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files
}

/// Polls `condition` until it holds; panics naming `what` once `deadline` has passed. Tests wait
/// for the state they need (a row, a file, a process gone), never for a fixed time: a loaded
/// machine only makes them slower, not wrong.
#[track_caller]
pub(crate) fn wait_until(deadline: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    wait_for_some(deadline, what, || condition().then_some(()))
}

/// Polls `probe` until it gives a value and returns it; panics naming `what` after `deadline`.
#[track_caller]
pub(crate) fn wait_for_some<T>(deadline: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    wait_for_ok(deadline, what, || probe().ok_or_else(|| "not yet".to_string()))
}

/// Polls `probe` until it succeeds and returns its value; panics naming `what` after `deadline`,
/// with the last thing that was not yet right.
#[track_caller]
pub(crate) fn wait_for_ok<T>(deadline: Duration, what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let end = Instant::now() + deadline;
    let mut pause = Duration::from_millis(10);
    loop {
        let last = match probe() {
            Ok(v) => return v,
            Err(e) => e,
        };
        if Instant::now() >= end {
            panic!("timed out after {deadline:?} waiting for {what} (last: {last})");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

pub(crate) struct TestProject {
    pub dir: tempfile::TempDir,
}

impl TestProject {
    /// Copies `files` from the repository into the project, at the same paths.
    #[track_caller]
    pub(crate) fn copy_from_repo(&self, files: &[&str]) {
        let repo = repo();
        for f in files {
            self.write(f, &std::fs::read_to_string(repo.join(f)).unwrap_or_else(|e| panic!("{f}: {e}")));
        }
    }

    pub(crate) fn new() -> TestProject {
        TestProject { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write `content` to `rel` inside the project, creating folders. The file is written next
    /// to it and renamed into place, so a watching `cxflow serve` never reads half of it.
    pub(crate) fn write(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(rel);
        let parent = p.parent().expect("a file inside the project");
        std::fs::create_dir_all(parent).expect("create dir");
        let name = p.file_name().expect("a file name").to_string_lossy();
        let tmp = parent.join(format!(".{name}.test-tmp"));
        std::fs::write(&tmp, content).expect("write file");
        std::fs::rename(&tmp, &p).expect("rename file into place");
        p
    }

    pub(crate) fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// `cxflow` with the project as working folder and a clean CXFLOW_* environment.
    pub(crate) fn cxflow(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cxflow"));
        c.current_dir(self.dir.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("CXFLOW_") {
                c.env_remove(k);
            }
        }
        // Tests run side by side: each `serve` or `ui` gets a free port (it prints the URL).
        c.env("CXFLOW_HTTP_ADDR", "127.0.0.1:0");
        c
    }

    pub(crate) fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cxflow().args(args).output().expect("run cxflow"))
    }

    /// The run log, opened read-only with the sqlite3 CLI-free path: through sqlx in a small runtime.
    pub(crate) fn db(&self) -> PathBuf {
        self.dir.path().join("cxflow.sqlite")
    }

    /// Rows of a SQL query against the run log, each row's columns joined with `|`.
    #[track_caller]
    pub(crate) fn query(&self, sql: &str) -> Vec<String> {
        query(&self.db(), sql)
    }

    /// Runs a statement that changes the run log (a test playing a crash or another machine);
    /// returns the rows it changed.
    #[track_caller]
    pub(crate) fn execute(&self, sql: &str) -> u64 {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", self.db().display())).await.unwrap();
            let n = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap_or_else(|e| panic!("`{sql}`: {e}")).rows_affected();
            pool.close().await;
            n
        })
    }

    /// Like `query`, for a run log another process may still be creating: an error (no file
    /// yet, `no such table` while migrations run) is returned instead of panicking.
    pub(crate) fn try_query(&self, sql: &str) -> Result<Vec<String>, String> {
        try_query(&self.db(), sql)
    }

    /// Waits until `sql` returns at least one row (polling a run log that may not exist yet)
    /// and returns the rows; panics naming `what` after `deadline`, with the last error.
    #[track_caller]
    pub(crate) fn wait_for_rows(&self, deadline: Duration, what: &str, sql: &str) -> Vec<String> {
        wait_for_ok(deadline, what, || match self.try_query(sql) {
            Ok(rows) if rows.is_empty() => Err(format!("`{sql}` gave no rows")),
            other => other,
        })
    }

    /// The first column of the first row of `sql` as a number, 0 while the run log (or its
    /// tables) does not exist yet.
    pub(crate) fn count(&self, sql: &str) -> usize {
        self.try_query(sql).ok().and_then(|r| r.first().and_then(|n| n.parse().ok())).unwrap_or(0)
    }

    /// Pids of live processes (zombies aside) whose working folder is this project: the step
    /// programs a killed cxflow left running.
    pub(crate) fn processes_inside(&self) -> Vec<i32> {
        let root = std::fs::canonicalize(self.path()).unwrap_or_else(|_| self.path().to_path_buf());
        let me = std::process::id() as i32;
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
            if pid == me {
                continue;
            }
            let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd")) else { continue };
            if !cwd.starts_with(&root) {
                continue;
            }
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next().map(String::from));
            if state.as_deref().is_some_and(|s| s != "Z" && s != "X") {
                out.push(pid);
            }
        }
        out
    }

    /// Waits until no process works inside the project any more (after a SIGKILL its step
    /// programs keep running and may still append to files the test is about to read).
    #[track_caller]
    pub(crate) fn wait_for_no_processes_inside(&self, deadline: Duration) {
        wait_until(deadline, "the step programs of the killed run to exit", || self.processes_inside().is_empty());
    }
}

/// Rows of `sql` against the SQLite file at `db`, columns joined with `|`.
#[track_caller]
pub(crate) fn query(db: &Path, sql: &str) -> Vec<String> {
    match try_query(db, sql) {
        Ok(rows) => rows,
        Err(e) => panic!("`{sql}`: {e}"),
    }
}

/// Rows of `sql` against the SQLite file at `db`, or what went wrong (the file or a table
/// missing while another process creates the run log). `pg_log.rs` reads PostgreSQL alike.
pub(crate) fn try_query(db: &Path, sql: &str) -> Result<Vec<String>, String> {
    use sqlx::{Row, ValueRef};
    if !db.exists() {
        return Err(format!("open run log: `{}` does not exist yet", db.display()));
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}?mode=ro", db.display());
        let pool = sqlx::SqlitePool::connect(&url).await.map_err(|e| format!("open run log: {e}"))?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&pool).await.map_err(|e| format!("query: {e}"));
        pool.close().await;
        let rows = rows?;
        Ok(rows
            .iter()
            .map(|r| {
                (0..r.columns().len())
                    .map(|i| {
                        if r.try_get_raw(i).map(|v| v.is_null()).unwrap_or(true) {
                            "NULL".to_string()
                        } else if let Ok(n) = r.try_get::<i64, _>(i) {
                            n.to_string()
                        } else if let Ok(x) = r.try_get::<f64, _>(i) {
                            x.to_string()
                        } else {
                            r.try_get::<String, _>(i).unwrap_or_default()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect())
    })
}

pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    #[track_caller]
    pub(crate) fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "exit code\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        assert!(!self.stderr.contains("panicked"), "panic:\n{}", self.stderr);
        self
    }
}

/// A project with the per-item test program `script.py` (tests/support/script.py) and
/// `data/records.csv` holding `header` and one line per row.
pub(crate) fn script_project(header: &str, rows: impl IntoIterator<Item = String>) -> TestProject {
    let p = TestProject::new();
    p.write("script.py", include_str!("script.py"));
    let mut csv = format!("{header}\n");
    for r in rows {
        csv.push_str(&r);
        csv.push('\n');
    }
    p.write("data/records.csv", &csv);
    p
}

/// The repository root (for the shipped workflows, templates and data).
pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files of the README's samples, as the repository ships them (`TestProject::copy_from_repo`).
pub(crate) const EXPORT_SAMPLE: &[&str] = &["workflows/closed-tickets-export.yaml", "data/closed_tickets.csv"];
pub(crate) const FOLLOW_UP_SAMPLE: &[&str] = &[
    "workflows/ticket-follow-up.yaml",
    "data/closed_tickets.csv",
    "templates/follow_up.html.hbs",
    "templates/follow_up.txt.hbs",
    "templates/partials/header.html.hbs",
    "templates/partials/footer.html.hbs",
    "templates/partials/footer.txt.hbs",
];
pub(crate) const ROUTING_SAMPLE: &[&str] = &[
    "workflows/feedback-routing.yaml",
    "routing/teams.yaml",
    "data/feedback.csv",
    "templates/feedback_digest.html.hbs",
    "templates/feedback_digest.txt.hbs",
    "templates/feedback_digest_email.html.hbs",
    "templates/feedback_digest_email.txt.hbs",
];
