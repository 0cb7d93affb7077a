//! Pages of items: order, keyset cursors, filters, prefix search, and a running step's counts.

use super::*;
use crate::store::StepStatus;

/// Reads every page of `q` and returns the (step, key) of each row in order.
async fn all_pages(store: &Store, run: i64, mut q: ItemsQuery) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for _ in 0..1000 {
        let page = store.items_page(run, &q).await.unwrap();
        assert!(page.rows.len() as i64 <= super::super::page_limit(q.limit));
        out.extend(page.rows.iter().map(|r| (r.step_id.clone(), r.item_key.clone())));
        match page.next {
            // A cursor goes through its text form, as it does through a URL.
            Some(c) => q.after = Some(c.to_string().parse().unwrap()),
            None => return out,
        }
    }
    panic!("pages never ended");
}

/// A run of two steps (`second` at position 0 though it sorts after `first`), items in mixed
/// statuses, and two items sharing a `seq` (a resume over a changed input).
async fn two_step_run(store: &Store) -> i64 {
    let r = start(store, "w", TriggerKind::Manual).await;
    store.start_step(r, "second", 0, "send_email").await.unwrap();
    store.start_step(r, "first", 1, "browser").await.unwrap();
    let w = store.item_writer();
    for i in 0..23 {
        let status = match i % 4 {
            0 => ItemStatus::Failed,
            1 => ItemStatus::Skipped,
            _ => ItemStatus::Ok,
        };
        w.write(item(r, "second", &format!("S-{i:02}"), 23 - i, status)).await;
    }
    for i in 0..9 {
        w.write(item(r, "first", &format!("F-{i}"), i / 2, if i == 4 { ItemStatus::Failed } else { ItemStatus::Ok })).await;
    }
    w.flush().await.unwrap();
    r
}

/// The order the dashboard promises, straight from the tables.
/// (PostgreSQL's items have a `rowid` column, numbered as SQLite numbers its rows.)
async fn expected(store: &Store, run: i64, status: Option<&str>) -> Vec<(String, String)> {
    on_db!(&store.db, pool => sqlx::query_as(
        "SELECT i.step_id, i.item_key FROM items i JOIN steps s ON s.run_id = i.run_id AND s.step_id = i.step_id
         WHERE i.run_id = $1 AND ($2 IS NULL OR i.status = $2) ORDER BY s.position, i.seq, i.rowid",
    )
    .bind(run)
    .bind(status)
    .fetch_all(pool)
    .await)
    .unwrap()
}

crate::store::testing::store_test! {
#[tokio::test]
async fn item_pages_run_in_step_order_then_seq_with_no_row_skipped_or_repeated(fresh) {
    let store = fresh.open().await;
    let r = two_step_run(&store).await;
    let want = expected(&store, r, None).await;
    assert_eq!(want.len(), 32);
    assert_eq!(want[0], ("second".to_string(), "S-22".to_string()), "position, not name, orders steps; then seq");
    for limit in [1, 3, 7, 32, 500] {
        assert_eq!(all_pages(&store, r, ItemsQuery { limit, ..Default::default() }).await, want, "limit {limit}");
    }
    for status in ItemStatus::ALL {
        let q = ItemsQuery { status: Some(*status), limit: 4, ..Default::default() };
        assert_eq!(all_pages(&store, r, q).await, expected(&store, r, Some(status.as_str())).await, "{status}");
    }
    let q = ItemsQuery { step: Some("first".into()), limit: 2, ..Default::default() };
    let first: Vec<(String, String)> = want.iter().filter(|(s, _)| s == "first").cloned().collect();
    assert_eq!(all_pages(&store, r, q).await, first);
    let page = store.items_page(r, &ItemsQuery { step: Some("first".into()), limit: 9, ..Default::default() }).await.unwrap();
    assert!(page.next.is_none(), "a page that ends the list has no next");
    let row = &page.rows[4];
    assert_eq!((row.item_key.as_str(), row.seq, row.status, row.attempts), ("F-4", 2, ItemStatus::Failed, 1));
    assert!(!row.finished_at.is_empty());
    let v = serde_json::to_value(row).unwrap();
    assert_eq!(v["item_key"], "F-4");
    assert!(v.get("row").is_none() && v.get("position").is_none(), "the cursor's parts stay out of the JSON: {v}");

    let none = ItemsQuery { step: Some("nope".into()), ..Default::default() };
    assert!(store.items_page(r, &none).await.unwrap().rows.is_empty());
    assert!(store.items_page(r + 1, &ItemsQuery::default()).await.unwrap().rows.is_empty());
}
}

