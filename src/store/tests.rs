use super::Store;

/// SQLite before 3.50.2 has CVE-2025-29087 (`concat_ws` overflow) and CVE-2025-6965 (memory
/// corruption with many aggregate terms). The library sqlx links is whichever `libsqlite3-sys`
/// Cargo resolved, so the version is checked where it matters: on the run log's own connection.
#[tokio::test]
async fn bundled_sqlite_is_patched() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("v.db").display())).await.unwrap();
    let v: String = sqlx::query_scalar("select sqlite_version()").fetch_one(store.pool()).await.unwrap();
    let parts: Vec<u32> = v.split('.').map(|p| p.parse().unwrap()).collect();
    assert!(parts.as_slice() >= [3, 50, 2].as_slice(), "the run log runs on SQLite {v}; 3.50.2 or later is needed");
}
