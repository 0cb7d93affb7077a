//! The items table of a run page and each step's counts.

use serde::Serialize;
use sqlx::{Database, FromRow, QueryBuilder};

use super::{page_limit, ItemCursor, Page, PushBind};
use crate::store::db::{on_db, Backend, Db};
use crate::store::{ItemStatus, Result, StepStatus, Store};

/// Filters of a run's items; every one that is set must hold.
#[derive(Debug, Clone, Default)]
pub struct ItemsQuery {
    /// One step's items (its id).
    pub step: Option<String>,
    pub status: Option<ItemStatus>,
    /// Items whose key starts with this text, exactly (case and every character count; `%`,
    /// `_` and quotes are plain characters). Read as an index range, so the rows come in key
    /// order within each step instead of `seq` order. Empty: no filter.
    pub q: Option<String>,
    /// Keyset: the previous page's `next`.
    pub after: Option<ItemCursor>,
    /// Rows per page: `DEFAULT_LIMIT` when 0 or less, at most `MAX_LIMIT`.
    pub limit: i64,
}

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ItemRowWithSeq {
    pub step_id: String,
    pub item_key: String,
    /// Position in the step's input.
    pub seq: i64,
    pub status: ItemStatus,
    pub attempts: i64,
    pub error: Option<String>,
    /// JSON.
    pub output: Option<String>,
    pub finished_at: String,
    #[serde(skip)]
    position: i64,
    #[serde(skip)]
    row: i64,
}

impl ItemRowWithSeq {
    fn cursor(&self) -> ItemCursor {
        ItemCursor { position: self.position, seq: self.seq, row: self.row }
    }
}

/// A step's item counts. Finished steps give the figures `finish_step` stored; a step still
/// running (`live`) has them counted from its items now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepCounts {
    pub step_id: String,
    pub position: i64,
    pub kind: String,
    pub status: StepStatus,
    pub ok: i64,
    pub failed: i64,
    pub skipped: i64,
    pub live: bool,
}

// `rowid`: SQLite's row id; on PostgreSQL a column of that name numbers the rows the same way
// (in the order they were first written, kept by an upsert).
const ITEM_COLUMNS: &str = " AS position, rowid AS row, step_id, item_key, seq, status, attempts, error, output, finished_at";

pub(super) const CURSOR_KEY_PG: &str = "SELECT item_key FROM items WHERE rowid = $1 AND run_id = $2 AND step_id = $3
       AND status IN ('ok', 'failed', 'skipped') AND seq = $4";
pub(super) const STEP_COUNTS: &str = "SELECT status, count(*) FROM items WHERE run_id = $1 AND step_id = $2 GROUP BY status";

impl Store {
    /// A page of a run's items in step order, then `seq` (key order with `q`). Each step is one
    /// range of `items_step_status_seq` (or, with `q`, of the primary key), read until the page
    /// is full.
    pub async fn items_page(&self, run_id: i64, q: &ItemsQuery) -> Result<Page<ItemRowWithSeq, ItemCursor>> {
        let limit = page_limit(q.limit);
        let prefix = q.q.as_deref().filter(|p| !p.is_empty());
        let steps: Vec<(String, i64)> = on_db!(&self.db, pool => sqlx::query_as(
            "SELECT step_id, position FROM steps WHERE run_id = $1 AND ($2 IS NULL OR step_id = $2) ORDER BY position"
        )
        .bind(run_id)
        .bind(&q.step)
        .fetch_all(pool)
        .await)?;
        let mut rows: Vec<ItemRowWithSeq> = Vec::new();
        for (step_id, position) in steps {
            let after = match q.after {
                Some(c) if position < c.position => continue,
                Some(c) if position == c.position => Some(c),
                _ => None,
            };
            let step = StepRange { run_id, step_id: &step_id, position, after, want: limit + 1 - rows.len() as i64 };
            let page = match prefix {
                Some(p) => self.step_items_by_key(step, p, q.status).await?,
                None => on_db!(&self.db, pool => {
                    let mut b = QueryBuilder::new("");
                    by_seq(&mut b, &step, q.status);
                    b.build_query_as().fetch_all(pool).await
                })?,
            };
            rows.extend(page);
            if rows.len() as i64 > limit {
                break;
            }
        }
        Ok(Page::from_extra(rows, limit, ItemRowWithSeq::cursor))
    }

    async fn step_items_by_key(&self, step: StepRange<'_>, prefix: &str, status: Option<ItemStatus>) -> Result<Vec<ItemRowWithSeq>> {
        let after_key = match step.after {
            Some(c) => {
                // SQLite: a lookup of the row id. PostgreSQL's `rowid` has no index of its own
                // (one more on the items would slow every write): the row is found through
                // `items_step_status_seq`, one probe per status, by the cursor's `seq` and row.
                let key: Option<String> = match &self.db {
                    Db::Sqlite(pool) => {
                        sqlx::query_scalar("SELECT item_key FROM items WHERE rowid = $1 AND run_id = $2 AND step_id = $3")
                            .bind(c.row)
                            .bind(step.run_id)
                            .bind(step.step_id)
                            .fetch_optional(pool)
                            .await?
                    }
                    Db::Pg(pool) => {
                        sqlx::query_scalar(CURSOR_KEY_PG)
                            .bind(c.row)
                            .bind(step.run_id)
                            .bind(step.step_id)
                            .bind(c.seq)
                            .fetch_optional(pool)
                            .await?
                    }
                };
                // The cursor's row is gone (its run was pruned): nothing of this step follows it.
                let Some(key) = key else { return Ok(Vec::new()) };
                Some(key)
            }
            None => None,
        };
        Ok(on_db!(&self.db, pool => {
            let mut b = QueryBuilder::new("");
            by_key(&mut b, &step, prefix, status, after_key);
            b.build_query_as().fetch_all(pool).await
        })?)
    }

