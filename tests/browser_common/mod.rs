//! Fixtures for the browser end-to-end tests: the demo portal on loopback (in-process, so tests
//! read what it received), a project folder with a portal workflow, and process helpers to find
//! and kill chromedriver and check nothing outlives a run.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use cxflow::demo_portal::{self, Portal, PortalOptions, Record};

use crate::support::TestProject;

pub(crate) const PASSWORD: &str = "s3cret-Pass-4711";
/// The portal login, a secret like the password. Not `demo`: secrets are masked in any case, and
/// the portal's title says `Demo Returns Portal`, which the error tests read.
pub(crate) const USER: &str = "returns-bot";

pub(crate) struct BgPortal {
    pub url: String,
    portal: Portal,
    // Keeps serving on its worker threads while the test blocks on the cxflow binary.
    _rt: tokio::runtime::Runtime,
}

impl BgPortal {
    pub(crate) fn start(mut opts: PortalOptions) -> BgPortal {
        opts.password = PASSWORD.into();
        // A test that names its own login keeps it; the others log in as `USER`.
        if opts.user == PortalOptions::default().user {
            opts.user = USER.into();
        }
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let portal = rt.block_on(demo_portal::serve("127.0.0.1:0".parse().unwrap(), opts)).unwrap();
        BgPortal { url: portal.url(), portal, _rt: rt }
    }
    pub(crate) fn records(&self) -> Vec<Record> {
        self.portal.records()
    }
    pub(crate) fn stats(&self) -> cxflow::demo_portal::Stats {
        self.portal.stats()
    }
}

pub(crate) fn rows(n: usize) -> Vec<[String; 3]> {
    let reasons = ["damaged", "Wrong item sent", "too_late", "changed_mind"];
    (1..=n).map(|i| [format!("SO-{}", 5000 + i), format!("c{i}@example.com"), reasons[i % 4].to_string()]).collect()
}

/// The login every portal workflow of the tests starts with, as workflow text.
pub(crate) const LOGIN: &str = r##"      login:
        - goto: "{{params.portal}}/login"
        - fill: { "#username": "{{secrets.PORTAL_USER}}", "#password": "{{secrets.PORTAL_PASSWORD}}" }
        - click: "button[type=submit]"
        - wait_for: "#dashboard"
"##;

/// A project with `data/returns.csv` (`rows`) and `workflows/returns.yaml` whose browser step
/// has `browser_extra` (indented step keys) and the standard login and form actions.
pub(crate) fn project(portal: &BgPortal, n: usize, browser_extra: &str, field: impl Fn(usize) -> String) -> TestProject {
    let p = TestProject::new();
    let mut csv = String::from("order_id,email,reason,field\n");
    for (i, r) in rows(n).iter().enumerate() {
        csv.push_str(&format!("{},{},{},{}\n", r[0], r[1], r[2], field(i + 1)));
    }
    p.write("data/returns.csv", &csv);
    p.write(
        "workflows/returns.yaml",
        &format!(
            r##"name: returns
params:
  portal: {url}
secrets: [PORTAL_USER, PORTAL_PASSWORD]
steps:
  - id: returns
    read_csv: data/returns.csv
  - id: register
    for_each: returns
    item_key: "{{{{item.order_id}}}}"
    browser:
{browser_extra}
{login}      actions:
        - goto: "{{{{params.portal}}}}/returns/new"
        - if_present: "#cookie-banner"
          then:
            - click: "#accept-cookies"
        - fill: {{ "#order": "{{{{item.order_id}}}}", "#{{{{item.field}}}}": "{{{{item.email}}}}" }}
        - select: {{ "#reason": "{{{{item.reason}}}}" }}
        - check: "#consent"
        - submit: "#submit"
        - wait_for: {{ selector: "#confirmation", timeout: 10s }}
        - extract: {{ confirmation_id: "#confirmation" }}
"##,
            login = LOGIN,
            url = portal.url
        ),
    );
    p
}

