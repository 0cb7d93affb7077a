use std::collections::BTreeSet;

use super::super::db::on_db;
use super::super::{Backend, Store};
use crate::store::testing::store_test;

const SCOPE: &str = "wf/route";

async fn route(store: &Store, run_id: i64, batches: &[&[&str]]) {
    let (w, ids) = store.routing_writer(SCOPE, run_id);
    let batches: Vec<String> = batches.iter().map(|b| serde_json::to_string(b).unwrap()).collect();
    // The sender blocks: routing threads call it, never async code.
    tokio::task::spawn_blocking(move || batches.into_iter().for_each(|b| assert!(ids.send_blocking(b)))).await.unwrap();
    w.finish(Vec::new()).await.unwrap();
}

async fn seen(store: &Store, run_id: i64) -> Option<BTreeSet<String>> {
    let joined = store.routed_ids(SCOPE, run_id).await.unwrap()?;
    assert!(joined.is_empty() || joined.ends_with('\n'), "{joined:?}");
    Some(joined.lines().map(str::to_string).collect())
}

fn set(ids: &[&str]) -> Option<BTreeSet<String>> {
    Some(ids.iter().map(|s| s.to_string()).collect())
}

/// Every routed id with its owning run, per scope, as `cxflow routed` lists them; on
/// PostgreSQL the view `route_routed` must say the same.
async fn view(store: &Store) -> Vec<(String, String, i64)> {
    let mut all = Vec::new();
    for scope in [SCOPE, "other/route"] {
        all.extend(store.routed_owners(scope).await.unwrap().into_iter().map(|(id, run)| (scope.to_string(), id, run)));
    }
    all.sort();
    if store.backend() == Backend::Postgres {
        let rows: Vec<(String, String, i64)> =
            on_db!(&store.db, pool => sqlx::query_as("SELECT scope, record_id, run_id FROM route_routed ORDER BY scope, record_id")
                .fetch_all(pool)
                .await)
            .unwrap();
        assert_eq!(rows, all, "the view");
    }
    all
}

store_test! {
#[tokio::test]
async fn routed_ids_come_back_from_other_runs(fresh) {
    let s = fresh.open().await;
    assert_eq!(seen(&s, 1).await, None);
    route(&s, 1, &[&["FB-1", "FB-2"], &["q\"uote", "back\\slash é", "Ünïcødé"]]).await;
    assert_eq!(seen(&s, 2).await, set(&["FB-1", "FB-2", "q\"uote", "back\\slash é", "Ünïcødé"]));
    // A resumed run routes its own records again.
    assert_eq!(seen(&s, 1).await, None);
    assert_eq!(s.routed_ids("other/route", 2).await.unwrap(), None);
    assert_eq!(view(&s).await.len(), 5);
}
}

store_test! {
#[tokio::test]
async fn a_rerouted_id_belongs_to_its_latest_run(fresh) {
    let s = fresh.open().await;
    route(&s, 1, &[&["a", "b"]]).await;
    // Run 2 reroutes `b` (and routes `c`, twice in one input).
    route(&s, 2, &[&["b", "c"], &["c"]]).await;
    assert_eq!(seen(&s, 3).await, set(&["a", "b", "c"]));
    assert_eq!(seen(&s, 2).await, set(&["a"]));
    assert_eq!(seen(&s, 1).await, set(&["b", "c"]));
    let w = |id: &str, run| (SCOPE.to_string(), id.to_string(), run);
    assert_eq!(view(&s).await, vec![w("a", 1), w("b", 2), w("c", 2)]);
    // Run 1 rerouting `b` again takes it back.
    route(&s, 1, &[&["b"]]).await;
    assert_eq!(seen(&s, 1).await, set(&["c"]));
    assert_eq!(seen(&s, 2).await, set(&["a", "b"]));
}
}

