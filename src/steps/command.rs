//! `command`: run a program once per item, like a person running a script per record.
//! Arguments are templates; there is no shell, so record data can never inject commands.
//! The program sees a small base environment plus the secrets its workflow declares, never the
//! whole environment of cxflow (which holds the SMTP login and every other workflow's secrets).
//! Exit 0 is success, exit 75 (EX_TEMPFAIL) asks for a retry, anything else fails the item.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{Failed, ItemCx, ItemOutput, StepCx, StepError};
use crate::engine::{ItemRunner, ItemStep};
use crate::plan::templates::Reads;
use crate::plan::{PlanCx, TemplateRef};
use crate::spec::kinds::records::CommandSpec;

/// Variables passed through from cxflow's own environment: what a program needs to find other
/// programs, its home and temporary folders, and to speak the user's language and time zone.
/// `LC_*` (every locale category) comes too. Documented in docs/security.md.
pub(crate) const BASE_ENV: &[&str] = &["PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR"];

fn passed_through(name: &str) -> bool {
    BASE_ENV.contains(&name) || name.starts_with("LC_")
}

/// The exit status by which a program asks to be tried again later (sysexits.h EX_TEMPFAIL).
pub const RETRY_EXIT: i32 = 75;

#[derive(Debug)]
pub struct Planned {
    argv: Vec<TemplateRef>,
}

pub(crate) fn plan(raw: &crate::spec::Node, path: &str, cx: &mut PlanCx) -> Option<Box<dyn ItemStep>> {
    let spec: CommandSpec = cx.spec(raw, path)?;
    if spec.is_empty() || spec[0].trim().is_empty() {
        cx.error(path, "the command is empty", Some("write it as a list: `command: [python3, scripts/x.py, \"{{item.id}}\"]`".into()));
        return None;
    }
    let argv: Vec<Option<TemplateRef>> = spec.iter().enumerate().map(|(i, a)| cx.template(&format!("{path}[{i}]"), a)).collect();
    argv.into_iter().collect::<Option<Vec<_>>>().map(|argv| Box::new(Planned { argv }) as Box<dyn ItemStep>)
}

#[async_trait]
impl ItemStep for Planned {
    /// Its arguments are the workflow's own templates: the plan knows what they read.
    fn own_reads(&self) -> Reads {
        Reads::none()
    }

    async fn open(&self, _cx: &StepCx<'_>) -> anyhow::Result<Box<dyn ItemRunner>> {
        Ok(Box::new(Runner { argv: self.argv.clone() }))
    }
}

struct Runner {
    argv: Vec<TemplateRef>,
}

#[async_trait]
impl ItemRunner for Runner {
    async fn run_item(&self, env: &ItemCx<'_>) -> Result<ItemOutput, Failed> {
        let run = env.run;
        let mut argv = Vec::with_capacity(self.argv.len());
        for a in &self.argv {
            argv.push(run.templates.render(a, env.ctx).map_err(|e| StepError::Fatal(e.to_string()))?);
        }
        if run.dry_run {
            return Ok(ItemOutput::new(json!({"would_run": argv})));
        }
        // The OS would refuse the argument with a bare "nul byte found in provided data".
        if let Some(i) = argv.iter().position(|a| a.contains('\0')) {
            return Err(StepError::Fatal(format!(
                "argument {i} of `{}` contains a NUL byte (from this record's data), which a program argument cannot hold; remove it from the data",
                argv[0]
            ))
            .into());
        }
        let base: Vec<_> = std::env::vars_os().filter(|(k, _)| k.to_str().is_some_and(passed_through)).collect();
        let search = base.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_os_str());
        let out = tokio::process::Command::new(on_path(&argv[0], search, &run.project))
            .args(&argv[1..])
            .current_dir(&run.project)
            .env_clear()
            .envs(base)
            .envs(run.secrets.declared())
            .env("CXFLOW_RUN_ID", run.run_id.to_string())
            .env("CXFLOW_ITEM_KEY", env.key)
            .env("CXFLOW_ATTEMPT", env.attempt.to_string())
            .stdin(Stdio::null())
            // A timed-out or abandoned item must not leave its program running.
            .kill_on_drop(true)
            // Its own process group: a terminal's Ctrl-C goes to the foreground group, and would
            // kill the programs of items in flight, which a graceful stop lets finish.
            .process_group(0)
            .output()
            .await
            .map_err(|e| StepError::Fatal(spawn_error(&argv, &e)))?;
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() {
            let output = match serde_json::from_str::<Value>(&stdout) {
                Ok(v @ Value::Object(_)) => v,
                _ => json!({"stdout": stdout}),
            };
            return Ok(ItemOutput::new(output));
        }
        // Masked before it is cut: a cut through a secret would leave a part the mask cannot know.
        let stderr = run.secrets.redact(&String::from_utf8_lossy(&out.stderr));
        let mut tail: String = stderr.trim().chars().rev().take(400).collect::<Vec<_>>().into_iter().rev().collect();
        if tail.is_empty() {
            tail = "(nothing on stderr)".into();
        }
        let code = out.status.code();
        let msg = match code {
            Some(c) => format!("`{}` exited with status {c}: {tail}", argv[0]),
            None => format!("`{}` was killed by a signal: {tail}", argv[0]),
        };
        if code == Some(RETRY_EXIT) {
            Err(StepError::Retryable(msg).into())
        } else {
            Err(StepError::Fatal(msg).into())
        }
    }
}

