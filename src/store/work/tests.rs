use super::*;
use crate::engine::log::{Fence, ItemResult, ItemStatus};
use crate::store::testing;

async fn shared_run(store: &Store, cap: Option<u32>) -> i64 {
    let run = crate::store::testing::manual_run(store).await;
    let s = SharedStep { run_id: run, step_id: "mail".into(), workflow: "w".into(), spec_hash: "h".into(), ctx: "{}".into(), cap };
    store.share_step(&s).await.unwrap();
    let items: Vec<QueuedItem> = (1..=10).map(|i| QueuedItem { seq: i, key: format!("k{i}"), record: format!("{{\"n\":{i}}}") }).collect();
    store.queue_items(run, "mail", &items).await.unwrap();
    run
}

fn pool(store: &Store) -> &PgPool {
    store.work_pool().unwrap()
}

fn done(run_id: i64, item: &ClaimedItem) -> ItemResult {
    ItemResult {
        run_id,
        step_id: "mail".into(),
        key: item.key.clone(),
        seq: item.seq,
        status: ItemStatus::Ok,
        attempts: 1,
        error: None,
        output: None,
        claim: Some(item.token),
    }
}

/// Claims come in order, each item once; a lapsed lease makes an item claimable again under a
/// new token, and the old token can then record nothing: not the result, not a delivery.
#[tokio::test]
async fn claims_are_disjoint_and_a_lapsed_claim_is_fenced() {
    let fresh = testing::postgres().await;
    let store = fresh.open().await;
    let run = shared_run(&store, None).await;
    let a = store.claim_items(run, "mail", 4).await.unwrap();
    let b = store.claim_items(run, "mail", 4).await.unwrap();
    assert_eq!(a.iter().map(|i| i.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(b.iter().map(|i| i.seq).collect::<Vec<_>>(), [5, 6, 7, 8]);
    assert_eq!(a[0].record, "{\"n\":1}");
    assert_ne!(a[0].token, b[0].token);
    let p = store.share_progress(run, "mail").await.unwrap();
    assert_eq!((p.left, p.in_flight, p.stopped), (10, 8, false));

    // Item 1's claim is taken by the ledger for a delivery, then lapses (as if its node stopped).
    let fence = Fence { step_id: "mail".into(), seq: 1, token: a[0].token };
    assert_eq!(store.claim_key_fenced("d1", "w", run, "k1", &fence).await.unwrap(), Claim::Fresh);
    sqlx::query("UPDATE work_items SET lease_until = clock_timestamp() - interval '1 second' WHERE seq IN (1, 2)")
        .execute(pool(&store))
        .await
        .unwrap();
    assert_eq!(store.share_progress(run, "mail").await.unwrap().in_flight, 6);
    let again = store.claim_items(run, "mail", 3).await.unwrap();
    assert_eq!(again.iter().map(|i| i.seq).collect::<Vec<_>>(), [1, 2, 9], "the lapsed ones first");
    assert_ne!(again[0].token, a[0].token);

    // The old claim records nothing; item 3, still held, is recorded.
    let w = store.write_items(&[done(run, &a[0]), done(run, &a[2])]).await.unwrap_err();
    assert!(matches!(w, StoreError::ClaimLapsed { count: 1, .. }), "{w}");
    assert_eq!(store.done_keys(run, "mail").await.unwrap(), ["k3".to_string()].into());
    let sent = store.mark_sent_fenced("d1", run, None, &fence).await.unwrap_err();
    assert!(sent.to_string().contains("claim on its item lapsed"), "{sent}");
    let new_fence = Fence { step_id: "mail".into(), seq: 1, token: again[0].token };
    // Whoever holds item 1 now finds its delivery uncertain: the old holder may have sent it.
    assert_eq!(store.claim_key_fenced("d1", "w", run, "k1", &new_fence).await.unwrap(), Claim::Uncertain { run_id: run });
    // With the stale token, no new delivery can be claimed either.
    assert!(matches!(
        store.claim_key_fenced("d2", "w", run, "k2", &Fence { seq: 2, ..fence.clone() }).await,
        Err(StoreError::ClaimLapsed { .. })
    ));

    // The new holder records item 1 once.
    store.write_items(&[done(run, &again[0])]).await.unwrap();
    assert!(store.done_keys(run, "mail").await.unwrap().contains("k1"));
    assert_eq!(store.share_progress(run, "mail").await.unwrap().left, 8);

    // Item 2 fails. A resume queues everything not done when it looked: of the done ones, only
    // the failed item goes back in the queue; item 1, done meanwhile, is not run again.
    let mut failed = done(run, &again[1]);
    failed.status = ItemStatus::Failed;
    store.write_items(&[failed]).await.unwrap();
    let all: Vec<QueuedItem> = (1..=10).map(|i| QueuedItem { seq: i, key: format!("k{i}"), record: "{}".into() }).collect();
    store.queue_items(run, "mail", &all).await.unwrap();
    let states: Vec<(i64, String)> =
        sqlx::query_as("SELECT seq, state FROM work_items WHERE seq IN (1, 2, 3) ORDER BY seq").fetch_all(pool(&store)).await.unwrap();
    assert_eq!(states, [(1, "done".to_string()), (2, "queued".to_string()), (3, "done".to_string())]);
}

/// A cap over all nodes limits the items in flight; a stopped step or a run that is not running
/// gives out nothing; the heartbeat extends only leases that still hold.
#[tokio::test]
async fn the_cap_stop_and_leases() {
    let fresh = testing::postgres().await;
    let store = fresh.open().await;
    let run = shared_run(&store, Some(3)).await;
    assert_eq!(store.claim_items(run, "mail", 10).await.unwrap().len(), 3);
    assert!(store.claim_items(run, "mail", 10).await.unwrap().is_empty(), "the cap is full");
    sqlx::query("UPDATE work_items SET lease_until = clock_timestamp() - interval '1 second' WHERE seq = 1")
        .execute(pool(&store))
        .await
        .unwrap();
    assert_eq!(store.extend_item_leases().await.unwrap(), 2, "the lapsed one stays lapsed");
    let next = store.claim_items(run, "mail", 10).await.unwrap();
    assert_eq!(next.iter().map(|i| i.seq).collect::<Vec<_>>(), [1], "one place freed");

    store.stop_share(run, "mail").await.unwrap();
    sqlx::query("UPDATE work_steps SET cap = NULL").execute(pool(&store)).await.unwrap();
    assert!(store.claim_items(run, "mail", 10).await.unwrap().is_empty(), "stopped");
    assert!(store.share_progress(run, "mail").await.unwrap().stopped);
    // Reopened (a resume), then the run ends: nothing more is given out.
    let s = SharedStep { run_id: run, step_id: "mail".into(), workflow: "w".into(), spec_hash: "h".into(), ctx: "{}".into(), cap: None };
    store.share_step(&s).await.unwrap();
    assert_eq!(store.claim_items(run, "mail", 2).await.unwrap().len(), 2);
    store.finish_run(run, crate::engine::log::RunStatus::Interrupted, None).await.unwrap();
    assert!(store.claim_items(run, "mail", 10).await.unwrap().is_empty(), "the run is not running");
    // This node is the origin: it does not list its own step among the ones to help with.
    assert!(store.shared_steps().await.unwrap().is_empty());
    store.close_share(run, "mail").await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM work_items").fetch_one(pool(&store)).await.unwrap();
    assert_eq!(left, 0);
}

/// The heartbeat does not wait for a row another transaction holds (this node's result writer
/// marking it done): when it waited, the two locked rows in different orders and deadlocked
/// (`benches/spread_nodes.rs`). A held row is extended at the next beat.
#[tokio::test]
async fn the_heartbeat_skips_rows_the_result_writer_holds() {
    let fresh = testing::postgres().await;
    let store = fresh.open().await;
    let run = shared_run(&store, None).await;
    assert_eq!(store.claim_items(run, "mail", 3).await.unwrap().len(), 3);
    let mut tx = pool(&store).begin().await.unwrap();
    sqlx::query("SELECT 1 FROM work_items WHERE seq = 1 FOR UPDATE").execute(&mut *tx).await.unwrap();
    let beat = tokio::time::timeout(std::time::Duration::from_secs(30), store.extend_item_leases()).await;
    assert_eq!(beat.expect("the heartbeat waited for a row another transaction holds").unwrap(), 2);
    tx.rollback().await.unwrap();
    assert_eq!(store.extend_item_leases().await.unwrap(), 3);
}

/// A deadlock rolls the result writer's transaction back, and it is tried again: reported,
/// it stopped the node's work on the step (`tests/spread_items.rs`, a resume re-queueing the
/// step's items while another node wrote results).
#[tokio::test]
async fn a_result_batch_a_deadlock_rolled_back_is_written_again() {
    let fresh = testing::postgres().await;
    let store = fresh.open().await;
    let run = shared_run(&store, None).await;
    let results: Vec<ItemResult> = store.claim_items(run, "mail", 2).await.unwrap().iter().map(|c| done(run, c)).collect();
    let mut other = pool(&store).begin().await.unwrap();
    // The writer's side notices the deadlock first, so it is the one rolled back.
    sqlx::query("SET LOCAL deadlock_timeout = '60s'").execute(&mut *other).await.unwrap();
    sqlx::query("SELECT 1 FROM work_items WHERE seq = 2 FOR UPDATE").execute(&mut *other).await.unwrap();
    let writer = tokio::spawn({
        let store = store.clone();
        async move { store.write_items(&results).await }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let waiting: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
                .fetch_one(pool(&store))
                .await
                .unwrap();
        if waiting == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the writer never waited for the row held");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The writer holds seq 1 and waits for seq 2; asking for seq 1 closes the cycle.
    sqlx::query("SELECT 1 FROM work_items WHERE seq = 1 FOR UPDATE").execute(&mut *other).await.unwrap();
    other.commit().await.unwrap();
    writer.await.unwrap().expect("the batch a deadlock rolled back was written again");
    let states: Vec<(i64, String)> =
        sqlx::query_as("SELECT seq, state FROM work_items WHERE seq IN (1, 2) ORDER BY seq").fetch_all(pool(&store)).await.unwrap();
    assert_eq!(states, [(1, "done".to_string()), (2, "done".to_string())]);
    let items: i64 = sqlx::query_scalar("SELECT count(*) FROM items WHERE status = 'ok'").fetch_one(pool(&store)).await.unwrap();
    assert_eq!(items, 2);
}

/// SQLite has no `SKIP LOCKED`: sharing is refused with what to do.
#[tokio::test]
async fn sqlite_refuses_sharing() {
    let fresh = testing::sqlite().await;
    let store = fresh.open().await;
    let s = SharedStep { run_id: 1, step_id: "s".into(), workflow: "w".into(), spec_hash: "h".into(), ctx: "{}".into(), cap: None };
    let e = store.share_step(&s).await.unwrap_err().to_string();
    assert_eq!(e, "items are spread over nodes only with a PostgreSQL run log; set `database_url: postgres://…` or remove `spread_items`");
}

crate::store::testing::store_test! {
/// A process that lost its run to another (its lease lapsed, another resumed it) cannot record
/// how the run ends: the one that took it over does.
#[tokio::test]
async fn only_the_runs_owner_records_its_end(fresh) {
    let store = fresh.open().await;
    let run = crate::store::testing::manual_run(&store).await;
    crate::store::db::on_db!(&store.db, pool => sqlx::query("UPDATE runs SET owner = 'another-node' WHERE id = $1").bind(run).execute(pool).await.map(|_| ())).unwrap();
    let e = store.finish_run(run, crate::engine::log::RunStatus::Failed, Some("x")).await.unwrap_err();
    assert_eq!(e.to_string(), format!("run {run} was taken over by another process while this one's lease had lapsed (it was paused, or could not reach the run log); that process records how it ends"));
    assert_eq!(store.run(run).await.unwrap().status, crate::engine::log::RunStatus::Running);
    assert!(matches!(store.finish_run(run + 1, crate::engine::log::RunStatus::Failed, None).await, Err(StoreError::NoSuchRun(_))));
}
}
