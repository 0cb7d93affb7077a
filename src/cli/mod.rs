//! The commands behind `cxflow <command>`. They return an exit status; `main` prints errors.

/// `outln!` for lines that may hold record data: control characters are escaped (`term.rs`).
macro_rules! termln {
    ($($t:tt)*) => {
        outln!("{}", $crate::cli::term::printable(&format!($($t)*)))
    };
}

mod actions;
mod demo;
mod hash_password;
mod load;
mod migrate_log;
mod names;
mod resolve;
mod run;
mod serve;
mod show;
mod signals;
pub mod term;
mod ui;
mod worker;

use std::path::{Path, PathBuf};

pub use actions::{cancel, pause, unpause};
pub use demo::demo_portal;
pub use hash_password::hash_password;
pub(crate) use load::workflow_files;
pub use load::Project;
pub use migrate_log::{migrate_log, MigrateLogArgs};
pub(crate) use names::{by_name as workflow_by_name, clashes as name_clashes, spec_by_name as workflow_spec_by_name};
pub use resolve::{resolve, ResolveArgs};
pub use run::{resume, run, RunArgs};
pub(crate) use serve::clone_project;
#[cfg(test)]
pub(crate) use serve::load_all;
pub use serve::{next, prune, serve, sqlite_file};
pub use show::{nodes, routed, runs, show, RunsArgs};
pub use ui::ui;
pub use worker::worker;

/// Exit codes, documented in the README.
pub mod exit {
    pub const OK: i32 = 0;
    /// A run failed, ended partial, or something outside the user's files went wrong.
    pub const FAILED: i32 = 1;
    /// Invalid input: a workflow, configuration or argument the user has to fix.
    pub const INVALID: i32 = 2;
    /// Stopped by Ctrl-C or SIGTERM; `cxflow resume` continues it.
    pub const INTERRUPTED: i32 = 130;
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The user's input is wrong: exit 2.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Invalid(_) => exit::INVALID,
            CliError::Other(_) => exit::FAILED,
        }
    }
}

impl From<crate::store::StoreError> for CliError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::NoSuchRun(_) | crate::store::StoreError::StillRunning { .. } => CliError::Invalid(e.to_string()),
            other => CliError::Other(other.into()),
        }
    }
}

impl From<crate::control::ControlError> for CliError {
    fn from(e: crate::control::ControlError) -> Self {
        match e {
            crate::control::ControlError::Other(e) => CliError::Other(e),
            other => CliError::Invalid(other.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, CliError>;

/// `cxflow validate [PATH]`: every workflow file in a folder (default: the workflows folder), or one file.
pub fn validate(project: &Project, path: Option<&Path>) -> Result<i32> {
    let target: PathBuf = match path {
        Some(p) => p.to_path_buf(),
        None => project.workflows_dir(),
    };
    let files = if target.is_dir() { load::workflow_files(&target)? } else { vec![target.clone()] };
    if files.is_empty() {
        return Err(CliError::Invalid(format!("no workflow files (*.yaml, *.yml) in `{}`", target.display())));
    }
    let mut bad = 0;
    let dups = names::duplicates(project, &files);
    for f in &files {
        let planned = match (project.plan(f), dups.iter().find(|(g, _)| g == f)) {
            (Ok(_), Some((_, d))) => Err(CliError::Invalid(format!("{d}\n"))),
            (Err(CliError::Invalid(msg)), Some((_, d))) => Err(CliError::Invalid(format!("{msg}{d}\n"))),
            (other, _) => other,
        };
        match planned {
            Ok(plan) => outln!("ok: {} ({}, {} steps)", f.display(), plan.name, plan.steps.len()),
            Err(CliError::Invalid(msg)) => {
                bad += 1;
                errprint!("{}", term::printable(&msg));
                if !msg.ends_with('\n') {
                    errln!();
                }
            }
            Err(e) => return Err(e),
        }
    }
    if bad > 0 {
        errln!("{bad} of {} workflow file(s) have errors", files.len());
        return Ok(exit::INVALID);
    }
    Ok(exit::OK)
}

/// For commands that only print: end quietly when the reader goes away (`cxflow runs | head`), as
/// other command-line tools do, instead of failing on the write. Not for commands that talk to
/// servers or child processes, where a closed pipe must stay an error to handle.
pub fn quiet_broken_pipe() {
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// `cxflow schema`: the JSON Schema of the workflow format.
pub fn schema() -> Result<i32> {
    let s = serde_json::to_string_pretty(&crate::steps::REGISTRY.workflow_schema()).map_err(anyhow::Error::from)?;
    outln!("{s}");
    Ok(exit::OK)
}