crate::store::testing::store_test! {
#[tokio::test]
async fn key_search_is_a_literal_prefix_wildcards_and_quotes_included(fresh) {
    let store = fresh.open().await;
    let r = start(&store, "w", TriggerKind::Manual).await;
    store.start_step(r, "s", 0, "send_email").await.unwrap();
    let keys = ["a%b", "a%", "axb", "a_b", "aXb", "a'q", "a\"q", "ab", "a", "b", "é1", "é2", "\u{10FFFF}z", "100%", "10"];
    let w = store.item_writer();
    for (i, k) in keys.iter().enumerate() {
        w.write(item(r, "s", k, i as i64, if i % 2 == 0 { ItemStatus::Ok } else { ItemStatus::Failed })).await;
    }
    w.flush().await.unwrap();
    let search = |q: &str, status: Option<ItemStatus>, limit: i64| {
        let store = store.clone();
        let q = ItemsQuery { q: Some(q.to_string()), status, limit, ..Default::default() };
        async move { all_pages(&store, r, q).await.into_iter().map(|(_, k)| k).collect::<Vec<_>>() }
    };
    assert_eq!(search("a%", None, 1).await, ["a%", "a%b"], "`%` is a character, and rows come in key order");
    assert_eq!(search("a_", None, 1).await, ["a_b"]);
    assert_eq!(search("a'", None, 10).await, ["a'q"]);
    assert_eq!(search("a\"", None, 10).await, ["a\"q"]);
    assert_eq!(search("10", None, 10).await, ["10", "100%"]);
    assert_eq!(search("100%", None, 10).await, ["100%"]);
    assert_eq!(search("é", None, 1).await, ["é1", "é2"]);
    assert_eq!(search("\u{10FFFF}", None, 10).await, ["\u{10FFFF}z"], "a prefix ending in the last code point has no end");
    assert_eq!(search("ax", None, 10).await, ["axb"], "case counts");
    assert_eq!(search("a", Some(ItemStatus::Failed), 2).await, ["a%", "a'q", "a_b", "ab"]);
    assert!(search("zz", None, 10).await.is_empty());
    assert_eq!(search("", None, 100).await.len(), keys.len(), "an empty search is no filter");
}
}

#[test]
fn a_prefix_range_ends_just_past_every_text_that_starts_with_it() {
    use super::super::items::prefix_end;
    assert_eq!(prefix_end("ab").as_deref(), Some("ac"));
    assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
    assert_eq!(prefix_end("\u{D7FF}").as_deref(), Some("\u{E000}"));
    assert_eq!(prefix_end("\u{10FFFF}\u{10FFFF}"), None);
    assert_eq!(prefix_end(""), None);
}

crate::store::testing::store_test! {
#[tokio::test]
async fn a_running_step_is_counted_from_its_items_and_a_finished_one_read_from_the_steps_table(fresh) {
    let store = fresh.open().await;
    let r = two_step_run(&store).await;
    store.finish_step(r, "second", StepEnd { status: StepStatus::Partial, error: None, output: None, records: None }).await.unwrap();
    // What finish_step stored is what a finished step shows (nothing counts its items again).
    exec(&store, "UPDATE steps SET ok = 1000 WHERE run_id = $1 AND step_id = 'second'", &[r]).await;
    let c = store.item_counts(r).await.unwrap();
    let got: Vec<_> = c.iter().map(|c| (c.step_id.as_str(), c.status, c.ok, c.failed, c.skipped, c.live)).collect();
    assert_eq!(got, [("second", StepStatus::Partial, 1000, 6, 6, false), ("first", StepStatus::Running, 8, 1, 0, true)]);
    assert!(store.item_counts(r + 1).await.unwrap().is_empty());
}
}
