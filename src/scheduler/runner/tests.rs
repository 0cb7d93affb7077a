use std::sync::Mutex as StdMutex;

use super::*;
use crate::scheduler::clock::VirtualClock;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

type Started = (String, DateTime<Utc>, Option<i64>);

/// Records everything; each run waits for its stop token (or ends after `lasts` of virtual time
/// when `lasts` is set), and `ignore_stop` runs never end on their own.
#[derive(Default)]
struct Fake {
    starts: StdMutex<Vec<Started>>,
    stops: Arc<StdMutex<Vec<Option<StopReason>>>>,
    skips: StdMutex<Vec<String>>,
    abandoned: StdMutex<Vec<String>>,
    prunes: StdMutex<usize>,
    ignore_stop: bool,
}

impl Launcher for Fake {
    fn run(&self, req: StartRequest) -> BoxFuture<'static, RunStatus> {
        self.starts.lock().unwrap().push((req.workflow.clone(), req.fire, req.resume_run));
        let stops = self.stops.clone();
        let ignore = self.ignore_stop;
        Box::pin(async move {
            if ignore {
                std::future::pending::<()>().await;
            }
            req.stop.cancelled().await;
            stops.lock().unwrap().push(req.stop_reason());
            RunStatus::Failed
        })
    }
    fn skipped(&self, _w: &str, _f: DateTime<Utc>, reason: &str) -> BoxFuture<'static, ()> {
        self.skips.lock().unwrap().push(reason.to_string());
        Box::pin(async {})
    }
    fn abandoned(&self, req: &StartRequest) -> BoxFuture<'static, ()> {
        self.abandoned.lock().unwrap().push(req.workflow.clone());
        Box::pin(async {})
    }
    fn prune(&self) -> BoxFuture<'static, ()> {
        *self.prunes.lock().unwrap() += 1;
        Box::pin(async {})
    }
}

async fn settle(clock: &VirtualClock) {
    // The loop is idle once it sleeps towards a deadline again.
    for _ in 0..1000 {
        tokio::task::yield_now().await;
        if clock.next_deadline().is_some() {
            for _ in 0..20 {
                tokio::task::yield_now().await;
            }
            return;
        }
    }
}

fn wf(name: &str, cron: &str) -> WorkflowSchedule {
    WorkflowSchedule::new(name, CronSchedule::parse(cron).unwrap(), chrono_tz::UTC)
}

#[tokio::test]
async fn loop_fires_on_virtual_time_stops_overruns_and_reloads() {
    let clock = VirtualClock::new(utc("2025-06-02T00:00:30Z"));
    let fake = Arc::new(Fake::default());
    let (tx, rx) = mpsc::channel(8);
    let shutdown = CancellationToken::new();
    let mut w = wf("a", "* * * * *");
    w.max_runtime = Some(Duration::from_secs(20));
    let config = RunnerConfig { shutdown_deadline: Duration::from_millis(200), ..Default::default() };
    let handle = tokio::spawn(run_loop(
        config,
        vec![(w, None)],
        vec![("old".into(), 7)],
        Arc::new(clock.clone()),
        fake.clone(),
        rx,
        shutdown.clone(),
    ));
    settle(&clock).await;
    assert_eq!(clock.next_deadline(), Some(utc("2025-06-02T00:01:00Z")));
    assert_eq!(fake.starts.lock().unwrap()[0].2, Some(7), "resumed run started first");
    clock.set(utc("2025-06-02T00:01:00Z"));
    settle(&clock).await;
    assert_eq!(fake.starts.lock().unwrap().len(), 2);
    // max_runtime deadline is the next wake.
    assert_eq!(clock.next_deadline(), Some(utc("2025-06-02T00:01:20Z")));
    clock.set(utc("2025-06-02T00:01:20Z"));
    settle(&clock).await;
    let stops = fake.stops.lock().unwrap().clone();
    assert!(matches!(&stops[..], [Some(StopReason::MaxRuntime(m))] if m.contains("max_runtime of 20s")), "{stops:?}");
    // Hot reload: a second workflow appears.
    tx.send(Control::Upsert { schedule: wf("b", "30 * * * * *"), last_fire: None }).await.unwrap();
    settle(&clock).await;
    assert_eq!(clock.next_deadline(), Some(utc("2025-06-02T00:01:30Z")));
    clock.set(utc("2025-06-02T00:01:30Z"));
    settle(&clock).await;
    let names: Vec<_> = fake.starts.lock().unwrap().iter().map(|s| s.0.clone()).collect();
    assert_eq!(names, vec!["old", "a", "b"]);
    shutdown.cancel();
    let sched = tokio::time::timeout(Duration::from_secs(5), handle).await.unwrap().unwrap();
    assert!(fake.abandoned.lock().unwrap().is_empty(), "runs honour the stop token");
    let stops = fake.stops.lock().unwrap().clone();
    assert_eq!(stops.iter().filter(|s| **s == Some(StopReason::Shutdown)).count(), 2, "{stops:?}");
    assert!(sched.running().len() <= 3);
}

