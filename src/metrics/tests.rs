//! `/metrics` over a real run log, parsed back with a real parser of the text format.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use openmetrics_parser::{HistogramValue, PrometheusType, PrometheusValue};

use super::*;
use crate::store::{NewRun, RunStatus, StepStatus, TriggerKind};

/// Quote, backslash and newline: each must be escaped on the way out and read back as written.
const WEIRD: &str = "we\"ird\\wf\nx";

type Labelled = Vec<(HashMap<String, String>, PrometheusValue)>;

struct Scrape {
    families: HashMap<String, (PrometheusType, String, Labelled)>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let exposition = openmetrics_parser::prometheus::parse_prometheus(text).unwrap_or_else(|e| panic!("{e:?} in:\n{text}"));
        let mut families = HashMap::new();
        for (name, f) in exposition.families {
            let names = f.get_label_names().to_vec();
            let samples = f
                .iter_samples()
                .map(|s| {
                    let set = s.get_labelset().unwrap();
                    let labels = names.iter().filter_map(|n| Some((n.clone(), set.get_label_value(n)?.to_string()))).collect();
                    (labels, s.value.clone())
                })
                .collect();
            families.insert(name, (f.family_type.clone(), f.help.clone(), samples));
        }
        Scrape { families }
    }

    fn sample(&self, name: &str, labels: &[(&str, &str)]) -> Option<&PrometheusValue> {
        let (_, _, samples) = self.families.get(name)?;
        samples
            .iter()
            .find(|(l, _)| l.len() == labels.len() && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
            .map(|(_, v)| v)
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.sample(name, labels) {
            Some(PrometheusValue::Gauge(n)) => n.as_f64(),
            Some(PrometheusValue::Counter(c)) => c.value.as_f64(),
            other => panic!("{name} {labels:?}: {other:?}"),
        }
    }

    fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> HistogramValue {
        match self.sample(name, labels) {
            Some(PrometheusValue::Histogram(h)) => h.clone(),
            other => panic!("{name} {labels:?}: {other:?}"),
        }
    }
}

/// Cumulative count at bound `le` of a parsed histogram.
fn at(h: &HistogramValue, le: f64) -> f64 {
    h.buckets.iter().find(|b| b.upper_bound == le).unwrap_or_else(|| panic!("no bucket {le}: {h:?}")).count.as_f64()
}

fn url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("runs.db").display())
}

async fn store(dir: &Path) -> Store {
    Store::open(&url(dir)).await.unwrap()
}

/// A connection of the test's own to the run log, for what the store API does not set (exact
/// times, counts, a claim left `sending`). These tests are SQLite-only: the figures' queries
/// run against both databases in the store's own tests.
async fn raw(dir: &Path) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&url(dir)).await.unwrap()
}

/// A finished run of `seconds`, times set exactly (the engine would stamp the wall clock).
async fn run(s: &Store, raw: &sqlx::SqlitePool, workflow: &str, trigger: TriggerKind, status: RunStatus, seconds: i64) -> i64 {
    let p = serde_json::json!({});
    let id = s.start_run(NewRun { workflow, file: "w.yaml", trigger, params: &p, scheduled_for: None }).await.unwrap();
    if status != RunStatus::Running {
        s.finish_run(id, status, None).await.unwrap();
        let start = chrono::Utc::now() - chrono::Duration::hours(1);
        let end = start + chrono::Duration::seconds(seconds);
        let fmt = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        sqlx::query("UPDATE runs SET started_at = ?, finished_at = ? WHERE id = ?")
            .bind(fmt(start))
            .bind(fmt(end))
            .bind(id)
            .execute(raw)
            .await
            .unwrap();
    }
    id
}

/// A finished step with these counts (per-item steps count their items rows; set directly).
async fn step(s: &Store, raw: &sqlx::SqlitePool, run: i64, id: &str, kind: &str, [ok, failed, skipped]: [i64; 3]) {
    s.start_step(run, id, 0, kind).await.unwrap();
    let end = crate::engine::log::StepEnd { status: StepStatus::Succeeded, error: None, output: None, records: None };
    s.finish_step(run, id, end).await.unwrap();
    sqlx::query("UPDATE steps SET ok = ?, failed = ?, skipped = ? WHERE run_id = ? AND step_id = ?")
        .bind(ok)
        .bind(failed)
        .bind(skipped)
        .bind(run)
        .bind(id)
        .execute(raw)
        .await
        .unwrap();
}

