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

/// A project of `names`, each a workflow every 5 minutes in UTC, plus one file that does not
/// validate.
async fn project(names: &[String]) -> Fixture {
    let mut files: Vec<(String, String)> = names
        .iter()
        .map(|n| {
            (
                format!("workflows/{n}.yaml"),
                format!("name: {n}\nschedule:\n  cron: \"*/5 * * * *\"\nsteps:\n  - id: t\n    read_csv: data/t.csv\n"),
            )
        })
        .collect();
    files.push(("workflows/zz-broken.yaml".into(), "name: zz-broken\nsteps: [".into()));
    let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    Fixture::new(&refs, None).await
}

/// The workflows listed on a page, in order (their links in the table).
fn listed(body: &str) -> Vec<String> {
    body.split(r#"<tr><td><a href="/workflows/"#).skip(1).filter_map(|s| Some(s.split('"').next()?.to_string())).collect()
}

#[tokio::test]
async fn the_overview_shows_250_workflows_100_a_page_in_name_order_with_links_between_pages() {
    let names: Vec<String> = (0..250).map(|i| format!("w{i:03}")).collect();
    let f = project(&names).await;
    let w150 = seed(&f.store, "w150", RunStatus::Failed, None, &[]).await;
    let w000 = seed(&f.store, "w000", RunStatus::Succeeded, None, &[]).await;

    let body = f.page("/").await;
    assert_eq!(listed(&body), names[..100], "{body}");
    assert!(body.contains(r#"<p id="count">Workflows 1–100 of 250</p>"#), "{body}");
    assert!(body.contains(r#"<a rel="next" href="/?page=2">next ›</a><a href="/?page=3">last »</a>"#), "{body}");
    assert!(!body.contains(r#"rel="prev""#) && !body.contains("« first"), "page 1 has nothing before it: {body}");
    // Only the page's workflows are read and worked out: w000's last run, not w150's; three
    // fires for each of the 100 rows.
    assert!(body.contains(&format!(r#"<a href="/runs/{w000}">#{w000}</a>"#)), "{body}");
    assert!(!body.contains(&format!(r#"<a href="/runs/{w150}">"#)), "{body}");
    assert_eq!(body.matches(" UTC · ").count(), 300, "{body}");
    assert!(body.contains(r#"<h2 id="broken">"#) && body.contains("zz-broken.yaml"), "{body}");

    let body = f.page("/?page=2").await;
    assert_eq!(listed(&body), names[100..200], "{body}");
    assert!(body.contains(r#"<p id="count">Workflows 101–200 of 250</p>"#), "{body}");
    assert!(body.contains(r#"<a href="/">« first</a><a rel="prev" href="/">‹ previous</a>"#), "page 1 is the bare `/`: {body}");
    assert!(body.contains(r#"<a rel="next" href="/?page=3">"#), "{body}");
    assert!(body.contains(&format!(r#"<a href="/runs/{w150}">#{w150}</a> <span class="status s-failed">failed</span>"#)), "{body}");
    assert!(!body.contains(&format!(r#"<a href="/runs/{w000}">"#)), "{body}");

    let body = f.page("/?page=3").await;
    assert_eq!(listed(&body), names[200..], "{body}");
    assert!(body.contains(r#"<p id="count">Workflows 201–250 of 250</p>"#), "{body}");
    assert!(body.contains(r#"<a rel="prev" href="/?page=2">"#) && !body.contains(r#"rel="next""#), "{body}");
    assert_eq!(body.matches(" UTC · ").count(), 150, "{body}");
    assert!(body.contains(r#"<h2 id="broken">"#), "the broken files show on every page: {body}");
}

#[tokio::test]
async fn the_name_filter_ignores_case_counts_the_matches_and_the_page_links_keep_it() {
    let names: Vec<String> = (0..250).map(|i| if i % 2 == 0 { format!("Inventory-{i:03}") } else { format!("returns-{i:03}") }).collect();
    let f = project(&names).await;
    let inventory: Vec<String> = names.iter().filter(|n| n.starts_with("Inventory")).cloned().collect();
    assert_eq!(inventory.len(), 125);

    let body = f.page("/?q=inV").await;
    assert_eq!(listed(&body), inventory[..100], "{body}");
    assert!(
        body.contains(r#"<p id="count">Workflows 1–100 of 125 matching <code>inV</code><span class="muted"> (250 in all)</span></p>"#),
        "{body}"
    );
    assert!(body.contains(r#"<input type="search" name="q" value="inV">"#), "the form keeps the filter: {body}");
    assert!(body.contains(r#"<a href="/">Clear</a>"#), "{body}");
    assert!(body.contains(r#"<a rel="next" href="/?q=inV&amp;page=2">next ›</a>"#), "{body}");

    let body = f.page("/?q=inV&page=2").await;
    assert_eq!(listed(&body), inventory[100..], "{body}");
    assert!(body.contains(r#"Workflows 101–125 of 125 matching <code>inV</code>"#), "{body}");
    assert!(body.contains(r#"<a href="/?q=inV">« first</a><a rel="prev" href="/?q=inV">‹ previous</a>"#), "{body}");
    assert!(!body.contains(r#"rel="next""#), "{body}");
    assert!(body.contains(r#"<h2 id="broken">"#), "a filter does not hide the broken files: {body}");

    // A filter of one page has no pager; the name may hold anything, escaped on the page and
    // encoded in the links.
    let body = f.page("/?q=URNS-24").await;
    assert_eq!(listed(&body), ["returns-241", "returns-243", "returns-245", "returns-247", "returns-249"], "{body}");
    assert!(!body.contains(r#"<nav class="pager""#), "{body}");
    let body = f.page("/?q=%3Cb%3E%26%22").await;
    assert!(listed(&body).is_empty(), "{body}");
    assert!(
        body.contains(r#"No workflow name contains <code>&lt;b&gt;&amp;&quot;</code> (of 250). <a href="/">Show every workflow</a>"#),
        "{body}"
    );
    assert!(!body.contains("<b>&\""), "{body}");
}

#[tokio::test]
async fn a_page_that_is_not_a_number_from_1_is_a_400_and_a_page_past_the_end_says_so() {
    let names: Vec<String> = (0..250).map(|i| format!("w{i:03}")).collect();
    let f = project(&names).await;
    for bad in ["0", "-1", "abc", "1.5", "99999999999999999999999"] {
        let g = f.get(&format!("/?page={bad}")).await;
        assert_eq!(g.status, 400, "page={bad}: {}", g.body);
        assert!(g.body.contains(&format!("`page={bad}` is not a page number; pages count from 1")), "{}", g.body);
    }
    // An empty page is page 1, as an empty filter is no filter.
    assert_eq!(listed(&f.page("/?page=&q=").await), names[..100]);

    let body = f.page("/?page=4").await;
    assert!(listed(&body).is_empty(), "{body}");
    assert!(
        body.contains(
            r#"No workflows on page 4: there are 3 pages. <a href="/?page=3">Go to the last page</a> or <a href="/">the first</a>."#
        ),
        "{body}"
    );
    assert!(body.contains(r#"<h2 id="broken">"#), "{body}");
    let body = f.page("/?q=w24&page=1000000000000").await;
    assert!(body.contains(r#"there is 1 page. <a href="/?q=w24">Go to the last page</a>"#), "{body}");
}

#[tokio::test]
async fn a_page_is_picked_from_the_names_without_reading_the_others() {
    let names: Vec<String> = (0..205).map(|i| format!("w{i:03}")).collect();
    let f = project(&names).await;
    let snap = f.app.workflows.snapshot();
    let pick = |q, page| {
        let shown = super::super::overview::Shown::pick(&snap.good, q, page);
        let rows: Vec<String> = shown.rows.iter().map(|p| p.name.clone()).collect();
        (rows, shown.matched, shown.pages, shown.start, shown.total)
    };
    assert_eq!(pick(None, 1), (names[..100].to_vec(), 205, 3, 0, 205));
    assert_eq!(pick(Some("W"), 3), (names[200..].to_vec(), 205, 3, 200, 205));
    assert_eq!(pick(Some("w1"), 1), (names[100..200].to_vec(), 100, 1, 0, 205));
    assert_eq!(pick(Some("w1"), 2), (vec![], 100, 1, 100, 205));
    assert_eq!(pick(Some("x"), 1), (vec![], 0, 1, 0, 205));
    // A page far past the end does not overflow.
    assert_eq!(pick(None, usize::MAX).0, Vec::<String>::new());
}
