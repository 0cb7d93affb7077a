//! Workflow names are unique in a project. The name keys the run log, the default idempotency
//! keys of emails and portal submissions, and what a route step remembers: two files with one
//! name would share them, and the second would silently skip the emails the first had sent.
//! `cxflow run NAME` finds a workflow by this name.

use std::path::{Path, PathBuf};

use super::load::{workflow_files, Project};
use super::{CliError, Result};
use crate::spec::{Diagnostic, SpecFile};

/// The `name:` of every workflow file in the project's folder that reads as a workflow (one
/// that does not is reported by its own validation), plus `extra` if it lies elsewhere.
fn named(project: &Project, extra: Option<&Path>) -> Vec<SpecFile> {
    let dir = project.workflows_dir();
    let mut files = if dir.is_dir() { workflow_files(&dir).unwrap_or_default() } else { Vec::new() };
    if let Some(f) = extra.filter(|f| !files.iter().any(|g| same_file(f, g))) {
        files.push(f.to_path_buf());
    }
    files.iter().filter_map(|f| crate::spec::load(f).ok()).collect()
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// For `file`: an error at its `name:` naming each other file (and line) that uses the same name.
fn clash(file: &SpecFile, all: &[SpecFile]) -> Option<Diagnostic> {
    let others: Vec<String> = all
        .iter()
        .filter(|o| o.spec.name == file.spec.name && !same_file(&o.path, &file.path))
        .map(|o| {
            let (line, col) = o.positions.value("name");
            format!("`{}:{line}:{col}`", o.path.display())
        })
        .collect();
    if others.is_empty() {
        return None;
    }
    let d = file.diagnostic("name", true, format!("workflow name `{}` is also used by {}", file.spec.name, others.join(", ")));
    Some(d.with_help(Some(
        "give each workflow its own `name:`: the name keys the run log and the delivery ledger, so workflows sharing one would skip each other's emails"
            .into(),
    )))
}

/// For each of `files` whose name another workflow file of the project also uses: its error.
pub(super) fn duplicates(project: &Project, files: &[PathBuf]) -> Vec<(PathBuf, Diagnostic)> {
    let mut all = named(project, None);
    for f in files {
        if !all.iter().any(|s| same_file(&s.path, f)) {
            all.extend(crate::spec::load(f).ok());
        }
    }
    files
        .iter()
        .filter_map(|f| {
            let me = all.iter().find(|s| same_file(&s.path, f))?;
            Some((f.clone(), clash(me, &all)?))
        })
        .collect()
}

/// Refuses `file` when another workflow file of the project has the same name.
pub(crate) fn check_unique(project: &Project, file: &Path) -> Result<()> {
    match duplicates(project, &[file.to_path_buf()]).into_iter().next() {
        Some((_, d)) => Err(CliError::Invalid(d.to_string())),
        None => Ok(()),
    }
}

/// The file of the workflow named `name` in the workflows folder, if exactly one has it.
pub(crate) fn by_name(project: &Project, name: &str) -> Result<Option<PathBuf>> {
    let hits: Vec<SpecFile> = named(project, None).into_iter().filter(|s| s.spec.name == name).collect();
    match hits.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.path.clone())),
        [first, ..] => Err(CliError::Invalid(clash(first, &hits).map(|d| d.to_string()).unwrap_or_default())),
    }
}
