//! `cxflow migrate-log`: a SQLite run log copied into an empty PostgreSQL one, every table of
//! `migrations/` with its ids kept, in one PostgreSQL transaction (all of it or nothing) read
//! from one SQLite snapshot. Each BIGSERIAL sequence then starts past the largest id copied, so
//! the next run gets the next number.

use sqlx::{Row, ValueRef};

use super::db::Db;
use super::{Store, StoreError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Int,
    Real,
    Text,
    /// A batch of routed ids: compressed in SQLite (or, stored before migration 0014, text),
    /// a JSON array as text in PostgreSQL.
    Ids,
}
use Ty::{Ids, Int, Real, Text};

struct Table {
    name: &'static str,
    cols: &'static [(&'static str, Ty)],
    /// Its BIGSERIAL column on PostgreSQL (`id`), whose sequence must start past the copied ids.
    serial: Option<&'static str>,
    /// A PostgreSQL column that keeps SQLite's implicit `rowid` (the dashboard's item order).
    rowid_to: Option<&'static str>,
}

/// Every table of the run log, parents before the tables whose foreign keys point at them.
/// A test checks this list against both schemas, and the copy refuses a SQLite run log with a
/// table or column it does not name (a newer cxflow's), instead of leaving it behind.
const TABLES: &[Table] = &[
    Table {
        name: "runs",
        cols: &[
            ("id", Int),
            ("workflow", Text),
            ("file", Text),
            ("trigger", Text),
            ("params", Text),
            ("scheduled_for", Text),
            ("started_at", Text),
            ("finished_at", Text),
            ("status", Text),
            ("error", Text),
            ("resumes", Int),
            ("pid", Int),
            ("owner", Text),
            ("spec_hash", Text),
        ],
        serial: Some("id"),
        rowid_to: None,
    },
    Table {
        name: "steps",
        cols: &[
            ("run_id", Int),
            ("step_id", Text),
            ("position", Int),
            ("kind", Text),
            ("status", Text),
            ("ok", Int),
            ("failed", Int),
            ("skipped", Int),
            ("started_at", Text),
            ("finished_at", Text),
            ("error", Text),
            ("output", Text),
        ],
        serial: None,
        rowid_to: None,
    },
    Table {
        name: "items",
        cols: &[
            ("run_id", Int),
            ("step_id", Text),
            ("item_key", Text),
            ("seq", Int),
            ("status", Text),
            ("attempts", Int),
            ("error", Text),
            ("output", Text),
            ("finished_at", Text),
        ],
        serial: Some("rowid"),
        rowid_to: Some("rowid"),
    },
    Table {
        name: "artifacts",
        cols: &[("id", Int), ("run_id", Int), ("step_id", Text), ("item_key", Text), ("kind", Text), ("path", Text), ("created_at", Text)],
        serial: Some("id"),
        rowid_to: None,
    },
    Table {
        name: "ledger",
        cols: &[
            ("key", Text),
            ("workflow", Text),
            ("run_id", Int),
            ("step_id", Text),
            ("item_key", Text),
            ("state", Text),
            ("detail", Text),
            ("updated_at", Text),
            ("owner", Text),
        ],
        serial: None,
        rowid_to: None,
    },
    Table {
        name: "route_routed_ids",
        cols: &[("id", Int), ("scope", Text), ("run_id", Int), ("ids", Ids)],
        serial: Some("id"),
        rowid_to: None,
    },
    Table {
        name: "route_digests",
        cols: &[
            ("run_id", Int),
            ("scope", Text),
            ("team", Text),
            ("count", Int),
            ("urgent", Int),
            ("rated", Int),
            ("avg_rating", Real),
            ("csat", Real),
            ("created_at", Text),
        ],
        serial: None,
        rowid_to: None,
    },
    Table {
        name: "owners",
        cols: &[
            ("id", Text),
            ("host", Text),
            ("boot", Text),
            ("pid", Int),
            ("proc_start", Int),
            ("started_at", Text),
            ("heartbeat_at", Text),
            ("expires_at", Text),
        ],
        serial: None,
        rowid_to: None,
    },
    Table {
        name: "resolutions",
        cols: &[
            ("id", Int),
            ("key", Text),
            ("run_id", Int),
            ("step_id", Text),
            ("item_key", Text),
            ("decision", Text),
            ("decided_by", Text),
            ("decided_at", Text),
        ],
        serial: Some("id"),
        rowid_to: None,
    },
    Table {
        name: "actions",
        cols: &[
            ("id", Int),
            ("at", Text),
            ("actor", Text),
            ("role", Text),
            ("action", Text),
            ("workflow", Text),
            ("run_id", Int),
            ("detail", Text),
            ("outcome", Text),
        ],
        serial: Some("id"),
        rowid_to: None,
    },
    Table {
        name: "schedule_pauses",
        cols: &[("workflow", Text), ("paused_by", Text), ("paused_at", Text), ("reason", Text)],
        serial: None,
        rowid_to: None,
    },
    Table { name: "run_cancels", cols: &[("run_id", Int), ("requested_by", Text), ("requested_at", Text)], serial: None, rowid_to: None },
    Table {
        name: "web_sessions",
        cols: &[
            ("id_hash", Text),
            ("user_name", Text),
            ("csrf_token", Text),
            ("created_at", Text),
            ("last_seen", Text),
            ("expires_at", Text),
        ],
        serial: None,
        rowid_to: None,
    },
];

