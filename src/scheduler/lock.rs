//! One scheduler per run log: `cxflow serve` holds an exclusive lock on a file next to the
//! SQLite database for as long as it runs. The OS drops the lock if the process dies, so a crash
//! never leaves a stale lock behind. A PostgreSQL run log has no file: there `serve` holds an
//! advisory lock in the database instead (`store::SchedulerLock`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;

use crate::plan::paths::real_path;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another `cxflow serve` is already running on the run log `{db}` (lock held on `{lock}`{holder}); \
stop it first, or point this one at another database"
    )]
    Held { db: PathBuf, lock: PathBuf, holder: String },
    #[error("cannot create the scheduler lock file `{lock}`: {source}")]
    Io { lock: PathBuf, source: std::io::Error },
}

/// Held for the life of the scheduler; dropping it releases the lock.
#[derive(Debug)]
pub struct SchedulerLock {
    file: File,
    pub path: PathBuf,
}

/// The lock file for a database file: `runs.db` → `runs.db.serve.lock`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "cxflow.db".into());
    name.push(".serve.lock");
    db.with_file_name(name)
}

/// The database file as the file system knows it: two projects that spell one file differently
/// (a symlink, `..`, a relative path) must meet at one lock, or each would run every fire.
fn real_db(db: &Path) -> PathBuf {
    let mut p = std::path::absolute(db).unwrap_or_else(|_| db.to_path_buf());
    // Follow a link at the file itself by hand: the database may not exist yet, so neither may
    // the link's target, and `canonicalize` would fail.
    for _ in 0..40 {
        match std::fs::read_link(&p) {
            Ok(target) => p = p.parent().map_or(target.clone(), |dir| dir.join(&target)),
            Err(_) => break,
        }
    }
    match (p.parent().and_then(|d| real_path(d).ok()), p.file_name()) {
        (Some(dir), Some(name)) => dir.join(name),
        _ => p,
    }
}

pub fn acquire(db: &Path) -> Result<SchedulerLock, LockError> {
    let path = lock_path(&real_db(db));
    let io = |source| LockError::Io { lock: path.clone(), source };
    let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
    match FileExt::try_lock_exclusive(&file) {
        Ok(true) => {}
        Ok(false) => {
            let holder = std::fs::read_to_string(&path)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .map(|s| format!(", by {s}"))
                .unwrap_or_default();
            return Err(LockError::Held { db: db.to_path_buf(), lock: path, holder });
        }
        Err(e) => return Err(io(e)),
    }
    // Say who holds it, for the message a second instance prints.
    file.set_len(0).map_err(io)?;
    writeln!(file, "pid {}", std::process::id()).map_err(io)?;
    file.flush().map_err(io)?;
    Ok(SchedulerLock { file, path })
}

impl Drop for SchedulerLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("runs.db");
        let first = acquire(&db).unwrap();
        assert_eq!(first.path, dir.path().join("runs.db.serve.lock"));
        let err = acquire(&db).unwrap_err().to_string();
        assert!(err.contains("another `cxflow serve` is already running"), "{err}");
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        drop(first);
        acquire(&db).unwrap();
    }
}
