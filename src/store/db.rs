//! The two databases the run log can live in. Every query is written once, with `$1`-style
//! placeholders (sqlx binds them by number on both), and `on_db!` compiles it once per
//! database; where the two speak differently, `Db::sql` picks the text.

use sqlx::{PgPool, SqlitePool};

#[derive(Clone, Debug)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Pg(PgPool),
}

/// Which database a run log is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Db {
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Pg(_) => Backend::Postgres,
        }
    }

    /// The statement as this database spells it.
    pub(crate) fn sql(&self, sqlite: &'static str, pg: &'static str) -> &'static str {
        match self {
            Db::Sqlite(_) => sqlite,
            Db::Pg(_) => pg,
        }
    }

    pub(crate) async fn close(&self) {
        match self {
            Db::Sqlite(p) => p.close().await,
            Db::Pg(p) => p.close().await,
        }
    }
}

/// `on_db!(&self.db, pool => body)`: `body` once with `pool: &SqlitePool`, once with
/// `pool: &PgPool`. The body is the same tokens, type-checked for each database.
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::db::Db::Sqlite($pool) => $body,
            $crate::store::db::Db::Pg($pool) => $body,
        }
    };
}
pub(crate) use on_db;