/// Why a copy did not happen. Nothing was written to the target in either case.
#[derive(Debug, thiserror::Error)]
pub enum MigrateLogError {
    /// Something the user has to settle first (a non-empty target, a run still running).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for MigrateLogError {
    fn from(e: sqlx::Error) -> Self {
        MigrateLogError::Store(StoreError::Query(e))
    }
}

/// Rows copied into one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopied {
    pub table: &'static str,
    pub rows: u64,
}

/// One column of a batch, as PostgreSQL takes it: an array per column, unnested into rows.
enum Column {
    Int(Vec<Option<i64>>),
    Real(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
}

/// Copies the SQLite run log `from` into the PostgreSQL run log `to`, which must be empty,
/// `batch` rows at a time, and returns the rows per table. Refused while a run of `from` is
/// still running (its owner alive): its rows would go on changing in the old run log. Runs whose
/// owner is gone are marked `interrupted` first, as every command does.
pub async fn migrate_log(from: &Store, to: &Store, batch: usize) -> Result<Vec<TableCopied>, MigrateLogError> {
    let Db::Sqlite(src) = &from.db else {
        return Err(MigrateLogError::Refused("the run log to copy from must be a SQLite file (`sqlite://…`)".into()));
    };
    let Db::Pg(dst) = &to.db else {
        return Err(MigrateLogError::Refused("the run log to copy into must be a PostgreSQL database (`postgres://…`)".into()));
    };
    let batch = batch.max(1);
    from.interrupt_orphans().await?;

    // One read transaction: every table as of one moment, whatever writes the file meanwhile.
    let mut s = src.begin().await?;
    check_schema(&mut s).await?;
    let running: Vec<(i64, String, Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT r.id, r.workflow, r.pid, o.host FROM runs r LEFT JOIN owners o ON o.id = r.owner
         WHERE r.status = 'running' ORDER BY r.id",
    )
    .fetch_all(&mut *s)
    .await?;
    if !running.is_empty() {
        let list: Vec<String> = running
            .iter()
            .take(5)
            .map(|(id, w, pid, host)| match (pid, host) {
                (Some(pid), Some(host)) => format!("run {id} of `{w}` (process {pid} on {host})"),
                (Some(pid), None) => format!("run {id} of `{w}` (process {pid})"),
                _ => format!("run {id} of `{w}`"),
            })
            .collect();
        let more = if running.len() > 5 { format!(" and {} more", running.len() - 5) } else { String::new() };
        return Err(MigrateLogError::Refused(format!(
            "{}{more} {} still running; wait until {} or stop {} (`cxflow cancel RUN_ID`), then copy the run log again",
            list.join(", "),
            if running.len() == 1 { "is" } else { "are" },
            if running.len() == 1 { "it ends" } else { "they end" },
            if running.len() == 1 { "it" } else { "them" },
        )));
    }

    let mut t = dst.begin().await?;
    // Nothing else writes the target while it is checked and filled; readers still read.
    let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
    sqlx::query(sqlx::AssertSqlSafe(format!("LOCK TABLE {} IN EXCLUSIVE MODE", names.join(", ")))).execute(&mut *t).await?;
    let mut filled = Vec::new();
    for table in TABLES {
        let any: bool =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT EXISTS (SELECT 1 FROM {})", table.name))).fetch_one(&mut *t).await?;
        if any {
            filled.push(table.name);
        }
    }
    if !filled.is_empty() {
        return Err(MigrateLogError::Refused(format!(
            "the PostgreSQL run log is not empty (it has rows in {}); copy into a new, empty database",
            filled.join(", ")
        )));
    }

    let mut copied = Vec::new();
    for table in TABLES {
        let rows = copy_table(&mut s, &mut t, table, batch).await?;
        let want: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {}", table.name))).fetch_one(&mut *s).await?;
        let got: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {}", table.name))).fetch_one(&mut *t).await?;
        if want != got || got as u64 != rows {
            return Err(MigrateLogError::Store(StoreError::Batch(format!(
                "table `{}`: {want} rows in the SQLite run log, {got} in PostgreSQL after copying {rows}; nothing was kept",
                table.name
            ))));
        }
        if let Some(col) = table.serial {
            // The next id is past every copied one (1 on an empty table).
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT setval(pg_get_serial_sequence('{0}', '{1}'), COALESCE(max({1}), 0) + 1, false) FROM {0}",
                table.name, col
            )))
            .execute(&mut *t)
            .await?;
        }
        copied.push(TableCopied { table: table.name, rows });
    }
    t.commit().await?;
    s.rollback().await?;
    Ok(copied)
}

