//! Items spread over nodes (`spread_items: true`, on PostgreSQL). The node running a run (the
//! origin) queues a per-item step's items in the run log, keyed and checked as the local loop
//! (`items.rs`) would; then it and every other node (`worker.rs`) claim them in batches under a
//! lease and run them through the same `items::execute`. Each result and each delivery is
//! recorded under the item's claim (`Fence`), so a node that lost its lease records nothing.
//! The origin ends the step when no item is left, and counts the results from the run log.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use serde_json::Value;

use super::contract::{ItemRunner, RunEnv};
use super::items::{self, Counts, ItemsJob};
use super::log::{ClaimedItem, Fence, ItemSink, ItemStatus, QueuedItem, SharedStep};
use super::records::Record;
use super::PlannedStep;
use crate::spec::model::OnError;

/// How often a node with nothing to claim looks again.
pub(super) const POLL: Duration = Duration::from_millis(100);
/// How often the origin reads every node's results for its progress bar or log line.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// Items queued per statement.
const QUEUE_CHUNK: usize = 500;

/// One shared step as one node works on it.
pub(super) struct Share<'a> {
    pub step: &'a PlannedStep,
    pub runner: &'a dyn ItemRunner,
    pub env: &'a RunEnv,
    /// The template context with this node's `secrets`, without `item`.
    pub ctx: &'a Value,
}

/// The template context as other nodes get it: no secrets (each node has its own), and any
/// secret value elsewhere in it masked.
pub(super) fn shared_ctx(env: &RunEnv, ctx: &Value) -> String {
    let mut c = ctx.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("secrets");
    }
    env.secrets.redact_value(&c).to_string()
}

/// The origin's side: share the step, queue its items while working on them with the other
/// nodes, and return its counts once every item is done (or the step stopped).
pub(super) async fn origin(job: ItemsJob<'_>, spec_hash: &str) -> anyhow::Result<Counts> {
    let env = job.env;
    let step = job.step;
    let log = &env.log;
    log.share_step(&SharedStep {
        run_id: env.run_id,
        step_id: step.id.clone(),
        workflow: env.workflow.clone(),
        spec_hash: spec_hash.to_string(),
        ctx: shared_ctx(env, job.ctx),
        cap: step.concurrency_total,
    })
    .await?;
    let writer = log.item_sink();
    let filling = AtomicBool::new(true);
    let share = Share { step, runner: job.runner, env, ctx: job.ctx };
    let total = job.input.as_ref().map_or(Some(1), |src| src.count_hint());
    let progress = super::progress::Progress::new(&step.id, total, job.bars);
    let work = async {
        tokio::join!(
            async {
                let r = fill(&job, &*writer).await;
                filling.store(false, Ordering::Release);
                r
            },
            drain(&share, &*writer, Some(&filling)),
        )
    };
    tokio::pin!(work);
    // Progress counts every node's results: read from the run log now and then.
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    let (filled, stopped) = loop {
        tokio::select! {
            r = &mut work => break r,
            _ = tick.tick() => {
                if let Ok((ok, failed, skipped)) = log.item_counts(env.run_id, &step.id).await {
                    progress.update(&Counts { ok, failed, skipped, ..Counts::default() });
                }
            }
        }
    };
    let earlier = filled?;
    if let Some(why) = writer.failure() {
        env.fuse.blow(format!("item results: {why}"));
    }
    if let Err(e) = writer.flush().await {
        env.fuse.blow(format!("item results: {e}"));
    }
    let shared = log.share_progress(env.run_id, &step.id).await?;
    if shared.left == 0 && env.fuse.blown().is_none() {
        log.close_share(env.run_id, &step.id).await?;
    } else {
        // Interrupted, stopped or failing: no more items go out. The queue stays for a resume,
        // which picks up what is not done, and leaves alone what another node still holds.
        log.stop_share(env.run_id, &step.id).await?;
    }
    let (ok, failed, skipped) = log.item_counts(env.run_id, &step.id).await?;
    let ok_new = ok.saturating_sub(earlier);
    let skipped_new = skipped.saturating_sub(earlier.saturating_sub(ok));
    let counts = Counts { ok: ok_new, failed, skipped: skipped_new, earlier, stopped: stopped || shared.stopped };
    progress.finish(&counts);
    Ok(counts)
}