pub(crate) fn cxflow(p: &TestProject) -> std::process::Command {
    let mut c = p.cxflow();
    c.env("PORTAL_USER", USER).env("PORTAL_PASSWORD", PASSWORD);
    c
}

/// Orders submitted more than once.
pub(crate) fn duplicates(recs: &[Record]) -> Vec<String> {
    let mut seen = std::collections::HashMap::new();
    for r in recs {
        *seen.entry(r.order.clone()).or_insert(0) += 1;
    }
    seen.into_iter().filter(|(_, n)| *n > 1).map(|(o, _)| o).collect()
}

// ---- processes ----

pub(crate) struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub state: char,
    pub comm: String,
}

pub(crate) fn procs() -> Vec<Proc> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let (Some(l), Some(r)) = (stat.find('('), stat.rfind(')')) else { continue };
        let f: Vec<&str> = stat[r + 2..].split(' ').collect();
        out.push(Proc {
            pid,
            comm: stat[l + 1..r].to_string(),
            state: f[0].chars().next().unwrap_or('?'),
            ppid: f[1].parse().unwrap_or(0),
            pgid: f[2].parse().unwrap_or(0),
        });
    }
    out
}

/// Process groups of the chromedriver wrappers `cxflow_pid` started.
pub(crate) fn driver_groups(cxflow_pid: i32) -> Vec<i32> {
    procs().into_iter().filter(|p| p.ppid == cxflow_pid && p.comm == "sh" && p.pgid == p.pid).map(|p| p.pgid).collect()
}

pub(crate) fn live_in_group(pgid: i32) -> Vec<String> {
    procs().into_iter().filter(|p| p.pgid == pgid && p.state != 'Z').map(|p| format!("{} {}", p.pid, p.comm)).collect()
}

pub(crate) fn kill(pid: i32, sig: i32) {
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Live members of `pgid` that nobody has killed yet: neither exiting nor with a SIGKILL
/// pending. A group cxflow closed has none the moment cxflow exits; its members may still take a
/// moment to die, which `wait_group_gone` waits for.
pub(crate) fn unkilled_in_group(pgid: i32) -> Vec<String> {
    const PF_EXITING: u64 = 0x4;
    const SIGKILL_BIT: u64 = 1 << (libc::SIGKILL - 1);
    procs()
        .into_iter()
        .filter(|p| p.pgid == pgid && p.state != 'Z' && p.state != 'X')
        .filter(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", p.pid)).unwrap_or_default();
            let flags = stat.rfind(')').and_then(|r| stat[r + 2..].split(' ').nth(6)?.parse::<u64>().ok());
            let status = std::fs::read_to_string(format!("/proc/{}/status", p.pid)).unwrap_or_default();
            let pending = status
                .lines()
                .filter(|l| l.starts_with("SigPnd:") || l.starts_with("ShdPnd:"))
                .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
                .fold(0, |a, b| a | b);
            // Gone while looking (no flags) counts as killed.
            flags.is_some_and(|f| f & PF_EXITING == 0) && pending & SIGKILL_BIT == 0
        })
        .map(|p| format!("{} {}", p.pid, p.comm))
        .collect()
}

/// Waits until no live process is left in `pgid`; panics with what is left after `deadline`.
#[track_caller]
pub(crate) fn wait_group_gone(pgid: i32, deadline: Duration) {
    crate::support::wait_for_ok(deadline, &format!("process group {pgid} to be gone"), || match live_in_group(pgid) {
        left if left.is_empty() => Ok(()),
        left => Err(format!("left behind: {left:?}")),
    })
}

/// Every file under `dir` that contains `needle` (secrets must appear nowhere).
pub(crate) fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    crate::support::files_under(dir)
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|bytes| memchr::memmem::find(&bytes, needle.as_bytes()).is_some()))
        .map(|p| p.display().to_string())
        .collect()
}
