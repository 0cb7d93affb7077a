//! Watches the workflows folder so that a new, changed or deleted file takes effect without a
//! restart. Editors save in bursts (temp file, rename, chmod), so events are gathered for a
//! short quiet period and handed over as one set of paths.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// How long the folder must be quiet before a batch of changes is handed over.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Keeps the OS watch alive; drop it to stop watching.
pub struct FolderWatch {
    _watcher: notify::RecommendedWatcher,
}

pub fn is_workflow_file(p: &Path) -> bool {
    let hidden = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
    !hidden && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

/// Starts watching `dir`; batches of changed workflow file paths arrive on the receiver.
pub fn watch_folder(dir: &Path) -> notify::Result<(FolderWatch, mpsc::Receiver<BTreeSet<PathBuf>>)> {
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if matches!(ev.kind, notify::EventKind::Access(_)) {
                return;
            }
            for p in ev.paths {
                if is_workflow_file(&p) {
                    let _ = raw_tx.send(p);
                }
            }
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(first) = raw_rx.recv().await {
            let mut batch = BTreeSet::from([first]);
            loop {
                match tokio::time::timeout(DEBOUNCE, raw_rx.recv()).await {
                    Ok(Some(p)) => {
                        batch.insert(p);
                    }
                    Ok(None) => break,
                    Err(_) => break,
                }
            }
            if tx.send(batch).await.is_err() {
                return;
            }
        }
    });
    Ok((FolderWatch { _watcher: watcher }, rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_created_changed_and_deleted_files() {
        let dir = tempfile::tempdir().unwrap();
        let (_w, mut rx) = watch_folder(dir.path()).unwrap();
        let f = dir.path().join("a.yaml");
        std::fs::write(&f, "name: a\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let batch = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap();
        assert!(batch.contains(&f), "{batch:?}");
        assert!(batch.iter().all(|p| is_workflow_file(p)));
        std::fs::remove_file(&f).unwrap();
        let batch = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap();
        assert!(batch.contains(&f));
    }
}
