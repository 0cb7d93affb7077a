//! What the dashboard and the JSON API read from the run log: pages of runs and items with
//! keyset cursors, per-workflow summaries for the overview, artifacts, uncertain deliveries and
//! digest history. Every list is bounded (`MAX_LIMIT`) and every query walks an index
//! (migrations/0009_dashboard_indexes.sql; migrations_pg/ on PostgreSQL), so a run of a million
//! items reads like one of ten. Where the two databases spell a read alike, it is one SQL for
//! both (the builders are generic over the database).
//! The semantics are documented in docs/dashboard.md, "Reading runs (store)".

mod artifacts;
mod digests;
mod items;
mod runs;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::{Postgres, QueryBuilder, Sqlite};

use super::db::Backend;

pub use artifacts::{ArtifactWithId, UncertainRow};
pub use digests::{DigestPoint, DigestTeam, MAX_HISTORY};
pub use items::{ItemRowWithSeq, ItemsQuery, StepCounts};
pub use runs::{RunLogStats, RunPoint, RunsQuery, WorkflowSummary, FAILURE_DAYS, RECENT_RUNS};

/// Rows per page when the caller asks for none (`limit <= 0`).
pub const DEFAULT_LIMIT: i64 = 100;
/// The most rows one page holds, whatever the caller asks: a page is one bounded index range.
pub const MAX_LIMIT: i64 = 500;

pub(super) fn page_limit(asked: i64) -> i64 {
    if asked <= 0 {
        DEFAULT_LIMIT
    } else {
        asked.min(MAX_LIMIT)
    }
}

/// One page of a list and the cursor of the next page (`None`: this is the last one).
#[derive(Debug, Clone, Serialize)]
pub struct Page<T, C = i64> {
    pub rows: Vec<T>,
    pub next: Option<C>,
}

impl<T, C> Page<T, C> {
    /// Takes `limit + 1` fetched rows: the extra row only tells that there is a next page.
    fn from_extra(mut rows: Vec<T>, limit: i64, cursor: impl Fn(&T) -> C) -> Page<T, C> {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next = if more { rows.last().map(cursor) } else { None };
        Page { rows, next }
    }
}

/// Where a page of items ends: the step's position, the item's `seq` and its row id (which
/// orders items with the same `seq`, as a resume over a changed input can leave). Written
/// `<position>.<seq>.<row>` in URLs and JSON. In SQLite, valid until the run log is `VACUUM`ed
/// (a full vacuum renumbers rows; retention's incremental vacuum does not); PostgreSQL's row
/// numbers are a column, which nothing renumbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemCursor {
    pub position: i64,
    pub seq: i64,
    pub row: i64,
}

impl fmt::Display for ItemCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.position, self.seq, self.row)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an item cursor; use the `next` value of the previous page as it was given")]
pub struct BadCursor(pub String);

impl FromStr for ItemCursor {
    type Err = BadCursor;
    fn from_str(s: &str) -> Result<ItemCursor, BadCursor> {
        let bad = || BadCursor(s.chars().take(40).collect());
        let mut parts = s.split('.').map(|p| p.parse::<i64>());
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Ok(position)), Some(Ok(seq)), Some(Ok(row)), None) => Ok(ItemCursor { position, seq, row }),
            _ => Err(bad()),
        }
    }
}

impl Serialize for ItemCursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a date (2024-05-31) or an RFC 3339 time (2024-05-31T09:00:00Z)")]
pub struct BadTime(pub String);

/// Reads a `from`/`to` filter: an RFC 3339 time, or a date (UTC). As an upper bound (`end`) a
/// date means the end of that day, so `to=2024-05-31` includes runs started on the 31st.
pub fn parse_time_bound(s: &str, end: bool) -> Result<DateTime<Utc>, BadTime> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| BadTime(s.chars().take(40).collect()))?;
    let day = if end { day.succ_opt().ok_or_else(|| BadTime(s.into()))? } else { day };
    Ok(day.and_hms_opt(0, 0, 0).ok_or_else(|| BadTime(s.into()))?.and_utc())
}

/// A query builder of either database: what the dashboard's SQL builders bind, and which
/// database they write for (to pick the few words where the two differ).
pub(crate) trait PushBind {
    const BACKEND: Backend;
    fn bind_int(&mut self, v: i64) -> &mut Self;
    fn bind_text(&mut self, v: &str) -> &mut Self;
}

macro_rules! push_bind {
    ($db:ty, $backend:expr) => {
        impl PushBind for QueryBuilder<$db> {
            const BACKEND: Backend = $backend;
            fn bind_int(&mut self, v: i64) -> &mut Self {
                self.push_bind(v)
            }
            fn bind_text(&mut self, v: &str) -> &mut Self {
                self.push_bind(v)
            }
        }
    };
}
push_bind!(Sqlite, Backend::Sqlite);
push_bind!(Postgres, Backend::Postgres);

/// Times in the run log are RFC 3339 UTC with milliseconds and compare as text.
fn stored_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
