use serde_json::json;

use super::{seed, seed_with, Fixture};
use crate::store::{ItemStatus, RunStatus, TriggerKind};

/// The item keys in the items table of a page, in order.
fn keys(body: &str) -> Vec<String> {
    let Some(table) = body.split(r#"<table id="items-table">"#).nth(1) else { return Vec::new() };
    let table = table.split("</table>").next().unwrap();
    table.split("<tr><td><code>").skip(1).map(|s| s.split("</code>").next().unwrap().to_string()).collect()
}

#[tokio::test]
async fn a_run_shows_its_header_steps_and_items_with_record_data_escaped() {
    let f = Fixture::new(&[], None).await;
    let hostile = "<script>alert('x')</script> \"q\"";
    let params = json!({"batch": hostile});
    let items: Vec<_> = vec![
        ("fetch", "k1", ItemStatus::Ok, None, Some(json!({"note": hostile}))),
        ("fetch", "k2", ItemStatus::Failed, Some("smtp said: <b>550</b>"), None),
        ("fetch", hostile, ItemStatus::Skipped, None, None),
        ("send", "k1", ItemStatus::Ok, None, Some(json!({"long": "y".repeat(300)}))),
    ];
    let id = seed_with(&f.store, "mail", TriggerKind::Schedule, &params, RunStatus::Partial, Some("1 item failed"), &items).await;
    let body = f.page(&format!("/runs/{id}")).await;

    assert!(!body.contains("<script>alert"), "no record text reaches the page unescaped: {body}");
    assert!(!body.contains("<b>550"), "{body}");
    assert!(body.contains("&lt;script&gt;alert('x')&lt;/script&gt; \\&quot;q\\&quot;"), "params, as JSON, escaped: {body}");
    assert!(body.contains("smtp said: &lt;b&gt;550&lt;/b&gt;"), "{body}");
    assert!(body.contains(r#"<span class="status s-partial">partial</span>"#), "{body}");
    assert!(body.contains("<th>Trigger</th><td>schedule"), "{body}");
    assert!(body.contains("<th>Error</th><td><pre class=\"error\">1 item failed</pre>"), "{body}");
    // Steps with their counts.
    assert!(body.contains(r#"<tr data-step="fetch">"#), "{body}");
    assert!(body.contains(r#"<td class="num ok">1</td><td class="num failed">1</td><td class="num skipped">1</td>"#), "{body}");
    // A finished run does not refresh itself.
    assert!(body.contains(r#"<div id="run-live">"#), "{body}");
    assert!(!body.contains(r#"data-live=""#), "{body}");
    // Items in step order, then input order; a long output folds.
    assert_eq!(
        keys(&body),
        vec!["k1".to_string(), "k2".into(), "&lt;script&gt;alert('x')&lt;/script&gt; &quot;q&quot;".into(), "k1".into()]
    );
    assert!(body.contains("<details><summary>{&quot;long&quot;:&quot;yyy"), "{body}");
}

#[tokio::test]
async fn items_filter_by_status_step_and_key_prefix_and_page_with_the_filters_kept() {
    let f = Fixture::new(&[], None).await;
    let mut items = Vec::new();
    let names: Vec<String> = (0..250).map(|i| format!("order-{i:03}")).collect();
    for (i, n) in names.iter().enumerate() {
        let st = if i % 5 == 0 { ItemStatus::Failed } else { ItemStatus::Ok };
        items.push(("a", n.as_str(), st, (st == ItemStatus::Failed).then_some("no"), None));
    }
    items.push(("b", "order-000", ItemStatus::Ok, None, None));
    let id = seed(&f.store, "w", RunStatus::Partial, None, &items).await;

    let body = f.page(&format!("/runs/{id}?status=failed")).await;
    let got = keys(&body);
    assert_eq!(got.len(), 50);
    assert!(got.iter().all(|k| k.ends_with('0') || k.ends_with('5')), "{got:?}");
    assert!(!body.contains(r#"rel="next""#));

    // A key prefix, one step; the next page's link keeps both.
    let body = f.page(&format!("/runs/{id}?q=order-2")).await;
    assert_eq!(keys(&body), (200..250).map(|i| format!("order-{i}")).collect::<Vec<_>>());
    let body = f.page(&format!("/runs/{id}?step=a&q=order-")).await;
    let got = keys(&body);
    assert_eq!(got.len(), 100);
    let next = body.split(r#"<a rel="next" href=""#).nth(1).expect("a next link").split('"').next().unwrap().replace("&amp;", "&");
    assert!(next.starts_with(&format!("/runs/{id}?step=a&q=order-&after=")), "{next}");
    let body = f.page(next.trim_end_matches("#items")).await;
    assert_eq!(keys(&body), (100..200).map(|i| format!("order-{i}")).collect::<Vec<_>>());
    assert!(body.contains(&format!(r#"<a href="/runs/{id}?step=a&amp;q=order-#items">« first</a>"#)), "{body}");

    // Unfiltered: 251 items over both steps, pages of 100.
    let body = f.page(&format!("/runs/{id}")).await;
    let next = body.split(r#"<a rel="next" href=""#).nth(1).unwrap().split('"').next().unwrap().replace("&amp;", "&");
    let body2 = f.page(next.trim_end_matches("#items")).await;
    let (p1, p2) = (keys(&body), keys(&body2));
    assert_eq!((p1.len(), p2.len()), (100, 100));
    assert_eq!(p1[99], "order-099");
    assert_eq!(p2[0], "order-100");
    assert_eq!(f.get(&format!("/runs/{id}?after=nonsense")).await.status, 400);
    assert_eq!(f.get(&format!("/runs/{id}?status=maybe")).await.status, 400);
}

#[tokio::test]
async fn a_running_run_refreshes_its_summary_until_it_finishes() {
    let f = Fixture::new(&[], None).await;
    let id = seed(
        &f.store,
        "w",
        RunStatus::Running,
        None,
        &[("a", "k", ItemStatus::Ok, None, None), ("a", "j", ItemStatus::Failed, Some("e"), None)],
    )
    .await;
    let body = f.page(&format!("/runs/{id}")).await;
    assert!(body.contains(r#"<div id="run-live" data-live="2000">"#), "{body}");
    // A running step's counts come from its items.
    assert!(body.contains(r#"<td class="num ok">1</td><td class="num failed">1</td>"#), "{body}");
    assert!(body.contains(r#"<span class="status s-running">running</span>"#), "{body}");

    f.store.finish_run(id, RunStatus::Succeeded, None).await.unwrap();
    let body = f.page(&format!("/runs/{id}")).await;
    assert!(body.contains(r#"<div id="run-live">"#), "{body}");
    assert!(!body.contains(r#"data-live=""#), "{body}");
}

#[tokio::test]
async fn uncertain_deliveries_are_listed_and_an_unknown_run_is_404() {
    let f = Fixture::new(&[], None).await;
    let id = seed(&f.store, "mail", RunStatus::Failed, None, &[("send", "cust-<7>", ItemStatus::Failed, Some("uncertain: x"), None)]).await;
    f.store.claim_key("mail/send/cust-<7>", "mail", id, "send", "cust-<7>").await.unwrap();
    let body = f.page(&format!("/runs/{id}")).await;
    let section = body.split(r#"<section id="uncertain">"#).nth(1).expect("the uncertain section").split("</section>").next().unwrap();
    assert!(section.contains("<td>send</td><td>cust-&lt;7&gt;</td><td><code>mail/send/cust-&lt;7&gt;</code></td>"), "{section}");

    let other = seed(&f.store, "mail", RunStatus::Succeeded, None, &[]).await;
    let body = f.page(&format!("/runs/{other}")).await;
    assert!(body.contains(r#"<section id="uncertain"></section>"#), "an empty placeholder: {body}");
    let g = f.get("/runs/999").await;
    assert_eq!(g.status, 404);
    assert!(g.body.contains("there is no run 999"), "{}", g.body);
}
