//! Which artifact files a prune deletes. Artifact rows hold paths as written (`artifacts/../x`,
//! a symlinked folder, the same fixed file listed by every run), so the decision is made on real
//! locations: a file goes only when it really lies under the real artifacts folder and no run
//! that stays lists it.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::plan::paths::real_path;

pub(super) struct ArtifactFiles {
    /// The artifacts folder, real.
    root: PathBuf,
    /// Real paths of the files a run that stays lists.
    kept: HashSet<PathBuf>,
}

impl ArtifactFiles {
    /// `kept`: the artifact paths of the runs that stay; `doomed`: those of the runs that go (only
    /// their file names are used, to skip resolving kept paths that cannot collide).
    pub(super) fn new(root: &Path, kept: &[String], doomed: &[String]) -> ArtifactFiles {
        let names: HashSet<OsString> = doomed.iter().filter_map(|p| Path::new(p).file_name().map(Into::into)).collect();
        let kept = kept.iter().map(Path::new).filter(|p| p.file_name().is_some_and(|n| names.contains(n))).filter_map(real_file).collect();
        ArtifactFiles { root: real_file(root).unwrap_or_else(|| root.to_path_buf()), kept }
    }

    /// Deletes the listed files of pruned runs and their run folders (`run-<id>`); returns how
    /// many files went.
    pub(super) fn delete(&self, paths: &[String], run_ids: &[i64]) -> u64 {
        let mut deleted = 0;
        for p in paths {
            // Only files cxflow keeps for itself go: outputs written elsewhere belong to the user.
            let Some(real) = real_file(Path::new(p)) else { continue };
            if real.starts_with(&self.root) && real != self.root && !self.kept.contains(&real) && std::fs::remove_file(&real).is_ok() {
                deleted += 1;
            }
        }
        for id in run_ids {
            let dir = self.root.join(format!("run-{id}"));
            // Not through a symlink: its target is not the run's folder.
            if dir.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                deleted += self.clear(&dir);
            }
        }
        deleted
    }

    /// Removes `dir` and what is in it, except files a kept run lists (and the folders holding
    /// them). Symlinks are removed, never followed.
    fn clear(&self, dir: &Path) -> u64 {
        let mut deleted = 0;
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => deleted += self.clear(&p),
                Ok(_) if !self.kept.contains(&p) => deleted += u64::from(std::fs::remove_file(&p).is_ok()),
                _ => {}
            }
        }
        let _ = std::fs::remove_dir(dir); // fails, and stays, when a kept file is inside
        deleted
    }
}

/// `p` with its folder resolved (symlinks, `..`), relative to the working folder if relative; the
/// last part is kept as named, so a symlink is itself, not its target. None when `p` names no file.
fn real_file(p: &Path) -> Option<PathBuf> {
    let p = std::path::absolute(p).ok()?;
    let name = p.file_name()?;
    Some(real_path(p.parent()?).ok()?.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_real_files_under_the_folder_that_no_kept_run_lists_go() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("artifacts");
        std::fs::create_dir_all(root.join("run-1/s")).unwrap();
        std::fs::create_dir_all(root.join("digests")).unwrap();
        for f in ["run-1/s/a.png", "digests/team.html", "digests/old.html"] {
            std::fs::write(root.join(f), "x").unwrap();
        }
        std::fs::write(d.path().join("outside.csv"), "mine").unwrap();
        let s = |p: PathBuf| p.display().to_string();
        let doomed = [
            s(root.join("run-1/s/a.png")),
            s(root.join("../outside.csv")),
            s(root.join("digests/team.html")),
            s(root.join("digests/old.html")),
        ];
        // A kept run lists the same fixed-name file, spelled another way.
        let kept = [s(root.join("run-1/../digests/team.html"))];
        let files = ArtifactFiles::new(&root, &kept, &doomed);
        assert_eq!(files.delete(&doomed, &[1]), 2);
        assert_eq!(std::fs::read_to_string(d.path().join("outside.csv")).unwrap(), "mine");
        assert!(root.join("digests/team.html").exists());
        assert!(!root.join("digests/old.html").exists() && !root.join("run-1").exists());
    }

    crate::store::testing::store_test! {
    #[tokio::test]
    async fn prune_keeps_files_outside_the_folder_and_files_a_kept_run_lists(fresh) {
        use crate::store::{NewRun, RunStatus, TriggerKind};
        let d = tempfile::tempdir().unwrap();
        let s = fresh.open().await;
        let arts = d.path().join("artifacts");
        std::fs::create_dir_all(arts.join("digests")).unwrap();
        std::fs::write(arts.join("digests/team.html"), "latest digest").unwrap();
        std::fs::write(d.path().join("report.csv"), "the user's").unwrap();
        let p = serde_json::json!({});
        let mut ids = vec![];
        for paths in [vec!["artifacts/../report.csv", "artifacts/digests/team.html"], vec!["artifacts/digests/team.html"]] {
            let id = s
                .start_run(NewRun { workflow: "a", file: "a.yaml", trigger: TriggerKind::Schedule, params: &p, scheduled_for: None })
                .await
                .unwrap();
            s.finish_run(id, RunStatus::Succeeded, None).await.unwrap();
            let arts: Vec<_> = paths
                .iter()
                .map(|f| crate::engine::log::NewArtifact {
                    step_id: "s".into(),
                    item_key: None,
                    kind: "csv".into(),
                    path: d.path().join(f).display().to_string(),
                })
                .collect();
            s.add_artifacts(id, &arts).await.unwrap();
            ids.push(id);
        }
        let rules = std::collections::HashMap::from([("a".to_string(), crate::store::Retention { days: None, runs: Some(1) })]);
        let r = s.prune(crate::store::Retention::default(), &rules, &arts, None).await.unwrap();
        assert_eq!((r.runs_deleted, r.files_deleted), (1, 0), "{r:?}");
        assert_eq!(std::fs::read_to_string(d.path().join("report.csv")).unwrap(), "the user's");
        assert_eq!(std::fs::read_to_string(arts.join("digests/team.html")).unwrap(), "latest digest");
    }
    }
}
