//! `/metrics` of a real `cxflow serve` scraped while it schedules, read back with a Prometheus
//! text-format parser: the run log's figures and the scheduler's own.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use openmetrics_parser::{PrometheusType, PrometheusValue};
use support::serve::{Logs, Serve};
use support::{wait_until, TestProject};

const TICK: &str = r#"name: tick
schedule:
  cron: "* * * * * *"
  overlap: skip
steps:
  - id: hello
    command: [python3, -c, "print('hi')"]
"#;

/// Every sample of the scrape as `name{labels}` → value, after checking that each family has
/// its HELP and TYPE.
fn scrape(url: &str) -> HashMap<String, f64> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (status, ctype, text) = rt.block_on(async {
        let r = reqwest::get(url).await.unwrap();
        let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
        (r.status().as_u16(), ctype, r.text().await.unwrap())
    });
    assert_eq!(status, 200, "{text}");
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let parsed = openmetrics_parser::prometheus::parse_prometheus(&text).unwrap_or_else(|e| panic!("{e:?} in:\n{text}"));
    let mut out = HashMap::new();
    for (name, family) in parsed.families {
        assert!(!family.help.is_empty(), "{name} has no HELP");
        for s in family.iter_samples() {
            let mut labels: Vec<String> = s.get_labelset().unwrap().iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            let value = match (&family.family_type, &s.value) {
                (PrometheusType::Histogram, PrometheusValue::Histogram(h)) => h.count.unwrap_or(0) as f64,
                (_, PrometheusValue::Gauge(g)) => g.as_f64(),
                (_, PrometheusValue::Counter(c)) => c.value.as_f64(),
                (_, PrometheusValue::Unknown(u)) => u.as_f64(),
                _ => continue,
            };
            out.insert(format!("{name}{{{}}}", labels.join(",")), value);
        }
    }
    out
}

fn dashboard(logs: &Logs) -> String {
    let mut url = String::new();
    wait_until(Duration::from_secs(30), "serve prints the dashboard's address", || {
        url = logs.text().lines().find_map(|l| l.strip_prefix("dashboard: ")).unwrap_or("").trim_end_matches('/').to_string();
        !url.is_empty()
    });
    url
}

#[test]
fn metrics_of_a_scheduling_serve_parse_and_count_its_runs_and_fires() {
    let p = TestProject::new();
    p.write("workflows/tick.yaml", TICK);
    let (serve, logs) = Serve::in_project(&p);
    let url = format!("{}/metrics", dashboard(&logs));

    let mut m = HashMap::new();
    wait_until(Duration::from_secs(60), "two runs succeeded, as /metrics tells", || {
        m = scrape(&url);
        m.get("cxflow_runs{status=succeeded,workflow=tick}").copied().unwrap_or(0.0) >= 2.0
    });
    assert_eq!(m["cxflow_scheduler_up{}"], 1.0, "{m:?}");
    assert_eq!(m["cxflow_run_log_up{}"], 1.0, "{m:?}");
    assert!(m["cxflow_run_log_size_bytes{}"] > 0.0, "{m:?}");
    // Every fire started was timed, and each finished run is in the duration histogram.
    let fires = m["cxflow_fire_lateness_seconds{catch_up=false,workflow=tick}"];
    assert!(fires >= 2.0, "{m:?}");
    assert!(m["cxflow_run_duration_seconds{workflow=tick}"] >= 2.0, "{m:?}");
    assert!(m["cxflow_items{kind=command,status=ok,step=hello,workflow=tick}"] >= 2.0, "{m:?}");

    serve.sigterm();
    drop(serve);
}
