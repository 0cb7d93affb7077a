use super::db::Db;

/// SQLite before 3.50.2 has CVE-2025-29087 (`concat_ws` overflow) and CVE-2025-6965 (memory
/// corruption with many aggregate terms). The library sqlx links is whichever `libsqlite3-sys`
/// Cargo resolved, so the version is checked where it matters: on the run log's own connection.
#[tokio::test]
async fn bundled_sqlite_is_patched() {
    let fresh = super::testing::sqlite().await;
    let store = fresh.open().await;
    let Db::Sqlite(pool) = &store.db else { unreachable!() };
    let v: String = sqlx::query_scalar("select sqlite_version()").fetch_one(pool).await.unwrap();
    let parts: Vec<u32> = v.split('.').map(|p| p.parse().unwrap()).collect();
    assert!(parts.as_slice() >= [3, 50, 2].as_slice(), "the run log runs on SQLite {v}; 3.50.2 or later is needed");
}

/// The PostgreSQL the tests run on is one the run log supports: 13 or later (the oldest release
/// the test servers are looked for in, and what the schema and queries are checked against).
#[tokio::test]
async fn postgres_server_is_recent_enough() {
    let fresh = super::testing::postgres().await;
    let store = fresh.open().await;
    let Db::Pg(pool) = &store.db else { unreachable!() };
    let v: String = sqlx::query_scalar("SHOW server_version_num").fetch_one(pool).await.unwrap();
    let n: u32 = v.parse().unwrap();
    assert!(n >= 130_000, "the tests run on PostgreSQL {v}; 13 or later is needed");
}

#[test]
fn a_run_log_url_is_shown_without_its_password() {
    use super::redact_url;
    assert_eq!(redact_url("postgres://cx:s3cr%21t@db.internal:5432/runs"), "postgres://cx:***@db.internal:5432/runs");
    assert_eq!(
        redact_url("postgres://cx@db/runs?sslmode=require&password=s3cr3t&application_name=x"),
        "postgres://cx@db/runs?sslmode=require&password=***&application_name=x"
    );
    assert_eq!(redact_url("postgres://cx@db/runs?PASSWORD=s3cr3t"), "postgres://cx@db/runs?PASSWORD=***");
    assert_eq!(redact_url("postgres://cx@db/runs"), "postgres://cx@db/runs");
    assert_eq!(redact_url("sqlite://cxflow.sqlite"), "sqlite://cxflow.sqlite");
    // Not a URL the parser takes (a space in the host): nothing after the scheme is shown.
    assert_eq!(redact_url("postgres://cx:s3cr3t@db host/runs"), "postgres://…");
}
