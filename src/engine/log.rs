//! The run log as the engine sees it: an interface in domain terms (start a run, finish items,
//! claim a delivery key, ...). `store` implements it for SQLite and PostgreSQL; the engine holds it as
//! `Arc<dyn RunLog>` and is the only module that calls it while a run is going on, so adding
//! another database never touches the engine or the steps.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;

/// A status string read back from the run log that this version does not know: never a silent
/// default, since a wrong status would resume or report the wrong thing.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("the run log holds {what} `{value}`, which this version of cxflow does not know; is a newer cxflow writing to it?")]
pub struct UnknownStatus {
    pub what: &'static str,
    pub value: String,
}

/// One enum per kind of status, spelled in the run log as in `as_str`; the schema's triggers
/// (migrations/0007_status_checks.sql) allow the same words and no others.
macro_rules! status_enum {
    ($(#[$m:meta])* $name:ident, $what:literal { $($(#[$vm:meta])* $v:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $v),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;
            fn from_str(s: &str) -> Result<Self, UnknownStatus> {
                match s {
                    $($s => Ok($name::$v),)+
                    _ => Err(UnknownStatus { what: $what, value: s.to_string() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // `pad`, so `{:<12}` lines up tables.
                f.pad(self.as_str())
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownStatus;
            fn try_from(s: String) -> Result<Self, UnknownStatus> {
                s.parse()
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

status_enum!(
    /// How a run ended (or that it is still going).
    RunStatus, "run status" {
        Running => "running",
        Succeeded => "succeeded",
        /// Some items failed; the others are done.
        Partial => "partial",
        Failed => "failed",
        /// Stopped by Ctrl-C, SIGTERM or a crash; `cxflow resume` continues it.
        Interrupted => "interrupted",
        /// A scheduled fire the scheduler did not start (overlap, calendar, invalid file).
        Skipped => "skipped",
    }
);

status_enum!(
    StepStatus, "step status" {
        Running => "running",
        Succeeded => "succeeded",
        Partial => "partial",
        Failed => "failed",
        Interrupted => "interrupted",
        /// `when:` was false.
        Skipped => "skipped",
    }
);

status_enum!(
    ItemStatus, "item status" {
        Ok => "ok",
        Failed => "failed",
        /// `skip_if`, or already done by an earlier run.
        Skipped => "skipped",
    }
);

status_enum!(
    /// How a run was started, as the run log records it.
    TriggerKind, "trigger" {
        Manual => "manual",
        Schedule => "schedule",
        DryRun => "dry-run",
        Resume => "resume",
    }
);

/// A new run, as the engine starts it.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub workflow: &'a str,
    pub file: &'a str,
    pub trigger: TriggerKind,
    pub params: &'a serde_json::Value,
    pub scheduled_for: Option<chrono::DateTime<chrono::Utc>>,
}

/// How a step ended, as the engine records it.
#[derive(Debug, Clone)]
pub struct StepEnd<'a> {
    pub status: StepStatus,
    pub error: Option<&'a str>,
    /// What later steps read as `steps.<id>` (batch steps only).
    pub output: Option<&'a serde_json::Value>,
    /// Records a batch step handled; per-item steps are counted from their items.
    pub records: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct ItemResult {
    pub run_id: i64,
    pub step_id: String,
    pub key: String,
    pub seq: i64,
    pub status: ItemStatus,
    pub attempts: u32,
    pub error: Option<String>,
    pub output: Option<serde_json::Value>,
    /// A shared item (`spread_items`): the token of this node's claim on it. The result is
    /// recorded only while that claim holds; a node whose lease lapsed records nothing.
    pub claim: Option<i64>,
}

/// A file a run produced, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewArtifact {
    pub step_id: String,
    /// The item it belongs to (the team of a digest, the key of a failed item).
    pub item_key: Option<String>,
    pub kind: String,
    pub path: String,
}

/// What the ledger says about a delivery key when a step asks to claim it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Nobody did this yet: go ahead (the key is now `sending`, owned by this run).
    Fresh,
    /// Done before, by run `run_id`.
    AlreadySent { run_id: i64 },
    /// A previous attempt was cut off between claim and confirmation, and its owner is gone:
    /// it may or may not have happened.
    Uncertain { run_id: i64 },
    /// Run `run_id` holds the key under a live owner and is delivering it now: leave it.
    InFlight { run_id: i64 },
}

/// A per-item step shared with other nodes (`spread_items: true`): what a node needs besides
/// its own copy of the workflow to run the step's items.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedStep {
    pub run_id: i64,
    pub step_id: String,
    pub workflow: String,
    /// `Plan.source_hash` of the origin's workflow file: a node whose file differs takes no items.
    pub spec_hash: String,
    /// The template context without `secrets` (each node has its own), as JSON.
    pub ctx: String,
    /// Items in flight over all nodes at most (`concurrency_total`).
    pub cap: Option<u32>,
}

/// An item as its origin queues it: position, key (already checked unique), record as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedItem {
    pub seq: i64,
    pub key: String,
    pub record: String,
}

/// An item this node claimed, with the token that fences what it records for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedItem {
    pub seq: i64,
    pub key: String,
    pub record: String,
    pub token: i64,
}

/// The claim a delivery of a shared item is made under: its claim and confirmation are
/// recorded only while this claim holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Fence {
    pub step_id: String,
    pub seq: i64,
    pub token: i64,
}

/// Where a shared step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareProgress {
    /// Items not done yet (queued, or claimed by some node).
    pub left: u64,
    /// Claimed by some node under a lease that still holds.
    pub in_flight: u64,
    /// `on_error: stop` ended it: no more items are given out.
    pub stopped: bool,
}