/// The SQLite run log has exactly the tables and columns `TABLES` names.
async fn check_schema(s: &mut sqlx::SqliteConnection) -> Result<(), MigrateLogError> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut *s)
    .await?;
    let mut unknown: Vec<String> = tables.iter().filter(|n| !TABLES.iter().any(|t| t.name == n.as_str())).cloned().collect();
    for table in TABLES {
        let cols: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info($1)").bind(table.name).fetch_all(&mut *s).await?;
        if cols.is_empty() {
            return Err(MigrateLogError::Refused(format!(
                "the SQLite run log has no table `{}`: it is not a cxflow run log, or an older one no command has opened since",
                table.name
            )));
        }
        unknown.extend(cols.iter().filter(|c| !table.cols.iter().any(|(n, _)| n == c)).map(|c| format!("{}.{c}", table.name)));
    }
    if !unknown.is_empty() {
        return Err(MigrateLogError::Refused(format!(
            "the SQLite run log has tables or columns this cxflow does not know ({}): it was written by a newer cxflow; copy it with that version",
            unknown.join(", ")
        )));
    }
    Ok(())
}

/// Copies one table in batches of `batch` rows, in rowid order; returns the rows copied.
async fn copy_table(
    s: &mut sqlx::SqliteConnection,
    t: &mut sqlx::PgConnection,
    table: &Table,
    batch: usize,
) -> Result<u64, MigrateLogError> {
    let names: Vec<&str> = table.cols.iter().map(|(n, _)| *n).collect();
    let select = format!("SELECT rowid, {} FROM {} WHERE rowid > $1 ORDER BY rowid LIMIT $2", names.join(", "), table.name);
    let mut arrays: Vec<String> = table
        .cols
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| {
            let pg = match ty {
                Int => "BIGINT[]",
                Real => "DOUBLE PRECISION[]",
                Text | Ids => "TEXT[]",
            };
            format!("${}::{pg}", i + 1)
        })
        .collect();
    let mut targets = names.clone();
    if let Some(col) = table.rowid_to {
        targets.push(col);
        arrays.push(format!("${}::BIGINT[]", names.len() + 1));
    }
    let insert = format!("INSERT INTO {} ({}) SELECT * FROM UNNEST({})", table.name, targets.join(", "), arrays.join(", "));
    let mut after = i64::MIN;
    let mut total = 0u64;
    loop {
        let rows = sqlx::query(sqlx::AssertSqlSafe(select.clone())).bind(after).bind(batch as i64).fetch_all(&mut *s).await?;
        let Some(last) = rows.last() else { break };
        after = last.try_get(0)?;
        let mut columns: Vec<Column> = table
            .cols
            .iter()
            .map(|(_, ty)| match ty {
                Int => Column::Int(Vec::with_capacity(rows.len())),
                Real => Column::Real(Vec::with_capacity(rows.len())),
                Text | Ids => Column::Text(Vec::with_capacity(rows.len())),
            })
            .collect();
        for row in &rows {
            for (i, col) in columns.iter_mut().enumerate() {
                let at = i + 1;
                let null = row.try_get_raw(at).map(|v| v.is_null()).unwrap_or(false);
                let bad = |e: sqlx::Error| {
                    let rowid: i64 = row.try_get(0).unwrap_or_default();
                    MigrateLogError::Refused(format!("table `{}`, column `{}`, rowid {rowid}: {e}", table.name, table.cols[i].0))
                };
                match col {
                    Column::Int(v) => v.push(if null { None } else { Some(row.try_get::<i64, _>(at).map_err(bad)?) }),
                    Column::Real(v) => v.push(if null { None } else { Some(row.try_get::<f64, _>(at).map_err(bad)?) }),
                    Column::Text(v) if table.cols[i].1 == Ids && !null => {
                        let stored = row.try_get::<Vec<u8>, _>(at).map_err(bad)?;
                        v.push(Some(super::digests::unpack(stored).map_err(|why| bad(sqlx::Error::Decode(why.into())))?));
                    }
                    Column::Text(v) => v.push(if null { None } else { Some(row.try_get::<String, _>(at).map_err(bad)?) }),
                }
            }
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(insert.clone()));
        for col in columns {
            q = match col {
                Column::Int(v) => q.bind(v),
                Column::Real(v) => q.bind(v),
                Column::Text(v) => q.bind(v),
            };
        }
        if table.rowid_to.is_some() {
            let rowids: Vec<i64> = rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?;
            q = q.bind(rowids);
        }
        let done = q.execute(&mut *t).await.map_err(|e| {
            MigrateLogError::Store(StoreError::Batch(format!("copying table `{}` (rows after rowid {after}): {e}", table.name)))
        })?;
        total += done.rows_affected();
        if rows.len() < batch {
            break;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;
    use crate::store::{NewRun, RunStatus, TriggerKind};

    /// `TABLES` names every table and column of both schemas, with PostgreSQL types that match.
    #[tokio::test]
    async fn the_table_list_is_both_schemas() {
        let fresh = testing::sqlite().await;
        let lite = fresh.open().await;
        let Db::Sqlite(p) = &lite.db else { unreachable!() };
        let mut c = p.acquire().await.unwrap();
        check_schema(&mut c).await.unwrap();
        drop(c);

        let pg = testing::postgres().await.open().await;
        let Db::Pg(p) = &pg.db else { unreachable!() };
        // The work queue of items spread over nodes (`work.rs`) is PostgreSQL's own, and a
        // SQLite run log never has anything in it to copy.
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name IN (SELECT table_name FROM information_schema.tables
                 WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name != '_sqlx_migrations'
                   AND table_name NOT IN ('work_steps', 'work_items'))
             ORDER BY table_name, column_name",
        )
        .fetch_all(p)
        .await
        .unwrap();
        let mut want: Vec<(String, String, String)> = TABLES
            .iter()
            .flat_map(|t| {
                t.cols
                    .iter()
                    .map(|(c, ty)| {
                        let pg = match ty {
                            Int => "bigint",
                            Real => "double precision",
                            Text | Ids => "text",
                        };
                        (t.name.to_string(), c.to_string(), pg.to_string())
                    })
                    .chain(t.rowid_to.map(|c| (t.name.to_string(), c.to_string(), "bigint".to_string())))
            })
            .collect();
        want.sort();
        assert_eq!(rows, want);
        for t in TABLES {
            for col in ["id", "rowid"] {
                let serial: Option<String> =
                    sqlx::query_scalar("SELECT pg_get_serial_sequence($1, $2)").bind(t.name).bind(col).fetch_one(p).await.unwrap_or(None);
                assert_eq!(serial.is_some(), t.serial == Some(col), "{}.{col}", t.name);
            }
        }
    }

    /// (id, workflow, status) of the runs in a PostgreSQL run log, read directly.
    async fn pg_runs(s: &Store) -> Vec<(i64, String, String)> {
        let Db::Pg(p) = &s.db else { unreachable!() };
        sqlx::query_as("SELECT id, workflow, status FROM runs ORDER BY id").fetch_all(p).await.unwrap()
    }

    async fn seeded() -> (testing::Fresh, Store) {
        let fresh = testing::sqlite().await;
        let s = fresh.open().await;
        let p = serde_json::json!({"batch": "weekly"});
        for i in 0..3 {
            let id = s
                .start_run(NewRun { workflow: "w", file: "w.yaml", trigger: TriggerKind::Manual, params: &p, scheduled_for: None })
                .await
                .unwrap();
            s.finish_run(id, if i == 1 { RunStatus::Partial } else { RunStatus::Succeeded }, None).await.unwrap();
        }
        (fresh, s)
    }

    #[tokio::test]
    async fn copies_keep_ids_and_the_next_id_follows() {
        let (_f, from) = seeded().await;
        let to = testing::postgres().await.open().await;
        let copied = migrate_log(&from, &to, 2).await.unwrap();
        assert_eq!(copied.iter().map(|c| c.table).collect::<Vec<_>>(), TABLES.iter().map(|t| t.name).collect::<Vec<_>>());
        assert_eq!(copied.iter().find(|c| c.table == "runs").unwrap().rows, 3);
        assert_eq!(copied.iter().find(|c| c.table == "owners").unwrap().rows, 1);
        let runs: Vec<(i64, String)> = pg_runs(&to).await.into_iter().map(|(id, _, status)| (id, status)).collect();
        assert_eq!(runs, [(1, "succeeded".into()), (2, "partial".into()), (3, "succeeded".into())]);
        let p = serde_json::json!({});
        let next =
            to.start_run(NewRun { workflow: "w", file: "w.yaml", trigger: TriggerKind::Manual, params: &p, scheduled_for: None }).await;
        assert_eq!(next.unwrap(), 4);
    }

    #[tokio::test]
    async fn a_target_with_rows_is_refused_and_left_as_it_was() {
        let (_f, from) = seeded().await;
        let to = testing::postgres().await.open().await;
        let p = serde_json::json!({});
        to.start_run(NewRun { workflow: "other", file: "o.yaml", trigger: TriggerKind::Manual, params: &p, scheduled_for: None })
            .await
            .unwrap();
        let e = migrate_log(&from, &to, 100).await.unwrap_err();
        assert!(matches!(&e, MigrateLogError::Refused(m) if m.contains("not empty (it has rows in runs, owners)")), "{e}");
        assert_eq!(pg_runs(&to).await, [(1, "other".into(), "running".into())]);
    }

    #[tokio::test]
    async fn a_run_still_running_is_refused() {
        let (_f, from) = seeded().await;
        let p = serde_json::json!({});
        let id = from
            .start_run(NewRun { workflow: "live", file: "l.yaml", trigger: TriggerKind::Manual, params: &p, scheduled_for: None })
            .await
            .unwrap();
        let to = testing::postgres().await.open().await;
        let e = migrate_log(&from, &to, 100).await.unwrap_err().to_string();
        assert!(e.starts_with(&format!("run {id} of `live` (process {} on ", std::process::id())), "{e}");
        assert!(
            e.ends_with("is still running; wait until it ends or stop it (`cxflow cancel RUN_ID`), then copy the run log again"),
            "{e}"
        );
        assert!(pg_runs(&to).await.is_empty());
        // Once it has ended, the copy goes through.
        from.finish_run(id, RunStatus::Succeeded, None).await.unwrap();
        migrate_log(&from, &to, 100).await.unwrap();
        assert_eq!(pg_runs(&to).await.len(), 4);
    }

    #[tokio::test]
    async fn only_sqlite_into_postgres() {
        let (_f, from) = seeded().await;
        let fresh = testing::sqlite().await;
        let other = fresh.open().await;
        let e = migrate_log(&from, &other, 10).await.unwrap_err().to_string();
        assert_eq!(e, "the run log to copy into must be a PostgreSQL database (`postgres://…`)");
        let pg = testing::postgres().await.open().await;
        let e = migrate_log(&pg, &pg, 10).await.unwrap_err().to_string();
        assert_eq!(e, "the run log to copy from must be a SQLite file (`sqlite://…`)");
    }
}
