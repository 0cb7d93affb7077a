//! Scheduler load: 10,000 workflows (`--workflows N`), in 5 time zones, a third with a holiday
//! calendar.
//!
//! Run: cargo bench --bench scheduler_load   (release; about a minute)
//!      cargo bench --bench scheduler_load -- --serve [--bin PATH]   (the real `cxflow serve`, this
//!      build's by default)
//!
//! In-process (default): time to validate + schedule all, fire lateness (median, p99, worst) with
//! every workflow firing every 10 s, and idle RSS of this process with all of them scheduled.
//! `--serve`: the release `cxflow serve` (or `--bin PATH`) on a project of N workflow files with
//! the dashboard on: startup to "scheduled", idle VmRSS after one look at the overview page, and
//! the cost of a hot reload of one changed file (wall time to the log line, CPU of the process).

#[path = "scheduler_load/project.rs"]
mod project;
#[path = "scheduler_load/serve.rs"]
mod serve;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use cxflow::scheduler::clock::SystemClock;
use cxflow::scheduler::runner::{run_loop, Launcher, RunStatus, RunnerConfig, StartRequest};
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

const LATENCY_SECS: u64 = 20;

struct Recorder {
    lateness: Mutex<Vec<i64>>,
}

impl Launcher for Recorder {
    fn run(&self, req: StartRequest) -> BoxFuture<'static, RunStatus> {
        let late = (Utc::now() - req.fire).num_microseconds().unwrap_or(i64::MAX);
        self.lateness.lock().unwrap().push(late);
        Box::pin(async { RunStatus::Succeeded })
    }
    fn skipped(&self, _: &str, _: DateTime<Utc>, _: &str) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
    fn abandoned(&self, _: &StartRequest) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
    fn prune(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// Validates every workflow file the way `cxflow validate` / `cxflow serve` do (spec + plan,
/// which compiles the schedule) and returns the schedules.
fn load_folder(root: &std::path::Path) -> Vec<cxflow::scheduler::policy::WorkflowSchedule> {
    let project = cxflow::cli::Project::open(root).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(root.join("workflows")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.iter().map(|f| project.plan(f).unwrap_or_else(|e| panic!("{e}"))).filter_map(|p| p.schedule.map(|s| s.compiled)).collect()
}

pub(crate) fn rss_kib(pid: &str) -> u64 {
    status_kib(pid, "VmRSS:")
}

pub(crate) fn status_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let n: usize = arg("--workflows").map(|s| s.parse().expect("--workflows takes a number")).unwrap_or(10_000);
    if args.iter().any(|a| a == "--serve") {
        let bin = arg("--bin").unwrap_or_else(|| env!("CARGO_BIN_EXE_cxflow").to_string());
        serve::measure(n, std::path::Path::new(&bin));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Every workflow fires every 10 seconds, offset by its index: n/10 fires per second overall.
    project::write(root, n, |i| format!("'{}/10 * * * * *'", i % 10));

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let started = Instant::now();
        let loaded = load_folder(root);
        let load_time = started.elapsed();
        assert_eq!(loaded.len(), n, "every workflow validates");
        // What the loop does first: every workflow's next fire time computed.
        let t0 = Instant::now();
        let mut sched = cxflow::scheduler::state::Scheduler::new(Default::default());
        let now = Utc::now();
        for w in &loaded {
            sched.upsert(w.clone(), None, now);
        }
        assert!(sched.next_wake().is_some());
        let schedule_time = t0.elapsed();
        drop(sched);
        let recorder = Arc::new(Recorder { lateness: Mutex::new(Vec::new()) });
        let shutdown = CancellationToken::new();
        let (_tx, rx) = tokio::sync::mpsc::channel(1);
        let handle = tokio::spawn(run_loop(
            RunnerConfig::default(),
            loaded.into_iter().map(|w| (w, None)).collect(),
            vec![],
            Arc::new(SystemClock),
            recorder.clone(),
            rx,
            shutdown.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(LATENCY_SECS)).await;
        let rss = rss_kib("self");
        shutdown.cancel();
        handle.await.unwrap();
        let mut late = recorder.lateness.lock().unwrap().clone();
        late.sort_unstable();
        let pct = |p: f64| late[((late.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0;
        println!("workflows:                 {n}");
        println!("validate all (spec+plan):  {:.1} ms", load_time.as_secs_f64() * 1000.0);
        println!("schedule all (next fires): {:.1} ms", schedule_time.as_secs_f64() * 1000.0);
        println!("validate + schedule all:   {:.1} ms", (load_time + schedule_time).as_secs_f64() * 1000.0);
        println!("RSS while scheduling:      {:.1} MiB", rss as f64 / 1024.0);
        println!("fires measured:            {} over {LATENCY_SECS} s", late.len());
        println!("fire lateness median:      {:.2} ms", pct(0.5));
        println!("fire lateness p99:         {:.2} ms", pct(0.99));
        println!("fire lateness worst:       {:.2} ms", pct(1.0));
    });
    // Idle RSS: the same workflows scheduled far in the future, loop asleep.
    drop(rt);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        project::write(root, n, |_| project::FAR.to_string());
        let loaded = load_folder(root);
        let recorder = Arc::new(Recorder { lateness: Mutex::new(Vec::new()) });
        let shutdown = CancellationToken::new();
        let (_tx, rx) = tokio::sync::mpsc::channel(1);
        let handle = tokio::spawn(run_loop(
            RunnerConfig::default(),
            loaded.into_iter().map(|w| (w, None)).collect(),
            vec![],
            Arc::new(SystemClock),
            recorder,
            rx,
            shutdown.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!("idle RSS ({n} scheduled, asleep): {:.1} MiB", rss_kib("self") as f64 / 1024.0);
        shutdown.cancel();
        handle.await.unwrap();
    });
}