async fn seeded(dir: &Path) -> Store {
    let s = store(dir).await;
    let raw = &raw(dir).await;
    let a = run(&s, raw, "nightly", TriggerKind::Schedule, RunStatus::Succeeded, 3).await;
    step(&s, raw, a, "mail", "send_email", [40, 2, 1]).await;
    step(&s, raw, a, "portal", "browser", [7, 1, 0]).await;
    let b = run(&s, raw, "nightly", TriggerKind::Schedule, RunStatus::Succeeded, 90).await;
    step(&s, raw, b, "mail", "send_email", [10, 0, 0]).await;
    run(&s, raw, "nightly", TriggerKind::Schedule, RunStatus::Failed, 10).await;
    run(&s, raw, "nightly", TriggerKind::Manual, RunStatus::Running, 0).await;
    // A dry run sends nothing: its count is an item count, not emails sent.
    let dry = run(&s, raw, "nightly", TriggerKind::DryRun, RunStatus::Succeeded, 1).await;
    step(&s, raw, dry, "mail", "send_email", [100, 0, 0]).await;
    let w = run(&s, raw, WEIRD, TriggerKind::Manual, RunStatus::Partial, 20_000).await;
    step(&s, raw, w, "read", "read_csv", [1_000_000, 0, 0]).await;
    // A claim its process never settled.
    sqlx::query("INSERT INTO ledger (key, workflow, run_id, step_id, item_key, state, updated_at) VALUES ('k', 'nightly', ?, 'mail', 'a@x', 'sending', 'now')")
        .bind(a)
        .execute(raw)
        .await
        .unwrap();
    raw.close().await;
    let saturday = crate::schedule::calendar::skip_reason("2025-06-07".parse().unwrap(), true, None).unwrap();
    s.record_skipped("nightly", "w.yaml", None, &saturday).await.unwrap();
    s.record_skipped("nightly", "w.yaml", None, &saturday).await.unwrap();
    s
}

#[tokio::test]
async fn the_run_log_scrapes_with_exact_values() {
    let dir = tempfile::tempdir().unwrap();
    let s = seeded(dir.path()).await;
    let text = render(&s, None).await.unwrap();
    let m = Scrape::parse(&text);

    assert_eq!(m.value("cxflow_run_log_up", &[]), 1.0);
    assert_eq!(m.value("cxflow_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    assert_eq!(m.value("cxflow_runs", &[("workflow", "nightly"), ("status", "succeeded")]), 3.0);
    assert_eq!(m.value("cxflow_runs", &[("workflow", "nightly"), ("status", "failed")]), 1.0);
    assert_eq!(m.value("cxflow_runs", &[("workflow", "nightly"), ("status", "running")]), 1.0);
    assert_eq!(m.value("cxflow_runs", &[("workflow", "nightly"), ("status", "skipped")]), 2.0);
    assert_eq!(m.value("cxflow_runs", &[("workflow", WEIRD), ("status", "partial")]), 1.0);
    let last = m.value("cxflow_run_last_finished_timestamp_seconds", &[("workflow", "nightly"), ("status", "failed")]);
    let ago = chrono::Utc::now().timestamp() as f64 - last;
    assert!((3000.0..3600.0).contains(&ago), "the failed run ended 59m50s ago, not {ago}s");

    // Durations 3, 90, 10 and the dry run's 1 second; running and skipped runs have none.
    let h = m.histogram("cxflow_run_duration_seconds", &[("workflow", "nightly")]);
    assert_eq!(h.count, Some(4));
    assert_eq!(h.sum.unwrap().as_f64(), 104.0);
    assert_eq!(
        (at(&h, 1.0), at(&h, 5.0), at(&h, 15.0), at(&h, 60.0), at(&h, 120.0), at(&h, f64::INFINITY)),
        (1.0, 2.0, 3.0, 3.0, 4.0, 4.0)
    );
    let h = m.histogram("cxflow_run_duration_seconds", &[("workflow", WEIRD)]);
    assert_eq!((at(&h, 14400.0), at(&h, f64::INFINITY)), (0.0, 1.0));

    let item = |step: &str, kind: &str, status: &str| {
        m.value("cxflow_items", &[("workflow", "nightly"), ("step", step), ("kind", kind), ("status", status)])
    };
    assert_eq!(item("mail", "send_email", "ok"), 150.0, "dry runs' items count too");
    assert_eq!(item("mail", "send_email", "failed"), 2.0);
    assert_eq!(item("mail", "send_email", "skipped"), 1.0);
    assert_eq!(m.value("cxflow_items", &[("workflow", WEIRD), ("step", "read"), ("kind", "read_csv"), ("status", "ok")]), 1e6);

    let email = |result: &str| m.value("cxflow_emails", &[("workflow", "nightly"), ("step", "mail"), ("result", result)]);
    assert_eq!((email("sent"), email("failed"), email("uncertain")), (50.0, 2.0, 1.0));
    let portal = |result: &str| m.value("cxflow_portal_submissions", &[("workflow", "nightly"), ("step", "portal"), ("result", result)]);
    assert_eq!((portal("submitted"), portal("failed"), portal("uncertain")), (7.0, 1.0, 0.0));
    assert_eq!(m.value("cxflow_deliveries_uncertain", &[("workflow", "nightly"), ("step", "mail"), ("kind", "send_email")]), 1.0);
    assert_eq!(m.value("cxflow_fires_skipped", &[("workflow", "nightly"), ("reason", "business_days")]), 2.0);
    let bytes = m.value("cxflow_run_log_size_bytes", &[]);
    let on_disk = std::fs::metadata(dir.path().join("runs.db")).unwrap().len() as f64;
    assert!(bytes >= 4096.0 && bytes <= on_disk.max(bytes) && bytes % 4096.0 == 0.0, "{bytes} vs file {on_disk}");

    // No scheduler in this process: its metrics are absent.
    assert!(!m.families.contains_key("cxflow_scheduler_up"));
    every_family_is_described(&text, &m);
}

/// Each sample's family has a HELP and a TYPE line, and the parser saw each family's type.
fn every_family_is_described(text: &str, m: &Scrape) {
    for (name, (ty, help, samples)) in &m.families {
        assert!(!help.is_empty(), "{name} has no HELP");
        assert!(*ty != PrometheusType::Unknown, "{name} has no TYPE");
        assert!(text.contains(&format!("# HELP {name} ")) && text.contains(&format!("# TYPE {name} ")), "{name}");
        let _ = samples;
    }
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let metric = line.split(['{', ' ']).next().unwrap();
        let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| metric.strip_suffix(s).filter(|f| m.families.contains_key(*f)));
        let family = family.unwrap_or(metric);
        assert!(m.families.contains_key(family), "sample `{line}` belongs to no described family");
    }
}

