//! The delivery capability: the one implementation of the exactly-once protocol, used by every
//! side effect that must happen once (an email, a portal submission, a webhook post).
//!
//!   check(key)  (optional, read-only: skip what is sent before waiting for a connection)
//!   claim(key) ── AlreadySent ──▶ do nothing
//!              ├─ InFlight ─────▶ a live run holds it: leave it
//!              ├─ Uncertain ────▶ the kind's policy: fail the item as uncertain, or `reclaim` and redo
//!              └─ Fresh ────────▶ the side effect ─ delivered ──────────▶ confirm
//!                                                ├ certainly not ────────▶ release
//!                                                └ may have reached it ─▶ uncertain (key stays claimed)
//!
//! The claim is taken at handover (an SMTP envelope accepted, right before DATA; the submit
//! button found, right before the click) and is on disk before `claim` returns, so a crash
//! after it leaves the key claimed: the next run sees `Uncertain`, never `Fresh`. Any run-log
//! error here blows the run's fuse (`fuse.rs`): nothing more is claimed.

use super::contract::RunEnv;
use super::log::{Claim, Fence, IdsSender, PreviousDigest, RoutingWriter};

pub struct Delivery<'a> {
    run: &'a RunEnv,
    step_id: &'a str,
    item_key: &'a str,
    /// A shared item's claim (`spread_items`): claim and confirm only while it holds.
    fence: Option<&'a Fence>,
}

impl<'a> Delivery<'a> {
    pub(super) fn new(run: &'a RunEnv, step_id: &'a str, item_key: &'a str) -> Delivery<'a> {
        Delivery { run, step_id, item_key, fence: None }
    }

    pub(super) fn fenced(self, fence: Option<&'a Fence>) -> Delivery<'a> {
        Delivery { fence, ..self }
    }

    /// What a claim would find, without claiming: lets a step skip what is already sent before
    /// it waits for a rate limit or a connection.
    pub async fn check(&self, key: &str) -> anyhow::Result<Claim> {
        self.run.fuse.check()?;
        self.guard(self.run.log.check_key(key, self.run.run_id).await)
    }

    /// Claim `key` for this run, at the moment of handover (the envelope accepted, the submit
    /// button found); on disk when it returns `Fresh`.
    pub async fn claim(&self, key: &str) -> anyhow::Result<Claim> {
        self.run.fuse.check()?;
        let log = &self.run.log;
        self.guard(match self.fence {
            Some(f) => log.claim_key_fenced(key, &self.run.workflow, self.run.run_id, self.item_key, f).await,
            None => log.claim_key(key, &self.run.workflow, self.run.run_id, self.step_id, self.item_key).await,
        })
    }

    /// Take over an uncertain key for a deliberate redo (the workflow said so); `false` when
    /// another run took it first or it is no longer uncertain.
    pub async fn reclaim(&self, key: &str) -> anyhow::Result<bool> {
        self.run.fuse.check()?;
        self.guard(self.run.log.reclaim_key(key, self.run.run_id).await)
    }

    /// The side effect happened; `detail` (the server's answer) is kept with the key.
    pub async fn confirm(&self, key: &str, detail: Option<&str>) -> anyhow::Result<()> {
        self.guard(match self.fence {
            Some(f) => self.run.log.mark_sent_fenced(key, self.run.run_id, detail, f).await,
            None => self.run.log.mark_sent(key, self.run.run_id, detail).await,
        })
    }

    /// The side effect certainly did not happen (refused, never handed over): a later attempt may try.
    pub async fn release(&self, key: &str) -> anyhow::Result<()> {
        self.guard(self.run.log.release_key(key, self.run.run_id).await)
    }

    /// It may have happened: the key stays claimed, so no later run repeats it unasked.
    pub async fn uncertain(&self, key: &str) -> anyhow::Result<()> {
        tracing::warn!(step = %self.step_id, item = %self.item_key, "delivery `{key}` is uncertain: it may have reached the other side");
        Ok(())
    }

    /// A ledger that cannot be written (or a key this run lost) stops the run: fail-stop.
    fn guard<T>(&self, r: anyhow::Result<T>) -> anyhow::Result<T> {
        if let Err(e) = &r {
            self.run.fuse.blow(format!("{e:#}"));
        }
        r
    }
}

/// What a route step remembers across runs: the ids it routed, and each team's digest figures.
pub struct RouteLog<'a> {
    run: &'a RunEnv,
    scope: String,
}

impl<'a> RouteLog<'a> {
    pub(super) fn new(run: &'a RunEnv, step_id: &str) -> RouteLog<'a> {
        RouteLog { run, scope: format!("{}/{step_id}", run.workflow) }
    }

    /// Ids routed by other runs of this step, newline-separated; `None` when there are none.
    pub async fn routed_ids(&self) -> anyhow::Result<Option<String>> {
        self.run.log.routed_ids(&self.scope, self.run.run_id).await
    }

    /// Routed ids go in through the sender while routing runs; `finish` commits them with the
    /// digest figures.
    pub fn writer(&self) -> (Box<dyn RoutingWriter>, IdsSender) {
        self.run.log.routing_writer(&self.scope, self.run.run_id)
    }

    pub async fn previous_digest(&self, team: &str) -> anyhow::Result<Option<PreviousDigest>> {
        self.run.log.previous_digest(&self.scope, team, self.run.run_id).await
    }
}
