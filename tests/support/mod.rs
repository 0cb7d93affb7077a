//! Shared fixtures for end-to-end tests: a temporary project folder and the real `cxflow` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct TestProject {
    pub dir: tempfile::TempDir,
}

impl TestProject {
    pub fn new() -> TestProject {
        TestProject { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write `content` to `rel` inside the project, creating folders.
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create dir");
        }
        std::fs::write(&p, content).expect("write file");
        p
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// `cxflow` with the project as working folder and a clean CXFLOW_* environment.
    pub fn cxflow(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cxflow"));
        c.current_dir(self.dir.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("CXFLOW_") {
                c.env_remove(k);
            }
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cxflow().args(args).output().expect("run cxflow"))
    }

    /// The run log, opened read-only with the sqlite3 CLI-free path: through sqlx in a small runtime.
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("cxflow.sqlite")
    }

    /// Rows of a SQL query against the run log, each row's columns joined with `|`.
    pub fn query(&self, sql: &str) -> Vec<String> {
        query(&self.db(), sql)
    }
}

/// Rows of `sql` against the SQLite file at `db`, columns joined with `|`.
pub fn query(db: &Path, sql: &str) -> Vec<String> {
    use sqlx::{Row, ValueRef};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}?mode=ro", db.display());
        let pool = sqlx::SqlitePool::connect(&url).await.expect("open run log");
        let rows = sqlx::query(sql).fetch_all(&pool).await.expect("query");
        rows.iter()
            .map(|r| {
                (0..r.columns().len())
                    .map(|i| {
                        if r.try_get_raw(i).map(|v| v.is_null()).unwrap_or(true) {
                            "NULL".to_string()
                        } else if let Ok(n) = r.try_get::<i64, _>(i) {
                            n.to_string()
                        } else {
                            r.try_get::<String, _>(i).unwrap_or_default()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    })
}

pub struct Run {
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
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "exit code\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        assert!(!self.stderr.contains("panicked"), "panic:\n{}", self.stderr);
        self
    }
}

/// A project with the per-item test program `script.py` (tests/support/script.py) and
/// `data/records.csv` holding `header` and one line per row.
pub fn script_project(header: &str, rows: impl IntoIterator<Item = String>) -> TestProject {
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
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
