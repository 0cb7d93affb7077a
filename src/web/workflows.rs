//! Every workflow file of the project as the dashboard shows it: planned, or broken with its
//! diagnostics. Planned again whenever the workflows folder changes, so the overview follows
//! hot reload in `serve` and edits under `cxflow ui`.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tokio_util::sync::CancellationToken;

use crate::cli::Project;
use crate::engine::Plan;

/// A workflow file that failed validation, with what `cxflow validate` says about it.
pub struct Broken {
    pub file: PathBuf,
    pub message: String,
}

#[derive(Default)]
pub struct Snapshot {
    /// Sorted by name.
    pub good: Vec<Arc<Plan>>,
    pub bad: Vec<Broken>,
}

impl Snapshot {
    pub fn get(&self, name: &str) -> Option<&Arc<Plan>> {
        self.good.iter().find(|p| p.name == name)
    }
}

#[derive(Clone)]
pub struct Workflows {
    project: Arc<Project>,
    current: Arc<RwLock<Arc<Snapshot>>>,
}

impl Workflows {
    /// Plans every file now.
    pub fn load(project: Arc<Project>) -> Workflows {
        let w = Workflows { project, current: Default::default() };
        w.reload();
        w
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().unwrap().clone()
    }

    /// Plans every file again.
    pub fn reload(&self) {
        let snap = match crate::cli::load_all(&self.project) {
            Ok((good, bad)) => {
                let mut good: Vec<Arc<Plan>> = good.into_iter().map(|(_, p)| p).collect();
                good.sort_by(|a, b| a.name.cmp(&b.name));
                Snapshot { good, bad: bad.into_iter().map(|(file, message)| Broken { file, message }).collect() }
            }
            Err(e) => Snapshot {
                good: Vec::new(),
                bad: vec![Broken { file: self.project.workflows_dir(), message: e.to_string() }],
            },
        };
        *self.current.write().unwrap() = Arc::new(snap);
    }

    /// Reloads on every change of the workflows folder until `shutdown`.
    pub fn watch(&self, shutdown: CancellationToken) {
        let dir = self.project.workflows_dir();
        let Ok((watch, mut batches)) = crate::scheduler::watch::watch_folder(&dir) else {
            tracing::warn!(folder = %dir.display(), "cannot watch the workflows folder; the dashboard shows the workflows as they were at start");
            return;
        };
        let me = self.clone();
        tokio::spawn(async move {
            let _watch = watch;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    b = batches.recv() => match b {
                        Some(_) => {
                            let me = me.clone();
                            let _ = tokio::task::spawn_blocking(move || me.reload()).await;
                        }
                        None => return,
                    },
                }
            }
        });
    }
}