/// Reads the step's records and queues them, keyed; an item that cannot have a key fails here,
/// and one a resume finds done is left out. Returns how many were done before.
async fn fill(job: &ItemsJob<'_>, writer: &dyn ItemSink) -> anyhow::Result<u64> {
    let env = job.env;
    let seen = Mutex::new(HashSet::new());
    let mut records = match &job.input {
        Some(src) => src.open(env),
        None => futures::stream::iter([Ok(Record::new())]).boxed(),
    };
    let mut earlier = 0;
    let mut chunk = Vec::with_capacity(QUEUE_CHUNK);
    let mut seq = 0;
    while let Some(rec) = records.next().await {
        if env.shutdown.is_cancelled() || env.fuse.blown().is_some() {
            break;
        }
        seq += 1;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                writer.write(super::records::bad_record(env, &job.step.id, seq, &e)).await;
                continue;
            }
        };
        let mut ctx = job.ctx.clone();
        ctx["item"] = Value::Object(rec);
        match items::key_of(job.step, env, &ctx, seq, &seen) {
            Err(failed) => writer.write(*failed).await,
            Ok(key) if job.done.contains(&key) => earlier += 1,
            Ok(key) => {
                let record = ctx.get("item").map(Value::to_string).unwrap_or_default();
                chunk.push(QueuedItem { seq, key, record });
                if chunk.len() == QUEUE_CHUNK {
                    env.log.queue_items(env.run_id, &job.step.id, &std::mem::take(&mut chunk)).await?;
                }
            }
        }
    }
    if !chunk.is_empty() {
        env.log.queue_items(env.run_id, &job.step.id, &chunk).await?;
    }
    Ok(earlier)
}

/// Claims and runs items of one shared step, `concurrency` at a time, until there is nothing
/// to claim. The origin (`filling` given) goes on until every item is done, by any node; the
/// others stop at the first empty claim. Returns whether an item failed under `on_error: stop`.
pub(super) async fn drain(s: &Share<'_>, writer: &dyn ItemSink, filling: Option<&AtomicBool>) -> bool {
    let env = s.env;
    let log = &env.log;
    let (run_id, step_id) = (env.run_id, s.step.id.as_str());
    let concurrency = s.step.concurrency.max(1);
    let batch = (concurrency * 2).clamp(1, 256) as u32;
    let mut stop = false;
    let mut buf: VecDeque<ClaimedItem> = VecDeque::new();
    let mut running = FuturesUnordered::new();
    loop {
        let healthy = env.fuse.blown().is_none() && writer.failure().is_none() && !env.shutdown.is_cancelled() && !stop;
        let mut idle = false;
        while healthy && running.len() < concurrency {
            if let Some(item) = buf.pop_front() {
                running.push(one(s, item, writer));
                continue;
            }
            match log.claim_items(run_id, step_id, batch).await {
                Ok(got) if !got.is_empty() => buf.extend(got),
                Ok(_) => {
                    idle = true;
                    break;
                }
                Err(e) => {
                    env.fuse.blow(format!("cannot claim items of step `{step_id}`: {e:#}"));
                    break;
                }
            }
        }
        if let Some(status) = running.next().await {
            if status == ItemStatus::Failed && s.step.on_error == OnError::Stop {
                stop = true;
                if let Err(e) = log.stop_share(run_id, step_id).await {
                    tracing::warn!("step `{step_id}`: cannot tell the other nodes to stop: {e:#}");
                }
            }
            continue;
        }
        // Nothing running here.
        let Some(filling) = filling.filter(|_| healthy && idle) else { break };
        match log.share_progress(run_id, step_id).await {
            Ok(p) if !filling.load(Ordering::Acquire) && (p.left == 0 || (p.stopped && p.in_flight == 0)) => {
                stop |= p.stopped;
                break;
            }
            Ok(_) => {}
            Err(e) => {
                env.fuse.blow(format!("shared items of step `{step_id}`: {e:#}"));
                break;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = env.shutdown.cancelled() => break,
        }
    }
    stop
}

/// One claimed item: its record back into the context, run under the claim, result queued.
async fn one(s: &Share<'_>, item: ClaimedItem, writer: &dyn ItemSink) -> ItemStatus {
    let fence = Fence { step_id: s.step.id.clone(), seq: item.seq, token: item.token };
    let result = match serde_json::from_str::<Value>(&item.record) {
        Ok(rec @ Value::Object(_)) => {
            let mut ctx = s.ctx.clone();
            ctx["item"] = rec;
            items::execute(s.step, s.runner, s.env, &ctx, item.key, item.seq, Some(&fence)).await
        }
        _ => {
            let mut r = items::not_run(s.env, s.step, item.key, item.seq, "the queued record is not a JSON object".into());
            r.claim = Some(item.token);
            r
        }
    };
    let status = result.status;
    writer.write(result).await;
    status
}
