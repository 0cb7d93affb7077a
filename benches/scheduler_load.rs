//! Scheduler load: 1,000 workflows.
//! Run: cargo bench --bench scheduler_load   (release; takes ~30 s)
//! Reports: time to validate + schedule all, idle RSS, fire lateness (median, p99, worst).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use cxflow::scheduler::clock::SystemClock;
use cxflow::scheduler::runner::{run_loop, Launcher, RunStatus, RunnerConfig, StartRequest};
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

const WORKFLOWS: usize = 1000;
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

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("workflows")).unwrap();
    std::fs::create_dir_all(root.join("calendars")).unwrap();
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/calendars/uk-bank-holidays.yaml"), root.join("calendars/uk-bank-holidays.yaml"))
        .unwrap();
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::write(root.join("data/tickets.csv"), "id\n1\n").unwrap();
    let zones = ["Europe/London", "America/New_York", "UTC", "Asia/Tokyo", "Australia/Sydney"];
    // Every workflow fires every 10 seconds, offset by its index: 100 fires per second overall.
    for i in 0..WORKFLOWS {
        let yaml = format!(
            "name: wf-{i}\nschedule:\n  cron: '{}/10 * * * * *'\n  timezone: {}\n  overlap: skip\n  max_runtime: 1h\n{}steps:\n  - id: tickets\n    read_csv: data/tickets.csv\n",
            i % 10,
            zones[i % zones.len()],
            if i % 3 == 0 { "  calendar: calendars/uk-bank-holidays.yaml\n" } else { "" },
        );
        std::fs::write(root.join(format!("workflows/wf-{i}.yaml")), yaml).unwrap();
    }

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let started = Instant::now();
        let loaded = load_folder(root);
        let load_time = started.elapsed();
        assert_eq!(loaded.len(), WORKFLOWS, "every workflow validates");
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
        let rss = rss_kib();
        shutdown.cancel();
        handle.await.unwrap();
        let mut late = recorder.lateness.lock().unwrap().clone();
        late.sort_unstable();
        let pct = |p: f64| late[((late.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0;
        println!("workflows:                 {WORKFLOWS}");
        println!("validate all (spec+plan):  {:.1} ms", load_time.as_secs_f64() * 1000.0);
        println!("schedule all (next fires): {:.1} ms", schedule_time.as_secs_f64() * 1000.0);
        println!("validate + schedule all:   {:.1} ms", (load_time + schedule_time).as_secs_f64() * 1000.0);
        println!("RSS while scheduling:      {:.1} MiB", rss as f64 / 1024.0);
        println!("fires measured:            {} over {LATENCY_SECS} s", late.len());
        println!("fire lateness median:      {:.2} ms", pct(0.5));
        println!("fire lateness p99:         {:.2} ms", pct(0.99));
        println!("fire lateness worst:       {:.2} ms", pct(1.0));
    });
    // Idle RSS: the same 1,000 workflows scheduled far in the future, loop asleep.
    drop(rt);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        for i in 0..WORKFLOWS {
            let yaml = format!("name: wf-{i}\nschedule:\n  cron: '30 2 * * *'\n  timezone: Europe/London\nsteps:\n  - id: tickets\n    read_csv: data/tickets.csv\n");
            std::fs::write(root.join(format!("workflows/wf-{i}.yaml")), yaml).unwrap();
        }
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
        println!("idle RSS (1,000 scheduled, asleep): {:.1} MiB", rss_kib() as f64 / 1024.0);
        shutdown.cancel();
        handle.await.unwrap();
    });
}
