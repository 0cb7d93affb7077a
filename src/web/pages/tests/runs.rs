use super::{seed, seed_with, Fixture, MANUAL};
use crate::store::{RunStatus, TriggerKind};

/// The run ids in the runs table of a page, in order.
fn ids(body: &str) -> Vec<i64> {
    body.split(r#"<td class="num"><a href="/runs/"#).skip(1).filter_map(|s| s.split('"').next()?.parse().ok()).collect()
}

#[tokio::test]
async fn runs_are_newest_first_filtered_and_paged_by_keyset_with_the_filters_kept() {
    let f = Fixture::new(&[("workflows/by-hand.yaml", MANUAL)], None).await;
    let mut failed_a = Vec::new();
    for i in 0..70 {
        let (wf, st) = if i % 2 == 0 { ("a", RunStatus::Failed) } else { ("b", RunStatus::Succeeded) };
        let id = seed(&f.store, wf, st, Some("boom: <script>x</script> \"q\""), &[]).await;
        if wf == "a" {
            failed_a.push(id);
        }
    }
    let body = f.page("/runs").await;
    let first = ids(&body);
    assert_eq!(first.len(), 50);
    assert!(first.windows(2).all(|w| w[0] > w[1]), "newest first: {first:?}");
    assert!(body.contains(&format!(r#"<a rel="next" href="/runs?before={}">older »</a>"#, first[49])), "{body}");
    assert!(body.contains("boom: &lt;script&gt;x&lt;/script&gt; &quot;q&quot;"), "{body}");
    assert!(!body.contains("<script>x"), "{body}");

    // Filtered: 35 failed runs of `a`, 20 per page with... the page size is 50, so one page.
    let body = f.page("/runs?workflow=a&status=failed&trigger=&from=&to=").await;
    let got = ids(&body);
    failed_a.reverse();
    assert_eq!(got, failed_a);
    assert!(!body.contains(r#"rel="next""#), "one page: {body}");
    assert!(body.contains(r#"<option value="failed" selected>failed</option>"#), "the form keeps the filter: {body}");

    // The next page link of a filtered list carries the filters.
    let body = f.page("/runs?status=succeeded&trigger=manual").await;
    let page1 = ids(&body);
    assert_eq!(page1.len(), 35);
    let body = f.page(&format!("/runs?status=succeeded&before={}", page1[10])).await;
    assert_eq!(ids(&body), page1[11..].to_vec());
    assert!(body.contains(r#"<a href="/runs?status=succeeded">« newest</a>"#), "{body}");
}

#[tokio::test]
async fn the_older_link_carries_every_filter() {
    let f = Fixture::new(&[], None).await;
    for _ in 0..51 {
        seed_with(&f.store, "w x", TriggerKind::Schedule, &serde_json::json!({}), RunStatus::Failed, None, &[]).await;
    }
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let body = f.page(&format!("/runs?workflow=w+x&status=failed&trigger=schedule&from={today}&to={today}")).await;
    let got = ids(&body);
    assert_eq!(got.len(), 50);
    let next = format!(
        r#"<a rel="next" href="/runs?workflow=w+x&amp;status=failed&amp;trigger=schedule&amp;from={today}&amp;to={today}&amp;before={}">"#,
        got[49]
    );
    assert!(body.contains(&next), "{body}");
    // Dates bound the start: nothing started before 2000.
    assert!(ids(&f.page("/runs?to=2000-01-01").await).is_empty());
    assert!(ids(&f.page("/runs?trigger=manual").await).is_empty());
}

#[tokio::test]
async fn a_bad_filter_is_a_400_that_names_it() {
    let f = Fixture::new(&[], None).await;
    let g = f.get("/runs?status=done").await;
    assert_eq!(g.status, 400);
    assert!(g.body.contains("`status=done` is not one of running, succeeded, partial, failed, interrupted, skipped"), "{}", g.body);
    let g = f.get("/runs?from=yesterday").await;
    assert_eq!(g.status, 400);
    assert!(g.body.contains("`yesterday` is not a date"), "{}", g.body);
    assert_eq!(f.get("/runs?before=x1").await.status, 400);
}