/// A request to stop a running run, from any process (`cxflow cancel`, the dashboard).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CancelRequest {
    pub by: String,
    /// RFC 3339, UTC.
    pub at: String,
}

/// The figures of one team's digest, kept for the trend in the next digest.
#[derive(Debug, Clone, PartialEq)]
pub struct DigestFigures {
    pub team: String,
    pub count: u64,
    pub urgent: u64,
    pub rated: u64,
    pub avg_rating: Option<f64>,
    pub csat: Option<f64>,
}

/// The figures of a team's previous digest in the same scope.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviousDigest {
    pub run_id: i64,
    pub count: u64,
    pub avg_rating: Option<f64>,
    pub csat: Option<f64>,
    pub created_at: String,
}

/// A run's step rows (each step's start and end) and its batch steps' artifacts, queued in
/// order and written by the run log in the background, whatever has queued up in one commit: a
/// workflow of 10,000 small steps spent half its time waiting for these, two round trips to the
/// database a step. Nothing waits for them but `flush`, which the engine calls before a step's
/// items (its first delivery claims) and before the run's end; a write that failed stops the
/// run at the end of the step it was queued in (`failure`). A batch step may thus run once
/// after a failed write, and a resume runs batch steps again anyway.
#[async_trait]
pub trait StepRows: Send + Sync {
    fn start(&self, step_id: &str, position: usize, kind: &str);
    fn finish(&self, step_id: &str, end: StepEnd<'_>);
    fn artifacts(&self, artifacts: &[NewArtifact]);
    /// Wait until everything queued so far is committed; the first write error since the last flush.
    async fn flush(&self) -> anyhow::Result<()>;
    /// The first write that failed, without waiting.
    fn failure(&self) -> Option<String>;
}

/// Queue of item results, committed in batches by the run log.
#[async_trait]
pub trait ItemSink: Send + Sync {
    async fn write(&self, r: ItemResult);
    /// Wait until everything queued so far is committed; the first write error since the last flush.
    async fn flush(&self) -> anyhow::Result<()>;
    /// The first write that failed, without waiting: the engine stops starting items after it.
    fn failure(&self) -> Option<String>;
}

/// Routed ids go in while routing runs (from blocking threads, a JSON array at a time);
/// `false` when the writer stopped (its error comes from `finish`).
pub type IdsSender = Arc<dyn Fn(String) -> bool + Send + Sync>;

/// Routed ids and digest figures of one route step, committed together by `finish`; dropped
/// unfinished, nothing is remembered.
#[async_trait]
pub trait RoutingWriter: Send {
    async fn finish(self: Box<Self>, digests: Vec<DigestFigures>) -> anyhow::Result<u64>;
}

/// The run log, in the terms the engine uses.
#[async_trait]
pub trait RunLog: Send + Sync {
    async fn start_run(&self, r: NewRun<'_>) -> anyhow::Result<i64>;
    /// Mark a run as running again for a resume.
    async fn reopen_run(&self, run_id: i64) -> anyhow::Result<()>;
    async fn finish_run(&self, run_id: i64, status: RunStatus, error: Option<&str>) -> anyhow::Result<()>;
    /// The run's step rows, written in the background (`StepRows`).
    fn step_rows(&self, run_id: i64) -> Box<dyn StepRows>;
    async fn add_artifacts(&self, run_id: i64, artifacts: &[NewArtifact]) -> anyhow::Result<()>;
    fn item_sink(&self) -> Box<dyn ItemSink>;
    /// Keys of the items of a step that already succeeded (or were skipped) in a run.
    async fn done_keys(&self, run_id: i64, step_id: &str) -> anyhow::Result<HashSet<String>>;
    /// Outputs (JSON text) of the successful items of a step, in order.
    fn item_outputs(&self, run_id: i64, step_id: &str) -> BoxStream<'static, anyhow::Result<Option<String>>>;

    /// Claim `key` for run `run_id` under this process's lease; on disk before it returns `Fresh`.
    async fn claim_key(&self, key: &str, workflow: &str, run_id: i64, step_id: &str, item_key: &str) -> anyhow::Result<Claim>;
    /// What `claim_key` would find, without claiming.
    async fn check_key(&self, key: &str, run_id: i64) -> anyhow::Result<Claim>;
    /// Take over an uncertain key for a deliberate resend; `false` when it is not uncertain any more.
    async fn reclaim_key(&self, key: &str, run_id: i64) -> anyhow::Result<bool>;
    /// Confirm and release fail when run `run_id` of this process no longer holds the key.
    async fn mark_sent(&self, key: &str, run_id: i64, detail: Option<&str>) -> anyhow::Result<()>;
    /// The side effect certainly did not happen: forget the claim so a later run may try.
    async fn release_key(&self, key: &str, run_id: i64) -> anyhow::Result<()>;

    /// Ids routed in `scope` by runs other than `run_id`, newline-separated; `None` when none.
    async fn routed_ids(&self, scope: &str, run_id: i64) -> anyhow::Result<Option<String>>;
    fn routing_writer(&self, scope: &str, run_id: i64) -> (Box<dyn RoutingWriter>, IdsSender);
    async fn previous_digest(&self, scope: &str, team: &str, before_run: i64) -> anyhow::Result<Option<PreviousDigest>>;

    /// Whether someone asked for run `run_id` to stop; polled while the run goes on.
    async fn cancel_requested(&self, run_id: i64) -> anyhow::Result<Option<CancelRequest>>;

    // Items spread over nodes (`spread_items`; PostgreSQL). The origin shares a step and queues
    // its items; every node claims batches under a lease and records results under the claim.

    /// Open (or, for a resume, reopen) step sharing; this node is its origin.
    async fn share_step(&self, s: &SharedStep) -> anyhow::Result<()>;
    /// Queue items; an item already queued keeps its row unless it is done (a resume redoes it).
    async fn queue_items(&self, run_id: i64, step_id: &str, items: &[QueuedItem]) -> anyhow::Result<()>;
    /// Claim up to `n` items (queued, or claimed under a lapsed lease), in order.
    async fn claim_items(&self, run_id: i64, step_id: &str, n: u32) -> anyhow::Result<Vec<ClaimedItem>>;
    /// Shared steps of running runs, started by other nodes, with items to claim.
    async fn shared_steps(&self) -> anyhow::Result<Vec<SharedStep>>;
    async fn share_progress(&self, run_id: i64, step_id: &str) -> anyhow::Result<ShareProgress>;
    /// No more items are given out (`on_error: stop`, or the origin stopping).
    async fn stop_share(&self, run_id: i64, step_id: &str) -> anyhow::Result<()>;
    /// The step is over: its queue is deleted.
    async fn close_share(&self, run_id: i64, step_id: &str) -> anyhow::Result<()>;
    /// Results of a step's items by status: ok, failed, skipped.
    async fn item_counts(&self, run_id: i64, step_id: &str) -> anyhow::Result<(u64, u64, u64)>;
    /// `claim_key` for a shared item: only while `fence` holds.
    async fn claim_key_fenced(&self, key: &str, workflow: &str, run_id: i64, item_key: &str, fence: &Fence) -> anyhow::Result<Claim>;
    /// `mark_sent` for a shared item: only while `fence` holds.
    async fn mark_sent_fenced(&self, key: &str, run_id: i64, detail: Option<&str>, fence: &Fence) -> anyhow::Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_as_itself_and_an_unknown_one_is_an_error() {
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>(), Ok(*s));
        }
        for s in StepStatus::ALL {
            assert_eq!(s.as_str().parse::<StepStatus>(), Ok(*s));
        }
        for s in ItemStatus::ALL {
            assert_eq!(s.as_str().parse::<ItemStatus>(), Ok(*s));
        }
        for s in TriggerKind::ALL {
            assert_eq!(s.as_str().parse::<TriggerKind>(), Ok(*s));
        }
        assert_eq!(
            "done".parse::<RunStatus>().unwrap_err().to_string(),
            "the run log holds run status `done`, which this version of cxflow does not know; is a newer cxflow writing to it?"
        );
    }
}