store_test! {
#[tokio::test]
async fn an_unfinished_writer_stores_nothing(fresh) {
    let s = fresh.open().await;
    let (w, ids) = s.routing_writer(SCOPE, 1);
    tokio::task::spawn_blocking(move || assert!(ids.send_blocking(r#"["a"]"#.into()))).await.unwrap();
    drop(w);
    // The writer task may still hold the transaction for a moment; the next write waits for it.
    route(&s, 2, &[&["z"]]).await;
    assert_eq!(seen(&s, 3).await, set(&["z"]));
}
}

store_test! {
#[tokio::test]
async fn a_batch_that_is_not_an_id_array_fails_the_writer(fresh) {
    let s = fresh.open().await;
    let (w, ids) = s.routing_writer(SCOPE, 1);
    tokio::task::spawn_blocking(move || {
        ids.send_blocking(r#"["a", 1]"#.into());
    })
    .await
    .unwrap();
    let e = w.finish(Vec::new()).await.unwrap_err().to_string();
    assert!(e.contains("not a JSON array of strings"), "{e}");
    assert_eq!(seen(&s, 2).await, None);
}
}

/// A run log from before migration 0012 (one row per id) is upgraded in place: every id stays
/// routed, with its run.
#[tokio::test]
async fn upgrade_keeps_what_was_routed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let mut m = sqlx::migrate!("./migrations");
        m.migrations = m.migrations.iter().filter(|m| m.version < 12).cloned().collect::<Vec<_>>().into();
        m.run(&pool).await.unwrap();
        let mut tx = pool.begin().await.unwrap();
        for i in 0..12_000 {
            sqlx::query("INSERT INTO route_routed (scope, record_id, run_id) VALUES (?, ?, ?)")
                .bind(SCOPE)
                .bind(format!("FB-{i:05}"))
                .bind(if i < 7_000 { 1 } else { 2 })
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        for (scope, id) in [("other/route", "é\"x"), (SCOPE, "Ünïcødé")] {
            sqlx::query("INSERT INTO route_routed (scope, record_id, run_id) VALUES (?, ?, 3)")
                .bind(scope)
                .bind(id)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        pool.close().await;
    }
    let s = Store::open(&url).await.unwrap();
    let all: BTreeSet<String> = (0..12_000).map(|i| format!("FB-{i:05}")).chain(["Ünïcødé".to_string()]).collect();
    assert_eq!(seen(&s, 9).await, Some(all.clone()));
    let not_run_2: BTreeSet<String> = all.iter().filter(|id| id.as_str() < "FB-07000" || id.starts_with('Ü')).cloned().collect();
    assert_eq!(seen(&s, 2).await, Some(not_run_2));
    assert_eq!(s.routed_ids("other/route", 9).await.unwrap(), Some("é\"x\n".into()));
    let batches: i64 = on_db!(&s.db, pool => sqlx::query_scalar("SELECT count(*) FROM route_routed_ids").fetch_one(pool).await).unwrap();
    assert_eq!(batches, 5, "7,000 ids of run 1 in two batches, 5,000 of run 2 in one, two of run 3");
    let v = view(&s).await;
    assert_eq!(v.len(), 12_002);
    assert!(v.contains(&(SCOPE.to_string(), "FB-06999".into(), 1)) && v.contains(&(SCOPE.to_string(), "FB-07000".into(), 2)));
    // Routing after the upgrade goes on from there; the new batch is stored compressed (0014),
    // the old ones stay as they were, and both read back.
    route(&s, 4, &[&["FB-00001", "new"]]).await;
    assert_eq!(seen(&s, 4).await.unwrap().len(), 12_000);
    assert!(seen(&s, 1).await.unwrap().contains("new"));
    let kinds: Vec<String> =
        on_db!(&s.db, pool => sqlx::query_scalar("SELECT typeof(ids) FROM route_routed_ids ORDER BY id").fetch_all(pool).await).unwrap();
    assert_eq!(kinds, ["text", "text", "text", "text", "text", "blob"]);
    assert_eq!(view(&s).await.iter().filter(|(_, id, run)| id == "FB-00001" && *run == 4).count(), 1);
}

/// On PostgreSQL two runs of one step can route at the same time (on SQLite the second waits for
/// the first's write lock). The run that commits last owns the ids both routed, even when its
/// batch was inserted first.
#[tokio::test]
async fn on_postgres_the_run_that_commits_last_owns_what_both_routed() {
    let fresh = crate::store::testing::postgres().await;
    let s = fresh.open().await;
    let (first, ids) = s.routing_writer(SCOPE, 1);
    tokio::task::spawn_blocking(move || assert!(ids.send_blocking(r#"["x", "a"]"#.into()))).await.unwrap();
    // Wait for run 1's batch to be inserted: a sequence moves outside transactions.
    let started = std::time::Instant::now();
    loop {
        let used: bool =
            on_db!(&s.db, pool => sqlx::query_scalar("SELECT is_called FROM route_routed_ids_id_seq").fetch_one(pool).await).unwrap();
        if used {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "run 1's batch was never inserted");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Run 2 routes `x` too, with a later batch, and commits first.
    route(&s, 2, &[&["x", "b"]]).await;
    assert_eq!(seen(&s, 3).await, set(&["x", "b"]));
    first.finish(Vec::new()).await.unwrap();
    let w = |id: &str, run| (SCOPE.to_string(), id.to_string(), run);
    assert_eq!(view(&s).await, vec![w("a", 1), w("b", 2), w("x", 1)]);
    assert_eq!(seen(&s, 1).await, set(&["b"]));
    assert_eq!(seen(&s, 2).await, set(&["a", "x"]));
}

store_test! {
#[tokio::test]
async fn a_damaged_batch_is_named_with_what_to_do(fresh) {
    let s = fresh.open().await;
    route(&s, 1, &[&["a"]]).await;
    // (PostgreSQL numbers the writer's batches again at its commit, so the id is read back.)
    let id: i64 = on_db!(&s.db, pool => sqlx::query_scalar("INSERT INTO route_routed_ids (scope, run_id, ids) VALUES ($1, 1, '[\"b\", 2]') RETURNING id")
        .bind(SCOPE)
        .fetch_one(pool)
        .await)
    .unwrap();
    let e = s.routed_ids(SCOPE, 2).await.unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "batch {id} of the ids routed by `wf/route` is not a JSON array of strings (invalid type: integer `2`, expected a string at \
             line 1 column 7): the run log is damaged there. Delete that batch (`DELETE FROM route_routed_ids WHERE id = {id}`) to go \
             on; its records then count as not routed, and the next run routes them again"
        )
    );
    if s.backend() == Backend::Sqlite {
        // zstd's frame magic and then nothing a frame can be.
        on_db!(&s.db, pool => sqlx::query("UPDATE route_routed_ids SET ids = X'28B52FFD00FF' WHERE id = $1").bind(id).execute(pool).await.map(drop))
            .unwrap();
        let e = s.routed_owners(SCOPE).await.unwrap_err().to_string();
        assert!(e.starts_with(&format!("batch {id} of the ids routed by `wf/route` cannot be decompressed (")), "{e}");
        assert!(e.ends_with("the next run routes them again"), "{e}");
    }
}
}
