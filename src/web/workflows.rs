//! Every workflow file of the project as the dashboard shows it: planned, or broken with its
//! diagnostics. Kept up to date when the workflows folder changes, so the overview follows hot
//! reload in `serve` and edits under `cxflow ui`.
//!
//! A change plans again only the files it touched (with 10,000 files, planning all of them per
//! change took seconds of CPU): each file's own outcome is kept, and names shared by several files
//! are worked out again from the names kept, over every file, as `cxflow validate` does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

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
        // Names in `good` are unique: a name two files share is in `bad`.
        self.good.binary_search_by(|p| p.name.as_str().cmp(name)).ok().map(|i| &self.good[i])
    }
}

/// One file as planned on its own, before names are compared across files.
#[derive(Clone)]
struct Planned {
    /// Its `name:`, when it reads as a workflow (a name clash counts it even if it fails to plan).
    name: Option<String>,
    outcome: Result<Arc<Plan>, String>,
}

#[derive(Clone)]
pub struct Workflows {
    project: Arc<Project>,
    current: Arc<RwLock<Arc<Snapshot>>>,
    /// By file name in the workflows folder.
    files: Arc<Mutex<BTreeMap<PathBuf, Planned>>>,
}

impl Workflows {
    /// Plans every file now.
    pub fn load(project: Arc<Project>) -> Workflows {
        let w = Workflows { project, current: Default::default(), files: Default::default() };
        w.reload();
        w
    }

    /// The files as `serve` already planned them (the valid ones keep their plans; the others are
    /// planned again here, as their names are not known).
    pub fn from_loaded(project: Arc<Project>, good: &[(PathBuf, Arc<Plan>)]) -> Workflows {
        let files = good
            .iter()
            .filter_map(|(f, p)| Some((PathBuf::from(f.file_name()?), Planned { name: Some(p.name.clone()), outcome: Ok(p.clone()) })))
            .collect();
        let w = Workflows { project, current: Default::default(), files: Arc::new(Mutex::new(files)) };
        w.refresh(&BTreeSet::new());
        w
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().unwrap().clone()
    }

    /// Plans every file again.
    pub fn reload(&self) {
        self.files.lock().unwrap().clear();
        self.refresh(&BTreeSet::new());
    }

    /// Plans again the files in `changed` (and any file not seen yet); the others keep theirs.
    fn refresh(&self, changed: &BTreeSet<PathBuf>) {
        let dir = self.project.workflows_dir();
        let listed = if dir.is_dir() { crate::cli::workflow_files(&dir) } else { Ok(Vec::new()) };
        let listed = match listed {
            Ok(l) => l,
            Err(e) => {
                let snap = Snapshot { good: Vec::new(), bad: vec![Broken { file: dir, message: e.to_string() }] };
                *self.current.write().unwrap() = Arc::new(snap);
                return;
            }
        };
        let changed: BTreeSet<&Path> = changed.iter().filter_map(|p| p.file_name().map(Path::new)).collect();
        let mut files = self.files.lock().unwrap();
        let mut next = BTreeMap::new();
        for f in &listed {
            let Some(key) = f.file_name().map(PathBuf::from) else { continue };
            let kept = files.remove(&key).filter(|_| !changed.contains(key.as_path()));
            next.insert(key, (f, kept.unwrap_or_else(|| plan(&self.project, f))));
        }
        // A name two files share runs neither: which one was meant is for a person to say.
        let mut by_name: HashMap<&str, Vec<PathBuf>> = HashMap::new();
        for (f, p) in next.values() {
            if let Some(n) = &p.name {
                by_name.entry(n.as_str()).or_default().push((*f).clone());
            }
        }
        let dups: HashMap<PathBuf, String> = by_name
            .values()
            .filter(|g| g.len() > 1)
            .flat_map(|g| crate::cli::name_clashes(g))
            .map(|(f, d)| (f, format!("{d}\n")))
            .collect();
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for (f, p) in next.values() {
            match (dups.get(*f), &p.outcome) {
                (Some(d), _) => bad.push(Broken { file: (*f).clone(), message: d.clone() }),
                (None, Ok(plan)) => good.push(plan.clone()),
                (None, Err(m)) => bad.push(Broken { file: (*f).clone(), message: m.clone() }),
            }
        }
        good.sort_by(|a, b| a.name.cmp(&b.name));
        *files = next.into_iter().map(|(k, (_, p))| (k, p)).collect();
        drop(files);
        *self.current.write().unwrap() = Arc::new(Snapshot { good, bad });
    }

