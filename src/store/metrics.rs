//! The figures `/metrics` reads from the run log at each scrape: a few aggregate queries, each
//! over the `runs` or `steps` table (one row per run, one per step run) or an index, never over
//! `items`, which can hold millions of rows. Read at scrape time, they are the same for every
//! process that opens the run log (`cxflow serve`, `cxflow ui`) and survive restarts.

use std::collections::HashMap;

use super::db::{on_db, Backend, Db};
use super::{now, Result, Store};

/// Runs in the run log of one workflow with one status.
#[derive(Debug, Clone, PartialEq)]
pub struct RunTally {
    pub workflow: String,
    pub status: String,
    pub count: u64,
    /// When the latest of them finished (RFC 3339), if any did.
    pub last_finished: Option<String>,
}

/// Durations of a workflow's finished runs, bucketed by the bounds the caller gave.
#[derive(Debug, Clone, PartialEq)]
pub struct DurationTally {
    pub workflow: String,
    pub count: u64,
    pub sum_seconds: f64,
    /// Runs per bucket (not cumulative): `buckets[i]` took at most `bounds[i]` seconds and more
    /// than `bounds[i - 1]`; the last entry is over the last bound.
    pub buckets: Vec<u64>,
}

/// Item counts of one step of one workflow, summed over the runs in the log. For a batch step
/// (no items) `ok` is the number of records it handled.
#[derive(Debug, Clone, PartialEq)]
pub struct StepTally {
    pub workflow: String,
    pub step_id: String,
    pub kind: String,
    /// From dry runs, which send and submit nothing.
    pub dry_run: bool,
    pub ok: u64,
    pub failed: u64,
    pub skipped: u64,
}

/// Delivery keys still `sending` for one step of one workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingTally {
    pub workflow: String,
    pub step_id: String,
    pub kind: String,
    /// Claimed by a process that is gone: the effect may or may not have happened.
    pub uncertain: u64,
    /// Claimed by a live process: being sent right now.
    pub in_flight: u64,
}

/// Skipped fires of one workflow for one kind of reason.
#[derive(Debug, Clone, PartialEq)]
pub struct SkipTally {
    pub workflow: String,
    pub reason: String,
    pub count: u64,
}

/// Everything `/metrics` takes from the run log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricFigures {
    pub runs: Vec<RunTally>,
    pub durations: Vec<DurationTally>,
    pub steps: Vec<StepTally>,
    pub pending: Vec<PendingTally>,
    pub skipped_fires: Vec<SkipTally>,
    /// SQLite: the database file's size, page count times page size (the WAL file not
    /// included). PostgreSQL: the database's size on the server (`pg_database_size`).
    pub bytes: u64,
}

/// The reasons a fire is skipped, as the scheduler words them (`schedule::state`,
/// `schedule::calendar`, `scheduler::catalog`, `scheduler::launch`), told apart by a fragment
/// of the text: the run log keeps only the sentence, and a label must come from a closed set.
/// First match wins; `tests::skip_reasons_are_classified` feeds it the real sentences.
pub const SKIP_REASONS: &[(&str, &[&str])] = &[
    ("invalid_file", &["workflow file % failed validation%"]),
    ("removed", &["the workflow was removed%", "the workflow is no longer loaded%"]),
    ("shutdown", &["the scheduler shut down before%"]),
    ("missed", &["%were missed while the scheduler was not running%"]),
    ("overlap", &["%(overlap: skip)%"]),
    ("business_days", &["%(business_days: true)%"]),
    ("holiday", &["% in calendar %"]),
];

/// The label of a reason none of [`SKIP_REASONS`] matches.
pub const SKIP_OTHER: &str = "other";

/// `like`: `LIKE` on SQLite, where it ignores ASCII case; `ILIKE` on PostgreSQL, which does the
/// same on its `"C"` text.
fn skip_reason_case(like: &str) -> String {
    let mut sql = String::from("CASE");
    for (label, patterns) in SKIP_REASONS {
        for p in *patterns {
            // Both are constants of this file, without quotes (nor the backslash PostgreSQL's
            // LIKE escapes with): nothing from outside is spliced in.
            sql.push_str(&format!(" WHEN error {like} '{p}' THEN '{label}'"));
        }
    }
    sql.push_str(&format!(" ELSE '{SKIP_OTHER}' END"));
    sql
}

