use std::collections::BTreeSet;

use super::super::Store;

const SCOPE: &str = "wf/route";

async fn store(dir: &tempfile::TempDir) -> Store {
    Store::open(&format!("sqlite://{}", dir.path().join("r.db").display())).await.unwrap()
}

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

async fn view(store: &Store) -> Vec<(String, String, i64)> {
    sqlx::query_as("SELECT scope, record_id, run_id FROM route_routed ORDER BY scope, record_id").fetch_all(store.pool()).await.unwrap()
}

#[tokio::test]
async fn routed_ids_come_back_from_other_runs() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    assert_eq!(seen(&s, 1).await, None);
    route(&s, 1, &[&["FB-1", "FB-2"], &["q\"uote", "back\\slash é", "Ünïcødé"]]).await;
    assert_eq!(seen(&s, 2).await, set(&["FB-1", "FB-2", "q\"uote", "back\\slash é", "Ünïcødé"]));
    // A resumed run routes its own records again.
    assert_eq!(seen(&s, 1).await, None);
    assert_eq!(s.routed_ids("other/route", 2).await.unwrap(), None);
    assert_eq!(view(&s).await.len(), 5);
}

#[tokio::test]
async fn a_rerouted_id_belongs_to_its_latest_run() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
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

#[tokio::test]
async fn an_unfinished_writer_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    let (w, ids) = s.routing_writer(SCOPE, 1);
    tokio::task::spawn_blocking(move || assert!(ids.send_blocking(r#"["a"]"#.into()))).await.unwrap();
    drop(w);
    // The writer task may still hold the transaction for a moment; the next write waits for it.
    route(&s, 2, &[&["z"]]).await;
    assert_eq!(seen(&s, 3).await, set(&["z"]));
}

#[tokio::test]
async fn a_batch_that_is_not_an_id_array_fails_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
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
    let batches: i64 = sqlx::query_scalar("SELECT count(*) FROM route_routed_ids").fetch_one(s.pool()).await.unwrap();
    assert_eq!(batches, 5, "7,000 ids of run 1 in two batches, 5,000 of run 2 in one, two of run 3");
    let v = view(&s).await;
    assert_eq!(v.len(), 12_002);
    assert!(v.contains(&(SCOPE.to_string(), "FB-06999".into(), 1)) && v.contains(&(SCOPE.to_string(), "FB-07000".into(), 2)));
    // Routing after the upgrade goes on from there.
    route(&s, 4, &[&["FB-00001", "new"]]).await;
    assert_eq!(seen(&s, 4).await.unwrap().len(), 12_000);
    assert!(seen(&s, 1).await.unwrap().contains("new"));
}
