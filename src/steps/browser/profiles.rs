//! Chromium profile folders. Each browser step run keeps its sessions' profiles in one folder of
//! the temp directory, named after the process that made it; a run killed with SIGKILL cannot
//! remove its own, so the next browser step removes those whose process is gone.

use std::path::{Path, PathBuf};

const PREFIX: &str = "cxflow-run";

/// A new profiles folder for run `run_id`, owned by this process.
pub(super) fn folder(root: &Path, run_id: i64) -> PathBuf {
    root.join(format!("{PREFIX}{run_id}-pid{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()))
}

/// Removes the profiles folders in `root` left by processes that no longer run; returns how
/// many. A folder whose process still runs (or whose name this version did not write) is left.
pub(super) fn sweep(root: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(root) else { return 0 };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = owner(&name) else { continue };
        if !crate::process::exists(pid) && e.path().is_dir() && std::fs::remove_dir_all(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The process id in `cxflow-run<run>-pid<pid>-<uuid>`.
fn owner(name: &str) -> Option<i64> {
    let rest = name.strip_prefix(PREFIX)?;
    let (_, after) = rest.split_once("-pid")?;
    after.split('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_of_dead_processes_are_removed_and_the_others_kept() {
        let root = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let gone = root.path().join(format!("{PREFIX}7-pid{dead}-abc"));
        std::fs::create_dir_all(gone.join("chromium-1/Default")).unwrap();
        std::fs::write(gone.join("chromium-1/Default/Cookies"), "x").unwrap();
        let mine = folder(root.path(), 8);
        std::fs::create_dir_all(&mine).unwrap();
        let old_style = root.path().join(format!("{PREFIX}9-0123abcd"));
        std::fs::create_dir_all(&old_style).unwrap();
        let other = root.path().join("someone-elses");
        std::fs::create_dir_all(&other).unwrap();

        assert_eq!(sweep(root.path()), 1);
        assert!(!gone.exists(), "the dead process's profiles are removed");
        assert!(mine.exists() && old_style.exists() && other.exists());
        assert_eq!(owner(&mine.file_name().unwrap().to_string_lossy()), Some(std::process::id() as i64));
    }
}
