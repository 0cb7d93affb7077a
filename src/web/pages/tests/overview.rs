use std::sync::Arc;

use super::{seed, Fixture, MANUAL, SCHEDULED};
use crate::scheduler::launch::Plans;
use crate::store::{ItemStatus, RunStatus};

#[tokio::test]
async fn overview_shows_schedules_next_fires_last_run_durations_and_failures() {
    let f = Fixture::new(&[("workflows/nightly.yaml", SCHEDULED), ("workflows/by-hand.yaml", MANUAL)], None).await;
    for st in [RunStatus::Succeeded, RunStatus::Failed, RunStatus::Partial] {
        seed(&f.store, "nightly", st, None, &[("t", "a", ItemStatus::Ok, None, None)]).await;
    }
    let last = seed(&f.store, "nightly", RunStatus::Failed, Some("<script>alert(1)</script>"), &[]).await;
    let body = f.page("/").await;

    assert!(body.contains(r#"<a href="/workflows/nightly">nightly</a> <a class="muted" href="/runs?workflow=nightly">runs</a>"#), "{body}");
    assert!(body.contains(r#"<code>0 9 * * 6</code> <span class="muted">Europe/Paris</span>"#), "{body}");
    assert!(body.contains(r#"<span class="muted">manual</span>"#), "{body}");
    // Every Saturday fire is skipped by business_days, and said so, in the zone and locally.
    assert_eq!(body.matches("(business_days: true)</span>").count(), 3, "{body}");
    assert_eq!(body.matches(" CET · ").count() + body.matches(" CEST · ").count(), 3, "{body}");
    // The last run, linked, with its status; four finished runs in the sparkline; three failures.
    assert!(body.contains(&format!(r#"<a href="/runs/{last}">#{last}</a> <span class="status s-failed">failed</span>"#)), "{body}");
    assert_eq!(body.matches("<rect ").count(), 4, "{body}");
    assert!(body.contains(r##"fill="#b3261e"><title>#"##), "failed runs are red: {body}");
    let since = (chrono::Utc::now() - chrono::Duration::days(7)).format("%Y-%m-%d");
    assert!(
        body.contains(&format!(r#"<a class="error" href="/runs?workflow=nightly&amp;from={since}" title="failed or partial">3</a>"#)),
        "{body}"
    );
    assert!(body.contains(r#"<span class="muted">never ran</span>"#), "by-hand never ran: {body}");
    assert!(!body.contains("<script>alert"), "{body}");
}

#[tokio::test]
async fn a_broken_file_shows_its_diagnostics_escaped_and_whether_its_last_good_version_runs() {
    let plans: Plans = Arc::default();
    let f = Fixture::new(&[("workflows/nightly.yaml", SCHEDULED)], Some(plans.clone())).await;
    // `serve` scheduled the good version; then the file broke.
    let good = f.app.workflows.snapshot().good[0].clone();
    plans.write().unwrap().insert(good.name.clone(), good);
    std::fs::write(f.path("workflows/nightly.yaml"), SCHEDULED.replace("read_csv", "read_csv_<b>\"x\"")).unwrap();
    std::fs::write(f.path("workflows/other.yaml"), "name: other\nsteps: [").unwrap();
    f.app.workflows.reload();

    let body = f.page("/").await;
    assert!(body.contains(r#"<h2 id="broken">"#), "{body}");
    assert!(body.contains("The last good version of <code>nightly</code> keeps running until this file is fixed."), "{body}");
    assert!(body.contains(r#"<p class="error">Nothing runs from this file until it is fixed.</p>"#), "other.yaml never ran: {body}");
    assert!(body.contains("read_csv_&lt;b&gt;&quot;x&quot;"), "the diagnostic is escaped: {body}");
    assert!(!body.contains("read_csv_<b>"), "{body}");
    assert!(body.contains("nightly.yaml:"), "the diagnostic names the file and line: {body}");
}

#[tokio::test]
async fn the_overview_lists_a_thousand_workflows() {
    let files: Vec<(String, String)> = (0..1000)
        .map(|i| {
            (
                format!("workflows/w{i:04}.yaml"),
                format!("name: w{i:04}\nschedule:\n  cron: \"*/5 * * * *\"\nsteps:\n  - id: t\n    read_csv: data/t.csv\n"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let f = Fixture::new(&refs, None).await;
    for i in (0..1000).step_by(10) {
        seed(&f.store, &format!("w{i:04}"), RunStatus::Succeeded, None, &[]).await;
    }
    // Its speed is measured by `cargo bench --bench dashboard`, not here: a shared machine makes
    // any time limit in a test flaky.
    let body = f.page("/").await;
    assert_eq!(body.matches("<tr><td><a href=\"/workflows/w").count(), 1000);
}
