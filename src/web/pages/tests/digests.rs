use std::time::Duration;

use serde_json::Map;

use super::Fixture;
use crate::control::Actor;
use crate::engine::log::DigestFigures;
use crate::store::{RunStatus, Store};
use crate::web::auth::Role;

/// The repository's feedback routing sample with its rules, data and digest templates; the
/// digests go to the run's artifacts folder (no `out_dir`) and nothing is emailed.
const FB: &str = "name: fb\nsteps:\n  - id: feedback\n    read_csv: data/feedback.csv\n  - id: routed\n    route:\n      input: feedback\n      rules: routing/teams.yaml\n      unmatched: Triage\n      as_of: \"2024-05-02T12:00:00Z\"\n      digest:\n        urgent_limit: 5\n        sample_size: 3\n";

async fn sample(f: &Fixture) {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for rel in ["routing/teams.yaml", "data/feedback.csv", "templates/feedback_digest.html.hbs", "templates/feedback_digest.txt.hbs"] {
        std::fs::create_dir_all(f.path(rel).parent().unwrap()).unwrap();
        std::fs::copy(repo.join(rel), f.path(rel)).unwrap();
    }
    std::fs::write(f.path("workflows/fb.yaml"), FB).unwrap();
}

/// Runs `fb` as the dashboard's "run now" does, and waits (with a deadline) for it to succeed.
async fn run_fb(f: &Fixture) -> i64 {
    let id = f.app.control.start_run(&Actor::new("test", Role::Operator), "fb", Map::new()).await.unwrap();
    let end = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let row = f.store.run(id).await.unwrap();
        match row.status {
            RunStatus::Succeeded => return id,
            RunStatus::Running => assert!(tokio::time::Instant::now() < end, "run {id} still running after 120 s"),
            other => panic!("run {id} ended {other}: {:?}", row.error),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The part of `body` from the chart of `metric` to its end.
fn chart<'a>(body: &'a str, metric: &str) -> &'a str {
    let start = body.find(&format!(r#"data-metric="{metric}""#)).unwrap_or_else(|| panic!("no {metric} chart: {body}"));
    let rest = &body[start..];
    &rest[..rest.find("</svg>").unwrap()]
}

fn points(body: &str, metric: &str) -> usize {
    chart(body, metric).matches(r#"<circle class="pt""#).count()
}

/// The history table's rows, each as its cells' text (tags dropped).
fn rows(body: &str) -> Vec<Vec<String>> {
    let table = &body[body.find(r#"<table id="digest-history">"#).expect("a history table")..];
    let tbody = &table[table.find("<tbody>").unwrap()..table.find("</tbody>").unwrap()];
    tbody
        .split("<tr>")
        .skip(1)
        .map(|tr| tr.split("<td").skip(1).map(|td| strip(&td[td.find('>').unwrap() + 1..td.find("</td>").unwrap()])).collect())
        .collect()
}

fn strip(html: &str) -> String {
    let mut out = String::new();
    let mut tag = false;
    for c in html.chars() {
        match c {
            '<' => tag = true,
            '>' => tag = false,
            c if !tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// The `href`s in `html` that start with `prefix`.
fn links(html: &str, prefix: &str) -> Vec<String> {
    html.split(&format!(r#"href="{prefix}"#)).skip(1).map(|s| format!("{prefix}{}", &s[..s.find('"').unwrap()])).collect()
}

#[tokio::test]
async fn the_feedback_sample_run_twice_gives_each_team_a_history_with_trends_and_files() {
    let f = Fixture::new(&[], None).await;
    sample(&f).await;
    let first = run_fb(&f).await;
    // New feedback: a 5-star billing one, and a mobile one without a rating.
    let mut csv = std::fs::read_to_string(f.path("data/feedback.csv")).unwrap();
    csv.push_str("FB-2001,2024-05-02T11:50:00Z,email,billing,5,zed@example.com,Refund arrived quickly\n");
    csv.push_str("FB-2002,2024-05-02T11:55:00Z,chat,mobile_app,,yu@example.com,The login screen looks odd\n");
    std::fs::write(f.path("data/feedback.csv"), csv).unwrap();
    let second = run_fb(&f).await;

    let teams = f.store.digest_teams().await.unwrap();
    assert!(teams.len() >= 4, "{teams:?}");
    let body = f.page("/digests").await;
    for t in &teams {
        assert_eq!(t.scope, "fb/routed");
        let href = crate::web::pages::digests::team_url(&t.scope, &t.team);
        assert!(
            body.contains(&format!(r#"<a href="{}">{}</a>"#, href.replace('&', "&amp;"), t.team.replace('&', "&amp;"))),
            "{href}: {body}"
        );
        assert!(body.contains(&format!(r#"<a href="/runs/{0}">{0}</a>"#, t.last_run_id)), "{body}");
    }
    assert!(body.contains(r#"<a href="/digests/fb%2Frouted/Trust%20&amp;%20Safety">Trust &amp; Safety</a>"#), "{body}");
    let billing = teams.iter().find(|t| t.team == "Billing").unwrap();
    assert_eq!((billing.digests, billing.last_run_id), (2, second));

    // Billing: both digests, newest first, with the figures the run log holds.
    let body = f.page("/digests/fb%2Frouted/Billing").await;
    let h = f.store.digest_history("fb/routed", "Billing", 10).await.unwrap();
    assert_eq!(h.iter().map(|d| d.run_id).collect::<Vec<_>>(), [second, first]);
    let got = rows(&body);
    assert_eq!(got.len(), 2, "{body}");
    for (row, d) in got.iter().zip(&h) {
        let avg = d.avg_rating.map_or("—".into(), |r| format!("{r:.2}"));
        let csat = d.csat.map_or("—".into(), |c| format!("{c:.1}%"));
        let want = [d.run_id.to_string(), d.count.to_string(), d.urgent.to_string(), d.rated.to_string(), avg, csat];
        assert_eq!([&row[0], &row[2], &row[3], &row[4], &row[5], &row[6]], want.each_ref(), "{row:?}");
    }
    assert_eq!(h[0].count, 1);
    let (dc, dr, dcs) =
        (h[0].count - h[1].count, h[0].avg_rating.unwrap() - h[1].avg_rating.unwrap(), h[0].csat.unwrap() - h[1].csat.unwrap());
    assert_eq!(got[0][7], format!("{dc} items, rating +{dr:.2}, CSAT +{dcs:.1} pt"), "{body}");
    assert_eq!(got[1][7], "first digest");
    for metric in ["items", "urgent", "rating", "csat"] {
        assert_eq!(points(&body, metric), 2, "{metric}");
    }
    assert!(chart(&body, "items").contains(&format!("<title>run #{second}: 1</title>")), "{body}");
    for axis in [">run<", ">items<"] {
        assert!(chart(&body, "items").contains(axis), "{axis}: {body}");
    }

    // Each digest's files are served: HTML sandboxed, Markdown as text.
    let files = links(&body, &format!("/runs/{second}/artifacts/"));
    assert_eq!(files.len(), 2, "{body}");
    let html = f.get(&files[0]).await;
    assert_eq!(html.status, 200);
    assert!(html.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(html.headers["content-security-policy"].to_str().unwrap().starts_with("sandbox"));
    assert!(html.body.contains("Billing") && html.body.contains("Refund arrived quickly"), "{}", html.body);
    let md = f.get(&files[1]).await;
    assert!(md.headers["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert!(md.body.contains("Refund arrived quickly"), "{}", md.body);

    // Mobile app's new feedback has no rating: the rating and CSAT lines have a gap.
    let body = f.page("/digests/fb%2Frouted/Mobile%20app").await;
    let h = f.store.digest_history("fb/routed", "Mobile app", 10).await.unwrap();
    assert_eq!((h.len(), h[0].avg_rating, h[0].csat), (2, None, None));
    assert_eq!((points(&body, "items"), points(&body, "rating"), points(&body, "csat")), (2, 1, 1));
    assert!(chart(&body, "rating").contains("no rated feedback") || body.contains("gaps: digests with no rated feedback"));
    assert_eq!(rows(&body)[0][5], "—");
}

async fn seed(store: &Store, scope: &str, digests: &[(&str, u64, Option<f64>)]) -> Vec<i64> {
    let mut runs = Vec::new();
    for (team, count, avg) in digests {
        let r = super::seed(store, "ops/team x", RunStatus::Succeeded, None, &[]).await;
        let (writer, _ids) = store.routing_writer(scope, r);
        let fig = DigestFigures {
            team: team.to_string(),
            count: *count,
            urgent: 1,
            rated: avg.map_or(0, |_| 2),
            avg_rating: *avg,
            csat: avg.map(|a| a * 20.0),
        };
        writer.finish(vec![fig]).await.unwrap();
        runs.push(r);
    }
    runs
}

#[tokio::test]
async fn team_names_are_escaped_gaps_show_and_unknown_teams_are_404() {
    let f = Fixture::new(&[], None).await;
    assert!(f.page("/digests").await.contains("No digests yet"));
    let evil = r#"<script>alert(1)</script> & "Co"/x"#;
    let runs = seed(&f.store, "ops/team x/route", &[(evil, 3, Some(4.0)), (evil, 5, None), (evil, 2, Some(2.5))]).await;

    let list = f.page("/digests").await;
    let href = "/digests/ops%2Fteam%20x%2Froute/%3Cscript%3Ealert(1)%3C%2Fscript%3E%20&amp;%20%22Co%22%2Fx";
    assert!(list.contains(&format!(r#"<a href="{href}">&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;Co&quot;/x</a>"#)), "{list}");
    assert!(!list.contains("<script>alert"), "{list}");

    let body = f.page(&href.replace("&amp;", "&")).await;
    assert!(!body.contains("<script>alert"), "{body}");
    assert!(body.contains("<h1>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;Co&quot;/x</h1>"), "{body}");
    let got = rows(&body);
    assert_eq!(got.iter().map(|r| r[0].parse::<i64>().unwrap()).collect::<Vec<_>>(), [runs[2], runs[1], runs[0]]);
    assert_eq!((got[1][5].as_str(), got[1][7].as_str()), ("—", "+2 items"), "no rating: no rating change");
    assert_eq!(got[0][8], "no HTML · no Markdown", "no files were recorded");
    assert_eq!((points(&body, "items"), points(&body, "rating"), points(&body, "csat")), (3, 2, 2));
    // The line starts again after the missing rating.
    let rating = chart(&body, "rating");
    let d = &rating[rating.find("<path d=\"").unwrap() + 9..];
    assert_eq!(d[..d.find('"').unwrap()].matches('M').count(), 2, "{rating}");

    for missing in ["/digests/ops%2Fteam%20x%2Froute/Nobody", "/digests/nope%2Froute/%3Cb%3E"] {
        let g = f.get(missing).await;
        assert_eq!(g.status, 404, "{missing}");
        assert!(g.body.contains("no digests for team"), "{}", g.body);
        assert!(!g.body.contains("<b>"), "{}", g.body);
    }
}
