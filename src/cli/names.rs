//! Workflow names are unique in a project. The name keys the run log, the default idempotency
//! keys of emails and portal submissions, and what a route step remembers: two files with one
//! name would share them, and the second would silently skip the emails the first had sent.
//! `cxflow run NAME` finds a workflow by this name.

use std::collections::HashMap;
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

/// The workflow files of the project's folder that read as a workflow named `name`. A file's
/// `name:` is in its text as written unless YAML spells it otherwise (an escape, a tag, or a
/// name with spaces or quotes, which can be folded or doubled): only the files that hold it, or
/// may spell it otherwise, are parsed, instead of all of them (a hot reload among 10,000 files
/// parsed every one).
fn named_as(project: &Project, name: &str, except: Option<&Path>) -> Vec<SpecFile> {
    let dir = project.workflows_dir();
    let files = if dir.is_dir() { workflow_files(&dir).unwrap_or_default() } else { Vec::new() };
    let except = except.map(file_key);
    let literal = !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || matches!(c, '\'' | '"' | '\\'));
    let finder = memchr::memmem::Finder::new(name.as_bytes());
    let may_hold =
        |f: &PathBuf| !literal || std::fs::read(f).is_ok_and(|t| finder.find(&t).is_some() || t.iter().any(|b| matches!(b, b'\\' | b'!')));
    files
        .iter()
        .filter(|f| may_hold(f) && except.as_ref().is_none_or(|e| file_key(f) != *e))
        .filter_map(|f| crate::spec::load(f).ok())
        .filter(|s| s.spec.name == name)
        .collect()
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// For `file`: an error at its `name:` naming each other file (and line) that uses the same name.
fn clash<'a>(file: &SpecFile, all: impl IntoIterator<Item = &'a SpecFile>) -> Option<Diagnostic> {
    let others: Vec<String> = all
        .into_iter()
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

/// What `same_file` compares: the resolved path, or the path as given when it cannot be
/// resolved. Computed once per file: comparing every pair resolved each path once per pair,
/// which took minutes for 10,000 files.
fn file_key(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

/// For each of `files` whose name another workflow file of the project also uses: its error.
pub(super) fn duplicates(project: &Project, files: &[PathBuf]) -> Vec<(PathBuf, Diagnostic)> {
    let mut all = named(project, None);
    let mut index: HashMap<PathBuf, usize> = HashMap::with_capacity(all.len());
    for (i, s) in all.iter().enumerate() {
        index.entry(file_key(&s.path)).or_insert(i);
    }
    for f in files {
        if let std::collections::hash_map::Entry::Vacant(slot) = index.entry(file_key(f)) {
            if let Ok(s) = crate::spec::load(f) {
                slot.insert(all.len());
                all.push(s);
            }
        }
    }
    let dups: HashMap<PathBuf, Diagnostic> = clashes_among(all.iter().map(|s| (&s.path, s))).into_iter().collect();
    files
        .iter()
        .filter_map(|f| {
            let me = &all[*index.get(&file_key(f))?];
            Some((f.clone(), dups.get(&me.path)?.clone()))
        })
        .collect()
}

/// For `files`, every workflow file that uses one name: each one's error, as `duplicates` gives
/// it (only the files sharing a name are read).
pub(crate) fn clashes(files: &[PathBuf]) -> Vec<(PathBuf, Diagnostic)> {
    let all: Vec<(&PathBuf, SpecFile)> = files.iter().filter_map(|f| Some((f, crate::spec::load(f).ok()?))).collect();
    clashes_among(all.iter().map(|(f, s)| (*f, s)))
}

/// Among workflow files read from one listing of the folder (a file that does not read as a
/// workflow left out): each one whose name another also uses, with its error.
pub(super) fn clashes_among<'a>(specs: impl IntoIterator<Item = (&'a PathBuf, &'a SpecFile)>) -> Vec<(PathBuf, Diagnostic)> {
    let mut by_name: HashMap<&str, Vec<(&PathBuf, &SpecFile)>> = HashMap::new();
    for (f, s) in specs {
        by_name.entry(s.spec.name.as_str()).or_default().push((f, s));
    }
    by_name
        .values()
        .filter(|g| g.len() > 1)
        .flat_map(|g| g.iter().filter_map(|(f, s)| Some(((*f).clone(), clash(s, g.iter().map(|(_, s)| *s))?))))
        .collect()
}

/// Refuses a workflow file, read, when another workflow file of the project has the same name.
pub(crate) fn check_unique_spec(project: &Project, loaded: &SpecFile) -> Result<()> {
    let others = named_as(project, &loaded.spec.name, Some(&loaded.path));
    match clash(loaded, &others) {
        Some(d) => Err(CliError::Invalid(d.to_string())),
        None => Ok(()),
    }
}

/// The workflow named `name` in the workflows folder, read, if exactly one has it.
pub(crate) fn spec_by_name(project: &Project, name: &str) -> Result<Option<SpecFile>> {
    let mut hits = named_as(project, name, None);
    match hits.len() {
        0 => Ok(None),
        1 => Ok(hits.pop()),
        _ => Err(CliError::Invalid(clash(&hits[0], &hits).map(|d| d.to_string()).unwrap_or_default())),
    }
}

/// The file of the workflow named `name` in the workflows folder, if exactly one has it.
pub(crate) fn by_name(project: &Project, name: &str) -> Result<Option<PathBuf>> {
    Ok(spec_by_name(project, name)?.map(|s| s.path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> (tempfile::TempDir, Project) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("workflows")).unwrap();
        for (f, text) in files {
            std::fs::write(dir.path().join("workflows").join(f), text).unwrap();
        }
        let p = Project::open(dir.path()).unwrap();
        (dir, p)
    }

    const STEPS: &str = "steps:\n  - id: t\n    read_csv: data/t.csv\n";

    /// Names YAML spells otherwise than as written still clash: only the parse of every file
    /// used to be the check, and the text search in front of it must not hide them.
    #[test]
    fn names_spelled_otherwise_in_yaml_still_clash() {
        let cases = [
            ("name: wf-1\n", "name: \"wf\\x2d1\"\n"),
            ("name: two words\n", "name: two\n  words\n"),
            ("name: it's\n", "name: 'it''s'\n"),
            ("name: café\n", "name: \"caf\\u00e9\"\n"),
        ];
        for (mine, other) in cases {
            let (dir, p) = project(&[("a.yaml", &format!("{mine}{STEPS}")), ("b.yaml", &format!("{other}{STEPS}"))]);
            let a = dir.path().join("workflows/a.yaml");
            let err = check_unique_spec(&p, &crate::spec::load(&a).unwrap()).expect_err(&format!("{mine:?} against {other:?}"));
            assert!(err.to_string().contains("b.yaml"), "{err}");
            let name = crate::spec::load(&a).unwrap().spec.name;
            assert!(by_name(&p, &name).is_err(), "{name} is ambiguous");
        }
    }

    #[test]
    fn a_unique_name_passes_and_is_found() {
        let (dir, p) = project(&[("a.yaml", &format!("name: wf-1\n{STEPS}")), ("b.yaml", &format!("name: wf-10\n{STEPS}"))]);
        check_unique_spec(&p, &crate::spec::load(&dir.path().join("workflows/a.yaml")).unwrap()).unwrap();
        assert_eq!(by_name(&p, "wf-1").unwrap().unwrap().file_name().unwrap(), "a.yaml");
        assert_eq!(by_name(&p, "wf-10").unwrap().unwrap().file_name().unwrap(), "b.yaml");
        assert!(by_name(&p, "wf").unwrap().is_none());
    }
}