    /// Follows every change of the workflows folder until `shutdown`.
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
                        Some(batch) => {
                            let me = me.clone();
                            let _ = tokio::task::spawn_blocking(move || me.refresh(&batch)).await;
                        }
                        None => return,
                    },
                }
            }
        });
    }
}

/// One file on its own: what `cxflow validate` says of it, name clashes aside.
fn plan(project: &Project, file: &Path) -> Planned {
    match crate::spec::load(file) {
        Err(d) => Planned { name: None, outcome: Err(d.to_string()) },
        Ok(spec) => {
            let name = Some(spec.spec.name.clone());
            match project.plan_spec(spec) {
                Ok(p) => Planned { name, outcome: Ok(Arc::new(p)) },
                Err(d) => Planned { name, outcome: Err(d.to_string()) },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wf(name: &str) -> String {
        format!("name: {name}\nsteps:\n  - id: t\n    read_csv: data/t.csv\n")
    }

    type Shown = (Vec<(String, PathBuf)>, Vec<(PathBuf, String)>);

    /// What the dashboard shows, comparable.
    fn shown(s: &Snapshot) -> Shown {
        let good = s.good.iter().map(|p| (p.name.clone(), p.file.clone())).collect();
        let bad = s.bad.iter().map(|b| (b.file.clone(), b.message.clone())).collect();
        (good, bad)
    }

    /// Planning only what changed shows what planning every file shows, through clashes made
    /// and undone, broken and fixed files, deletions and new files; and leaves the others'
    /// plans alone.
    #[test]
    fn a_change_plans_only_its_files_and_shows_what_planning_all_shows() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("workflows")).unwrap();
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::write(root.join("data/t.csv"), "id\n1\n").unwrap();
        let path = |f: &str| root.join("workflows").join(f);
        for (f, text) in
            [("a.yaml", wf("a")), ("b.yaml", wf("b")), ("c.yaml", wf("c").replace("read_csv", "read_cvs")), ("d.yaml", "name: [".into())]
        {
            std::fs::write(path(f), text).unwrap();
        }
        let project = Arc::new(Project::open(root).unwrap());
        let live = Workflows::load(project.clone());
        let full = Workflows::load(project.clone());
        let edits: Vec<(&str, Option<String>)> = vec![
            ("b.yaml", Some(wf("a"))),                                 // b now clashes with a
            ("d.yaml", Some(wf("a"))),                                 // three share it; d also parses now
            ("b.yaml", Some(wf("b"))),                                 // b leaves the clash; a and d still share
            ("d.yaml", None),                                          // deleted: a is alone again
            ("c.yaml", Some(wf("c"))),                                 // fixed
            ("e.yaml", Some(wf("e"))),                                 // new
            ("a.yaml", Some(wf("a").replace("read_csv", "read_cvs"))), // broken
            ("é.yaml", Some(wf("e"))),                                 // a clash under a non-ASCII file name
        ];
        for (f, text) in edits {
            let before = live.snapshot();
            match &text {
                Some(t) => std::fs::write(path(f), t).unwrap(),
                None => std::fs::remove_file(path(f)).unwrap(),
            }
            live.refresh(&BTreeSet::from([path(f)]));
            full.reload();
            assert_eq!(shown(&live.snapshot()), shown(&full.snapshot()), "after {f}: {text:?}");
            // The files the change did not touch keep their plans.
            for p in before.good.iter().filter(|p| p.file.file_name() != Some(std::ffi::OsStr::new(f))) {
                if let Some(now) = live.snapshot().good.iter().find(|q| q.file == p.file) {
                    assert!(Arc::ptr_eq(p, now), "{} was planned again", p.file.display());
                }
            }
        }
        let snap = live.snapshot();
        assert!(snap.get("c").is_some() && snap.get("a").is_none() && snap.get("zz").is_none());
    }

    #[test]
    fn the_plans_serve_made_are_shown_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("workflows")).unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/t.csv"), "id\n1\n").unwrap();
        std::fs::write(dir.path().join("workflows/a.yaml"), wf("a")).unwrap();
        std::fs::write(dir.path().join("workflows/b.yaml"), "name: [").unwrap();
        let project = Arc::new(Project::open(dir.path()).unwrap());
        let (good, _) = crate::cli::load_all(&project).unwrap();
        let seeded = Workflows::from_loaded(project.clone(), &good);
        assert!(Arc::ptr_eq(&seeded.snapshot().good[0], &good[0].1), "one plan, held once");
        assert_eq!(shown(&seeded.snapshot()), shown(&Workflows::load(project).snapshot()));
    }
}
