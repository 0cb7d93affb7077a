//! The per-item loop of one step: records in, bounded concurrency, retries with backoff,
//! a timeout per attempt, `skip_if`, resume, `on_error: stop`, and a graceful stop on shutdown.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};

use super::contract::{Artifact, ItemCx, ItemRunner, RunEnv, StepError};
use super::log::{Fence, ItemResult, ItemSink, ItemStatus};
use super::progress::Progress;
use super::records::{Record, RecordSource};
use super::PlannedStep;
use crate::spec::model::OnError;

#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub ok: u64,
    pub failed: u64,
    pub skipped: u64,
    /// Items a resume found already done.
    pub earlier: u64,
    /// `on_error: stop` cut the step short.
    pub stopped: bool,
}

pub(super) struct ItemsJob<'a> {
    pub step: &'a PlannedStep,
    pub runner: &'a dyn ItemRunner,
    /// `None` when the step has no `for_each`: it runs once.
    pub input: Option<RecordSource>,
    pub ctx: &'a Value,
    pub env: &'a RunEnv,
    pub done: HashSet<String>,
    pub grace: Duration,
    pub bars: bool,
}

enum Outcome {
    Written(ItemStatus),
    Earlier,
}

pub(super) async fn run(job: ItemsJob<'_>) -> anyhow::Result<Counts> {
    let env = job.env;
    let writer = env.log.item_sink();
    let stop = AtomicBool::new(false);
    // Keys given so far: a second record with the same `item_key` would overwrite the first's
    // row in the run log (and be skipped by a resume), so it fails instead of running.
    let seen = Mutex::new(HashSet::new());
    let total = match &job.input {
        Some(src) => src.count_hint(),
        None => Some(1),
    };
    let progress = Progress::new(&job.step.id, total, job.bars);
    let records = match &job.input {
        Some(src) => src.open(env),
        None => futures::stream::iter([Ok(Record::new())]).boxed(),
    };
    let shutdown = env.shutdown.clone();
    let mut counts = Counts::default();
    let work = records
        .enumerate()
        .take_while(|_| {
            // Fail-stop: after a run-log write failed, no new item starts.
            let healthy = env.fuse.blown().is_none() && writer.failure().is_none();
            futures::future::ready(healthy && !shutdown.is_cancelled() && !stop.load(Ordering::Relaxed))
        })
        .map(|(seq, rec)| {
            let (writer, stop, seen) = (&*writer, &stop, &seen);
            let job = &job;
            async move {
                let out = one(job, seq as i64 + 1, rec, writer, seen).await;
                if matches!(out, Outcome::Written(ItemStatus::Failed)) && job.step.on_error == OnError::Stop {
                    stop.store(true, Ordering::Relaxed);
                }
                out
            }
        })
        .buffer_unordered(job.step.concurrency)
        .for_each(|o| {
            match o {
                Outcome::Written(ItemStatus::Ok) => counts.ok += 1,
                Outcome::Written(ItemStatus::Failed) => counts.failed += 1,
                Outcome::Written(ItemStatus::Skipped) => counts.skipped += 1,
                Outcome::Earlier => counts.earlier += 1,
            }
            progress.update(&counts);
            futures::future::ready(())
        });
    let hard_stop = async {
        shutdown.cancelled().await;
        tokio::time::sleep(job.grace).await;
    };
    tokio::select! {
        _ = work => {}
        _ = hard_stop => {
            tracing::warn!("step `{}`: items still running after the shutdown grace period were abandoned; resume will redo them", job.step.id);
        }
    }
    progress.finish(&counts);
    if let Some(why) = writer.failure() {
        env.fuse.blow(format!("item results: {why}"));
    }
    // A failed flush blows the fuse like any run-log write, so the step ends with the reason
    // and the resume hint (engine/mod.rs) rather than the bare database error.
    if let Err(e) = writer.flush().await {
        env.fuse.blow(format!("item results: {e}"));
    }
    counts.stopped = stop.load(Ordering::Relaxed);
    Ok(counts)
}

/// One record, start to finish: key, resume check, skip_if, attempts; its result is queued for the run log.
async fn one(job: &ItemsJob<'_>, seq: i64, rec: anyhow::Result<Record>, writer: &dyn ItemSink, seen: &Mutex<HashSet<String>>) -> Outcome {
    let env = job.env;
    let rec = match rec {
        Ok(r) => r,
        Err(e) => {
            writer.write(super::records::bad_record(env, &job.step.id, seq, &e)).await;
            return Outcome::Written(ItemStatus::Failed);
        }
    };
    let mut ctx = job.ctx.clone();
    ctx["item"] = Value::Object(rec);
    let key = match key_of(job.step, env, &ctx, seq, seen) {
        Ok(k) => k,
        Err(failed) => {
            writer.write(*failed).await;
            return Outcome::Written(ItemStatus::Failed);
        }
    };
    if job.done.contains(&key) {
        return Outcome::Earlier;
    }
    let result = execute(job.step, job.runner, env, &ctx, key, seq, None).await;
    let status = result.status;
    writer.write(result).await;
    Outcome::Written(status)
}