#[derive(sqlx::FromRow)]
struct SendingRow {
    workflow: String,
    step_id: String,
    kind: Option<String>,
    owner: Option<String>,
    n: i64,
}

impl Store {
    /// The run log's figures for `/metrics`; `bounds` are the duration histogram's upper bounds
    /// in seconds, ascending.
    pub async fn metric_figures(&self, bounds: &[f64]) -> Result<MetricFigures> {
        Ok(MetricFigures {
            runs: self.run_tallies().await?,
            durations: self.duration_tallies(bounds).await?,
            steps: self.step_tallies().await?,
            pending: self.pending_tallies().await?,
            skipped_fires: self.skip_tallies().await?,
            bytes: self.size_bytes().await?,
        })
    }

    async fn run_tallies(&self) -> Result<Vec<RunTally>> {
        let rows: Vec<(String, String, i64, Option<String>)> = on_db!(&self.db, pool => sqlx::query_as(
            "SELECT workflow, status, count(*), max(finished_at) FROM runs GROUP BY workflow, status ORDER BY workflow, status",
        )
        .fetch_all(pool)
        .await)?;
        Ok(rows
            .into_iter()
            .map(|(workflow, status, n, last_finished)| RunTally { workflow, status, count: n as u64, last_finished })
            .collect())
    }

    /// Finished runs only (a skipped fire never ran). A resumed run counts from its first start.
    async fn duration_tallies(&self, bounds: &[f64]) -> Result<Vec<DurationTally>> {
        // Bucket `i` is the first bound at or above the duration. Only placeholders are spliced
        // in (as many as there are bounds); the bounds themselves are bound.
        let mut case = String::from("CASE");
        for i in 0..bounds.len() {
            case.push_str(&format!(" WHEN d <= ${} THEN {i}", i + 1));
        }
        case.push_str(&format!(" ELSE {} END", bounds.len()));
        let sql = match self.backend() {
            Backend::Sqlite => format!(
                "SELECT workflow, {case} AS b, count(*), total(d)
                 FROM (SELECT workflow, max(0.0, unixepoch(finished_at, 'subsec') - unixepoch(started_at, 'subsec')) AS d
                       FROM runs WHERE finished_at IS NOT NULL AND status NOT IN ('running', 'skipped'))
                 GROUP BY workflow, b ORDER BY workflow"
            ),
            // The times are RFC 3339 text, which `timestamptz` reads; `total` is a sum that is
            // 0.0 over no rows.
            Backend::Postgres => format!(
                "SELECT workflow, CAST({case} AS BIGINT) AS b, count(*), CAST(COALESCE(sum(d), 0) AS DOUBLE PRECISION)
                 FROM (SELECT workflow,
                              GREATEST(0.0, CAST(EXTRACT(EPOCH FROM CAST(finished_at AS timestamptz) - CAST(started_at AS timestamptz))
                                                 AS DOUBLE PRECISION)) AS d
                       FROM runs WHERE finished_at IS NOT NULL AND status NOT IN ('running', 'skipped')) t
                 GROUP BY workflow, b ORDER BY workflow"
            ),
        };
        let rows = on_db!(&self.db, pool => {
            let mut q = sqlx::query_as::<_, (String, i64, i64, f64)>(sqlx::AssertSqlSafe(sql));
            for b in bounds {
                q = q.bind(*b);
            }
            q.fetch_all(pool).await
        })?;
        let mut out: Vec<DurationTally> = Vec::new();
        for (workflow, b, n, sum) in rows {
            if out.last().is_none_or(|t| t.workflow != workflow) {
                out.push(DurationTally { workflow, count: 0, sum_seconds: 0.0, buckets: vec![0; bounds.len() + 1] });
            }
            let t = out.last_mut().expect("pushed above");
            t.count += n as u64;
            t.sum_seconds += sum;
            t.buckets[(b.max(0) as usize).min(bounds.len())] += n as u64;
        }
        Ok(out)
    }

