//! A throwaway PostgreSQL server on 127.0.0.1 for tests, from the machine's PostgreSQL binaries.
//! As root, PostgreSQL refuses to run, so the server runs as the `postgres` user.
//! Also compiled into the library's own tests (`src/store/testing.rs`).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

pub(crate) struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_root: bool,
    /// The account the server runs as when we are root: `postgres` where the package made it.
    user: &'static str,
    /// The server's options, to start it again after `stop_immediate`.
    opts: String,
    /// The write end of a pipe a watchdog reads: when this process ends, however it ends, the
    /// pipe closes and the watchdog stops the server and removes its folder.
    _watchdog: Option<std::process::ChildStdin>,
}

fn bin_dir() -> PathBuf {
    for v in ["17", "16", "15", "14", "13"] {
        let p = PathBuf::from(format!("/usr/lib/postgresql/{v}/bin"));
        if p.join("initdb").exists() {
            return p;
        }
    }
    let initdb = which("initdb").expect("PostgreSQL's initdb is not installed: run scripts/install-deps.sh");
    initdb.parent().unwrap().to_path_buf()
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|f| f.exists()))
}

impl Postgres {
    pub(crate) fn start() -> Postgres {
        Postgres::start_with("")
    }

    /// A server with extra `postgres` options, e.g. `-c fsync=off` where no test cuts the power.
    pub(crate) fn start_with(extra: &str) -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        #[allow(unsafe_code)]
        let as_root = unsafe { libc::geteuid() } == 0;
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let user = if Command::new("id").arg("postgres").output().is_ok_and(|o| o.status.success()) { "postgres" } else { "nobody" };
        let mut pg = Postgres { port, dir, bin, as_root, user, opts: String::new(), _watchdog: None };
        if as_root {
            let st = Command::new("chown").arg("-R").arg(user).arg(pg.dir.path()).status().unwrap();
            assert!(st.success());
        }
        let data = pg.dir.path().join("data");
        pg.cmd("initdb", &["-D", data.to_str().unwrap(), "-U", "cx", "--auth=trust", "-E", "UTF8"]);
        pg.opts = format!("-c listen_addresses=127.0.0.1 -p {port} -k {} {extra}", pg.dir.path().display());
        pg.start_again();
        pg._watchdog = pg.watchdog(&data);
        pg
    }

    /// Stops the server as a crash or a power cut would (`pg_ctl stop -m immediate`): every
    /// session is cut at once, nothing is flushed.
    pub(crate) fn stop_immediate(&self) {
        let data = self.dir.path().join("data");
        self.cmd("pg_ctl", &["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"]);
    }

    /// Starts the (stopped) server on its port, and returns once it accepts connections.
    pub(crate) fn start_again(&self) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("log");
        self.cmd("pg_ctl", &["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-o", &self.opts, "-w", "start"]);
    }

    fn watchdog(&self, data: &std::path::Path) -> Option<std::process::ChildStdin> {
        let run_as = if self.as_root { format!("runuser -u {} -- ", self.user) } else { String::new() };
        let script = format!(
            "read _; {run_as}'{}' -D '{}' -m immediate stop >/dev/null 2>&1; rm -rf '{}'",
            self.bin.join("pg_ctl").display(),
            data.display(),
            self.dir.path().display()
        );
        let child = Command::new("sh").arg("-c").arg(script).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
        child.ok().and_then(|mut c| c.stdin.take())
    }

    fn cmd(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let out = if self.as_root {
            Command::new("runuser").args(["-u", self.user, "--"]).arg(&exe).args(args).current_dir("/").output()
        } else {
            Command::new(&exe).args(args).output()
        }
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(out.status.success(), "{tool} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://cx@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let exe = self.bin.join("pg_ctl");
        let args = ["-D", data.to_str().unwrap(), "-m", "immediate", "stop"];
        let _ = if self.as_root {
            Command::new("runuser").args(["-u", self.user, "--"]).arg(&exe).args(args).output()
        } else {
            Command::new(&exe).args(args).output()
        };
    }
}
