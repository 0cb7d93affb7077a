//! `cxflow serve` as a test drives it: the process (killed if a test fails before stopping it)
//! and the lines it logs.

use std::io::BufRead;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

use super::TestProject;

/// A running `cxflow serve`; killed and reaped when dropped.
pub(crate) struct Serve(pub(crate) Child);

impl Drop for Serve {
    fn drop(&mut self) {
        // Only matters if the test failed before stopping it.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Serve {
    /// `cxflow serve` in the project as `cmd` sets it up, its stderr collected.
    pub(crate) fn start(cmd: std::process::Command) -> (Serve, Logs) {
        Serve::start_args(cmd, &["serve"])
    }

    /// Another long-lived command (`worker`, a `run` a test kills), held and logged the same way.
    pub(crate) fn start_args(mut cmd: std::process::Command, args: &[&str]) -> (Serve, Logs) {
        let mut child = cmd.args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let logs = Logs::collect(&mut child);
        (Serve(child), logs)
    }

    pub(crate) fn signal(&self, sig: libc::c_int) {
        #[allow(unsafe_code)]
        let r = unsafe { libc::kill(self.0.id() as libc::pid_t, sig) };
        assert_eq!(r, 0);
    }

    pub(crate) fn in_project(p: &TestProject) -> (Serve, Logs) {
        Serve::start(p.cxflow())
    }

    pub(crate) fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }
}

/// The lines `cxflow serve` logs to stderr, read by a thread as they come (which also keeps the
/// pipe from filling up). What serve says it did is what the tests wait for.
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<String>>>);

impl Logs {
    pub(crate) fn collect(child: &mut Child) -> Logs {
        let logs = Logs::default();
        let stderr = child.stderr.take().expect("stderr piped");
        let lines = logs.0.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });
        logs
    }

    pub(crate) fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }

    /// How many lines contain every one of `words`.
    pub(crate) fn count(&self, words: &[&str]) -> usize {
        self.0.lock().unwrap().iter().filter(|l| words.iter().all(|w| l.contains(w))).count()
    }

    /// Fires of `workflow` the scheduler handled so far (started or skipped).
    pub(crate) fn fires(&self, workflow: &str) -> usize {
        let w = format!("workflow={workflow} ");
        self.count(&["starting scheduled run", &w]) + self.count(&["skipped scheduled run", &w])
    }
}
