//! Fresh run logs for the store's tests, in SQLite and in PostgreSQL, so that each test runs
//! against both (`store_test!`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use sqlx::Connection;

use super::Store;

#[path = "../../tests/support/postgres.rs"]
mod server;

/// One PostgreSQL server for the whole test binary, a database per test. No test here cuts the
/// power, so the server does not sync.
fn server() -> &'static server::Postgres {
    static PG: OnceLock<server::Postgres> = OnceLock::new();
    PG.get_or_init(|| server::Postgres::start_with("-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"))
}

/// A run log no one has opened yet.
pub(crate) struct Fresh {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Fresh {
    pub(crate) async fn open(&self) -> Store {
        Store::open(&self.url).await.unwrap_or_else(|e| panic!("open {}: {e}", self.url))
    }
}

pub(crate) async fn sqlite() -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    Fresh { url: format!("sqlite://{}", dir.path().join("runs.db").display()), _dir: Some(dir) }
}

pub(crate) async fn postgres() -> Fresh {
    static N: AtomicUsize = AtomicUsize::new(0);
    let pg = tokio::task::spawn_blocking(server).await.unwrap();
    let name = format!("t{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let mut admin = sqlx::PgConnection::connect(&pg.url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
    admin.close().await.unwrap();
    Fresh { url: format!("postgres://cx@127.0.0.1:{}/{name}", pg.port), _dir: None }
}

/// `store_test! { #[tokio::test] async fn name(fresh) { ... } }` defines `name::sqlite` and
/// `name::postgres`, each given its own fresh run log as `fresh` (a `Fresh`).
macro_rules! store_test {
    ($(#[$attr:meta])+ async fn $name:ident($fresh:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(#[$attr])+
            async fn sqlite() {
                let $fresh = $crate::store::testing::sqlite().await;
                $body
            }
            $(#[$attr])+
            async fn postgres() {
                let $fresh = $crate::store::testing::postgres().await;
                $body
            }
        }
    };
}
pub(crate) use store_test;

/// A manual run of workflow `w` (file `w.yaml`, no parameters), as the store's tests start one.
pub(crate) async fn manual_run(store: &Store) -> i64 {
    let p = serde_json::json!({});
    let new = crate::engine::log::NewRun {
        workflow: "w",
        file: "w.yaml",
        trigger: crate::engine::log::TriggerKind::Manual,
        params: &p,
        scheduled_for: None,
    };
    store.start_run(new).await.unwrap()
}