#[tokio::test]
async fn label_values_are_escaped_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    run(&s, &raw(dir.path()).await, WEIRD, TriggerKind::Manual, RunStatus::Failed, 5).await;
    let text = render(&s, None).await.unwrap();
    assert!(text.contains(r#"workflow="we\"ird\\wf\nx""#), "{text}");
    assert!(!text.contains("wf\nx"), "a raw newline in a label value breaks the line format");
    assert_eq!(Scrape::parse(&text).value("cxflow_runs", &[("workflow", WEIRD), ("status", "failed")]), 1.0);
}

#[tokio::test]
async fn live_figures_come_with_the_scheduler() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let live = Live::new();
    live.set_scheduler_up(true);
    live.fire_started("nightly", false, Duration::from_millis(300));
    live.fire_started("nightly", false, Duration::from_secs(40));
    live.fire_started("nightly", true, Duration::from_secs(7 * 3600));
    live.clone().run_ended("nightly", "failed");
    live.run_ended("nightly", "failed");
    let m = Scrape::parse(&render(&s, Some(&live)).await.unwrap());
    assert_eq!(m.value("cxflow_scheduler_up", &[]), 1.0);
    let h = m.histogram("cxflow_fire_lateness_seconds", &[("workflow", "nightly"), ("catch_up", "false")]);
    assert_eq!((h.count, at(&h, 0.1), at(&h, 0.5), at(&h, 60.0)), (Some(2), 0.0, 1.0, 2.0));
    assert!((h.sum.unwrap().as_f64() - 40.3).abs() < 1e-9);
    let h = m.histogram("cxflow_fire_lateness_seconds", &[("workflow", "nightly"), ("catch_up", "true")]);
    assert_eq!((at(&h, 3600.0), at(&h, 21600.0), at(&h, 86400.0)), (0.0, 0.0, 1.0));
    assert_eq!(m.value("cxflow_scheduler_runs_ended_total", &[("workflow", "nightly"), ("status", "failed")]), 2.0);
    live.set_scheduler_up(false);
    let m = Scrape::parse(&render(&s, Some(&live)).await.unwrap());
    assert_eq!(m.value("cxflow_scheduler_up", &[]), 0.0);
}

#[tokio::test]
async fn an_unreadable_run_log_still_scrapes_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    s.close().await;
    let m = Scrape::parse(&render(&s, Some(&Live::new())).await.unwrap());
    assert_eq!(m.value("cxflow_run_log_up", &[]), 0.0);
    assert_eq!(m.value("cxflow_scheduler_up", &[]), 0.0);
    assert!(!m.families.contains_key("cxflow_runs"));
}