/// A failed item's result, before it ran.
pub(super) fn not_run(env: &RunEnv, step: &PlannedStep, key: String, seq: i64, error: String) -> ItemResult {
    ItemResult {
        run_id: env.run_id,
        step_id: step.id.clone(),
        key,
        seq,
        status: ItemStatus::Failed,
        attempts: 0,
        error: Some(env.secrets.redact(&error)),
        output: None,
        claim: None,
    }
}

/// The item's key: `item_key` rendered over `ctx` (which holds `item`), or its position. A key
/// that repeats an earlier record's (`seen`), renders empty or fails to render makes the item
/// fail before it runs: the error is the result to record.
pub(super) fn key_of(
    step: &PlannedStep,
    env: &RunEnv,
    ctx: &Value,
    seq: i64,
    seen: &Mutex<HashSet<String>>,
) -> Result<String, Box<ItemResult>> {
    let fallback = format!("#{seq}");
    let Some(k) = &step.item_key else { return Ok(fallback) };
    match env.templates.render(k, ctx) {
        Ok(k) if !k.trim().is_empty() => {
            if !seen.lock().unwrap_or_else(|p| p.into_inner()).insert(k.clone()) {
                // Logged under its position, so the first record's row stays as it is.
                let msg = format!("item_key `{k}` repeats the key of an earlier record; not run. Make `item_key` unique per record, or remove the duplicate");
                return Err(Box::new(not_run(env, step, fallback, seq, msg)));
            }
            Ok(k)
        }
        Ok(_) => Err(Box::new(not_run(env, step, fallback, seq, "`item_key` rendered empty for this record".into()))),
        Err(e) => Err(Box::new(not_run(env, step, fallback, seq, format!("cannot render `item_key`: {e}")))),
    }
}

/// Runs one keyed item: `skip_if`, then its attempts with retries and the timeout. `fence` is
/// the claim of a shared item (`spread.rs`): its deliveries and result are recorded under it.
pub(super) async fn execute(
    step: &PlannedStep,
    runner: &dyn ItemRunner,
    env: &RunEnv,
    ctx: &Value,
    key: String,
    seq: i64,
    fence: Option<&Fence>,
) -> ItemResult {
    let mut result = ItemResult {
        run_id: env.run_id,
        step_id: step.id.clone(),
        key,
        seq,
        status: ItemStatus::Failed,
        attempts: 0,
        error: None,
        output: None,
        claim: fence.map(|f| f.token),
    };
    if let Some(cond) = &step.skip_if {
        match env.templates.truthy(cond, ctx) {
            Ok(true) => {
                result.status = ItemStatus::Skipped;
                result.output = Some(json!({"skipped": "skip_if"}));
                return result;
            }
            Ok(false) => {}
            Err(e) => {
                result.error = Some(env.secrets.redact(&format!("cannot evaluate `skip_if`: {e}")));
                return result;
            }
        }
    }
    let mut attempt = 0;
    // Files of failed attempts (screenshots, page HTML) are kept, whatever the last attempt did.
    let mut artifacts: Vec<Artifact> = Vec::new();
    let outcome = loop {
        attempt += 1;
        let icx = ItemCx { step_id: &step.id, key: &result.key, attempt, ctx, run: env, fence };
        let r = match step.timeout {
            // The deadline also bounds the step's template renders, which the timer cannot stop.
            Some(t) => match tokio::time::timeout(t, crate::plan::templates::with_deadline(t, runner.run_item(&icx))).await {
                Ok(r) => r,
                Err(_) => Err(StepError::Retryable(format!("timed out after {}", humantime::format_duration(t))).into()),
            },
            None => runner.run_item(&icx).await,
        };
        let r = r.map_err(|f| {
            artifacts.extend(f.artifacts);
            f.error
        });
        match r {
            Err(StepError::Retryable(e)) if attempt < step.attempts => {
                let wait = step.backoff.saturating_mul(1 << (attempt - 1).min(16));
                tracing::info!(
                    "step `{}` item `{}`: attempt {attempt} failed ({}); retrying in {}",
                    step.id,
                    result.key,
                    env.secrets.redact(&e),
                    humantime::format_duration(wait)
                );
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = env.shutdown.cancelled() => break Err(StepError::Retryable(format!("{e} (not retried: shutting down)"))),
                }
            }
            other => break other,
        }
    };
    result.attempts = attempt;
    match outcome {
        Ok(out) => {
            artifacts.extend(out.artifacts);
            super::record_artifacts(env, &step.id, Some(&result.key), &artifacts).await;
            result.status = if out.skipped { ItemStatus::Skipped } else { ItemStatus::Ok };
            result.output = Some(env.secrets.redact_value(&out.output));
        }
        Err(e) => {
            super::record_artifacts(env, &step.id, Some(&result.key), &artifacts).await;
            let kind = match e {
                StepError::Retryable(_) if step.attempts > 1 => format!(" (gave up after {attempt} attempts)"),
                _ => String::new(),
            };
            result.error = Some(env.secrets.redact(&format!("{e}{kind}")));
        }
    }
    result
}