    /// One pass over `steps` (a few rows per run), each joined to its run by primary key.
    async fn step_tallies(&self) -> Result<Vec<StepTally>> {
        // A sum of BIGINT is NUMERIC on PostgreSQL: cast back.
        let rows: Vec<(String, String, String, bool, i64, i64, i64)> = on_db!(&self.db, pool => sqlx::query_as(
            "SELECT r.workflow, s.step_id, s.kind, r.trigger = 'dry-run',
                    CAST(sum(s.ok) AS BIGINT), CAST(sum(s.failed) AS BIGINT), CAST(sum(s.skipped) AS BIGINT)
             FROM steps s JOIN runs r ON r.id = s.run_id
             GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
        )
        .fetch_all(pool)
        .await)?;
        Ok(rows
            .into_iter()
            .map(|(workflow, step_id, kind, dry_run, ok, failed, skipped)| StepTally {
                workflow,
                step_id,
                kind,
                dry_run,
                ok: ok.max(0) as u64,
                failed: failed.max(0) as u64,
                skipped: skipped.max(0) as u64,
            })
            .collect())
    }

    /// Keys still `sending`, found run by run through the `ledger_run (run_id, state)` index:
    /// the ledger has a row per delivery ever made and no index that starts with `state`
    /// (`CROSS JOIN` keeps SQLite from scanning the ledger instead).
    /// Keys of runs already pruned from the log are not seen. PostgreSQL's `CROSS JOIN` takes no
    /// `ON` (nor needs the hint), and sorts a missing step kind last unless told.
    async fn pending_tallies(&self) -> Result<Vec<PendingTally>> {
        let sql = self.db.sql(
            "SELECT l.workflow, l.step_id, s.kind, l.owner, count(*) AS n
             FROM runs r CROSS JOIN ledger l ON l.run_id = r.id AND l.state = 'sending'
             LEFT JOIN steps s ON s.run_id = l.run_id AND s.step_id = l.step_id
             GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3",
            "SELECT l.workflow, l.step_id, s.kind, l.owner, count(*) AS n
             FROM runs r JOIN ledger l ON l.run_id = r.id AND l.state = 'sending'
             LEFT JOIN steps s ON s.run_id = l.run_id AND s.step_id = l.step_id
             GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3 NULLS FIRST",
        );
        let rows: Vec<SendingRow> = on_db!(&self.db, pool => sqlx::query_as(sql).fetch_all(pool).await)?;
        let at = now();
        let mut alive: HashMap<String, bool> = HashMap::new();
        let mut out: Vec<PendingTally> = Vec::new();
        for SendingRow { workflow, step_id, kind, owner, n } in rows {
            let live = match owner {
                Some(o) => match alive.get(&o) {
                    Some(a) => *a,
                    None => {
                        let a = self.owner(&o).await?.is_some_and(|row| row.alive(&at));
                        alive.insert(o, a);
                        a
                    }
                },
                None => false,
            };
            let kind = kind.unwrap_or_default();
            if out.last().is_none_or(|t| (&t.workflow, &t.step_id, &t.kind) != (&workflow, &step_id, &kind)) {
                out.push(PendingTally { workflow, step_id, kind, uncertain: 0, in_flight: 0 });
            }
            let t = out.last_mut().expect("pushed above");
            if live {
                t.in_flight += n as u64;
            } else {
                t.uncertain += n as u64;
            }
        }
        Ok(out)
    }

    /// Skipped fires through the `runs_status` index.
    async fn skip_tallies(&self) -> Result<Vec<SkipTally>> {
        let like = self.db.sql("LIKE", "ILIKE");
        let sql = format!(
            "SELECT workflow, reason, count(*) FROM (SELECT workflow, {} AS reason FROM runs WHERE status = 'skipped') t
             GROUP BY 1, 2 ORDER BY 1, 2",
            skip_reason_case(like)
        );
        let rows: Vec<(String, String, i64)> = on_db!(&self.db, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(|(workflow, reason, n)| SkipTally { workflow, reason, count: n as u64 }).collect())
    }

    /// SQLite: the file's pages. PostgreSQL: the database's files on the server.
    async fn size_bytes(&self) -> Result<u64> {
        let bytes: i64 = match &self.db {
            Db::Sqlite(pool) => {
                let mut conn = pool.acquire().await?;
                let pages: i64 = sqlx::query_scalar("PRAGMA page_count").fetch_one(&mut *conn).await?;
                let size: i64 = sqlx::query_scalar("PRAGMA page_size").fetch_one(&mut *conn).await?;
                pages.max(0) * size.max(0)
            }
            Db::Pg(pool) => sqlx::query_scalar("SELECT pg_database_size(current_database())").fetch_one(pool).await?,
        };
        Ok(bytes.max(0) as u64)
    }
}

#[cfg(test)]
mod tests;
