//! `cxflow migrate-log --to postgres://… [--from sqlite://…]`: the project's SQLite run log
//! copied into an empty PostgreSQL database (`store::migrate_log`).

use super::{exit, CliError, Project, Result};
use crate::scheduler::lock::{self, LockError};
use crate::store::{self, redact_url, MigrateLogError, SchedulerLock, Store};

pub struct MigrateLogArgs {
    /// The PostgreSQL run log to fill.
    pub to: String,
    /// The SQLite run log to copy; the project's `database_url` when None.
    pub from: Option<String>,
    /// Rows per batch.
    pub batch_size: usize,
}

/// `cxflow migrate-log`.
pub async fn migrate_log(project: &Project, args: MigrateLogArgs) -> Result<i32> {
    if !store::is_postgres(&args.to) {
        return Err(CliError::Invalid(format!(
            "`--to {}` is not a PostgreSQL URL; write it like `postgres://user@host/database` (an empty database: `createdb -O user database`)",
            redact_url(&args.to)
        )));
    }
    let from = match args.from {
        Some(f) => f,
        None => {
            let url = project.database_url();
            if store::is_postgres(&url) {
                return Err(CliError::Invalid(format!(
                    "the project's run log is already on PostgreSQL (`database_url: {}`); give the SQLite run log to copy with `--from sqlite://FILE`",
                    redact_url(&url)
                )));
            }
            url
        }
    };
    let Some(file) = super::sqlite_file(&from) else {
        return Err(CliError::Invalid(format!(
            "`--from {}` is not a SQLite file; migrate-log copies a SQLite run log (`sqlite://cxflow.sqlite`) into PostgreSQL",
            redact_url(&from)
        )));
    };
    // Named in full in what follows: `-C` and the project's folder make `./cxflow.sqlite` ambiguous.
    let file = std::path::absolute(&file).unwrap_or(file);
    if !file.is_file() {
        return Err(CliError::Invalid(format!(
            "there is no SQLite run log at `{}` (`--from`, or `database_url` in cxflow.yaml)",
            file.display()
        )));
    }
    // No scheduler may write either run log meanwhile: a `serve` on the file holds its lock (and
    // cannot start while we hold it), one on the database holds the database's.
    let _file_lock = lock::acquire(&file).map_err(|e| match e {
        LockError::Held { .. } => CliError::Invalid(format!("{e}; migrate-log copies a run log no scheduler writes")),
        LockError::Io { .. } => CliError::Other(e.into()),
    })?;
    let source = Store::open(&from).await?;
    let target = Store::open(&args.to).await?;
    let to = redact_url(&args.to);
    let _db_lock = match target.try_lock_scheduler().await? {
        Some(SchedulerLock::Busy(holder)) => {
            return Err(CliError::Invalid(format!(
                "a `cxflow serve` is running on `{to}` ({holder}); migrate-log fills an empty run log no scheduler uses: stop it first"
            )))
        }
        held => held,
    };
    let copied = store::migrate_log(&source, &target, args.batch_size).await.map_err(|e| match e {
        MigrateLogError::Refused(why) => CliError::Invalid(format!("cannot copy `{}` into `{to}`: {why}", file.display())),
        MigrateLogError::Store(e) => {
            CliError::Other(anyhow::anyhow!("cannot copy `{}` into `{to}`: {e}; nothing was copied", file.display()))
        }
    })?;
    outln!("copied the run log `{}` into `{to}`:", file.display());
    let width = copied.iter().map(|c| c.table.len()).max().unwrap_or(0);
    for c in &copied {
        outln!("  {:<width$}  {:>9}", c.table, c.rows);
    }
    outln!(
        "the SQLite file is left as it was; point the project at the copy with `database_url: {to}` in cxflow.yaml (or CXFLOW_DATABASE_URL)"
    );
    source.close().await;
    target.close().await;
    Ok(exit::OK)
}