    /// Each step's item counts, in step order.
    pub async fn item_counts(&self, run_id: i64) -> Result<Vec<StepCounts>> {
        let mut out = Vec::new();
        for s in self.steps(run_id).await? {
            let mut c = StepCounts {
                step_id: s.step_id,
                position: s.position,
                kind: s.kind,
                status: s.status,
                ok: s.ok,
                failed: s.failed,
                skipped: s.skipped,
                live: s.status == StepStatus::Running,
            };
            if c.live {
                let counts: Vec<(ItemStatus, i64)> = on_db!(&self.db, pool => sqlx::query_as(STEP_COUNTS)
                    .bind(run_id)
                    .bind(&c.step_id)
                    .fetch_all(pool)
                    .await)?;
                (c.ok, c.failed, c.skipped) = (0, 0, 0);
                for (status, n) in counts {
                    match status {
                        ItemStatus::Ok => c.ok = n,
                        ItemStatus::Failed => c.failed = n,
                        ItemStatus::Skipped => c.skipped = n,
                    }
                }
            }
            out.push(c);
        }
        Ok(out)
    }
}

/// One step's part of a page.
pub(super) struct StepRange<'a> {
    pub(super) run_id: i64,
    pub(super) step_id: &'a str,
    pub(super) position: i64,
    pub(super) after: Option<ItemCursor>,
    /// Rows still wanted.
    pub(super) want: i64,
}

/// A step's items in `seq` order. Without a status filter, one ordered range per status merged
/// by SQLite (`MERGE (UNION ALL)`): the index orders by status first, and a second index on the
/// busiest table would slow every item write. PostgreSQL merges ranges (`Merge Append`) only
/// of a `UNION ALL` in `FROM` whose parts are ordered themselves, so there each part is ordered
/// and bounded (SQLite takes neither in a part).
pub(super) fn by_seq<DB: Database>(b: &mut QueryBuilder<DB>, s: &StepRange<'_>, status: Option<ItemStatus>)
where
    QueryBuilder<DB>: PushBind,
{
    let statuses = match status {
        Some(st) => vec![st],
        None => ItemStatus::ALL.to_vec(),
    };
    let pg = <QueryBuilder<DB> as PushBind>::BACKEND == Backend::Postgres;
    if pg {
        b.push("SELECT * FROM (");
    }
    for (i, st) in statuses.iter().enumerate() {
        if i > 0 {
            b.push(" UNION ALL ");
        }
        if pg {
            b.push("(");
        }
        b.push("SELECT ").bind_int(s.position).push(ITEM_COLUMNS).push(" FROM items WHERE run_id = ");
        b.bind_int(s.run_id).push(" AND step_id = ").bind_text(s.step_id).push(" AND status = ").bind_text(st.as_str());
        if let Some(c) = s.after {
            b.push(" AND (seq, rowid) > (").bind_int(c.seq).push(", ").bind_int(c.row).push(")");
        }
        if pg {
            b.push(" ORDER BY seq, rowid LIMIT ").bind_int(s.want).push(")");
        }
    }
    if pg {
        b.push(") t");
    }
    b.push(" ORDER BY seq, row LIMIT ").bind_int(s.want);
}

/// A step's items whose key starts with `prefix`, in key order: a range of the primary key
/// (`run_id, step_id, item_key`), never a `LIKE`. Keys are `"C"` text on PostgreSQL, so they
/// compare and sort by their bytes there as in SQLite. The same SQL on both.
pub(super) fn by_key<DB: Database>(
    b: &mut QueryBuilder<DB>,
    s: &StepRange<'_>,
    prefix: &str,
    status: Option<ItemStatus>,
    after_key: Option<String>,
) where
    QueryBuilder<DB>: PushBind,
{
    b.push("SELECT ").bind_int(s.position).push(ITEM_COLUMNS).push(" FROM items WHERE run_id = ");
    b.bind_int(s.run_id).push(" AND step_id = ").bind_text(s.step_id);
    // One lower bound, the tighter one, so the database ranges on it rather than filtering.
    match after_key {
        Some(k) if k.as_str() >= prefix => b.push(" AND item_key > ").bind_text(&k),
        _ => b.push(" AND item_key >= ").bind_text(prefix),
    };
    if let Some(end) = prefix_end(prefix) {
        b.push(" AND item_key < ").bind_text(&end);
    }
    if let Some(st) = status {
        b.push(" AND status = ").bind_text(st.as_str());
    }
    b.push(" ORDER BY item_key LIMIT ").bind_int(s.want);
}

/// The smallest text greater than every text that starts with `prefix` (`None`: there is none).
/// Text compares by its UTF-8 bytes, which order as the code points do, so raising the last
/// character that can be raised gives the exclusive end of the prefix's range.
pub(super) fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(c) = chars.pop() {
        let next = match c {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(c as u32 + 1),
        };
        if let Some(n) = next {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}