#[tokio::test]
async fn shutdown_abandons_runs_that_miss_the_deadline() {
    let clock = VirtualClock::new(utc("2025-06-02T00:00:59Z"));
    let fake = Arc::new(Fake { ignore_stop: true, ..Default::default() });
    let (_tx, rx) = mpsc::channel(8);
    let shutdown = CancellationToken::new();
    let config = RunnerConfig { shutdown_deadline: Duration::from_millis(100), ..Default::default() };
    let handle = tokio::spawn(run_loop(
        config,
        vec![(wf("a", "* * * * *"), None)],
        vec![],
        Arc::new(clock.clone()),
        fake.clone(),
        rx,
        shutdown.clone(),
    ));
    settle(&clock).await;
    clock.set(utc("2025-06-02T00:01:00Z"));
    settle(&clock).await;
    assert_eq!(fake.starts.lock().unwrap().len(), 1);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), handle).await.unwrap().unwrap();
    assert_eq!(*fake.abandoned.lock().unwrap(), vec!["a".to_string()]);
}

#[tokio::test]
async fn the_loop_reports_lateness_runs_ended_and_up_to_metrics() {
    let clock = VirtualClock::new(utc("2025-06-02T00:00:59Z"));
    let fake = Arc::new(Fake::default());
    let (_tx, rx) = mpsc::channel(8);
    let shutdown = CancellationToken::new();
    let live = crate::metrics::Live::new();
    let config = RunnerConfig {
        limits: Limits { max_concurrent_runs: Some(1) },
        shutdown_deadline: Duration::from_millis(200),
        metrics: Some(live.clone()),
        ..Default::default()
    };
    let mut a = wf("a", "* * * * *");
    a.max_runtime = Some(Duration::from_secs(20));
    let handle = tokio::spawn(run_loop(
        config,
        vec![(a, None), (wf("b", "* * * * *"), None)],
        vec![],
        Arc::new(clock.clone()),
        fake.clone(),
        rx,
        shutdown.clone(),
    ));
    settle(&clock).await;
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::Store::open(&format!("sqlite://{}", dir.path().join("runs.db").display())).await.unwrap();
    let scrape = || async { crate::metrics::render(&store, Some(&live)).await.unwrap() };
    assert!(scrape().await.contains("\ncxflow_scheduler_up 1\n"));
    // Both fire at 00:01:00; one slot, so `b` waits until `a` is stopped at 00:01:20.
    clock.set(utc("2025-06-02T00:01:00Z"));
    settle(&clock).await;
    clock.set(utc("2025-06-02T00:01:20Z"));
    settle(&clock).await;
    let names: Vec<_> = fake.starts.lock().unwrap().iter().map(|s| s.0.clone()).collect();
    assert_eq!(names, vec!["a", "b"]);
    let text = scrape().await;
    for line in [
        r#"cxflow_fire_lateness_seconds_bucket{workflow="a",catch_up="false",le="0.1"} 1"#,
        r#"cxflow_fire_lateness_seconds_bucket{workflow="b",catch_up="false",le="15"} 0"#,
        r#"cxflow_fire_lateness_seconds_bucket{workflow="b",catch_up="false",le="60"} 1"#,
        r#"cxflow_fire_lateness_seconds_count{workflow="b",catch_up="false"} 1"#,
        r#"cxflow_scheduler_runs_ended_total{workflow="a",status="failed"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), handle).await.unwrap().unwrap();
    let text = scrape().await;
    assert!(text.contains("\ncxflow_scheduler_up 0\n"), "{text}");
    assert!(text.lines().any(|l| l == r#"cxflow_scheduler_runs_ended_total{workflow="b",status="failed"} 1"#), "{text}");
}