/// Where the OS would find `program` on `search` (the `PATH` the program is given), looked up
/// here so that the spawn takes std's `posix_spawn` path: with a `PATH` of its own and a bare
/// name, std forks cxflow whole instead, which copies its page tables and then faults on every
/// page either process writes (most of a run's time in a workflow with many `command` steps).
/// A name with a `/`, or one not found, goes to the OS as written (its error, its search).
fn on_path(program: &str, search: Option<&OsStr>, cwd: &Path) -> PathBuf {
    if program.contains('/') || program.is_empty() {
        return PathBuf::from(program);
    }
    let executable = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    // An empty entry is the program's own folder, as for `execvp`; a relative one is below it.
    let found = search.into_iter().flat_map(std::env::split_paths).map(|dir| cwd.join(dir).join(program)).find(|p| executable(p));
    found.unwrap_or_else(|| PathBuf::from(program))
}

/// Only a missing or non-executable program is the program's fault; arguments too long for the
/// OS (a big field of the record) need the data passed another way.
fn spawn_error(argv: &[String], e: &std::io::Error) -> String {
    if e.raw_os_error() == Some(libc::E2BIG) {
        let longest = argv.iter().map(String::len).max().unwrap_or(0);
        return format!(
            "cannot start `{}`: its arguments are too long for the system (the longest is {longest} bytes; Linux allows 128 KiB per argument); pass large data in a file instead",
            argv[0]
        );
    }
    format!("cannot start `{}`: {e}; check that it exists and is executable", argv[0])
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_bare_name_is_found_on_the_path_as_the_os_would() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        // Not executable in `a`: skipped for the one in `b`, as `execvp` does.
        std::fs::write(a.join("tool"), "").unwrap();
        std::fs::write(b.join("tool"), "").unwrap();
        std::fs::set_permissions(b.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let search = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(on_path("tool", Some(&search), Path::new("/")), b.join("tool"));
        // An empty entry is the program's folder; a relative one is below it.
        std::fs::set_permissions(a.join("tool"), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(on_path("tool", Some(OsStr::new("/nonexistent::")), &a), a.join("tool"));
        assert_eq!(on_path("tool", Some(OsStr::new("b")), d.path()), b.join("tool"));
    }

    #[test]
    fn a_path_or_a_name_not_found_goes_to_the_os_as_written() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(on_path("./tool", Some(OsStr::new("/bin")), d.path()), PathBuf::from("./tool"));
        assert_eq!(on_path("no-such-program-here", Some(OsStr::new("/bin:/usr/bin")), d.path()), PathBuf::from("no-such-program-here"));
        assert_eq!(on_path("sh", None, d.path()), PathBuf::from("sh"));
        assert_eq!(on_path("", Some(OsStr::new("/bin")), d.path()), PathBuf::from(""));
    }
}
