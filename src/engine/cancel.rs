//! Cancellation from another process: `cxflow cancel` or the dashboard writes a request to the
//! run log; the process running the run polls for it and stops the run as SIGTERM would (items
//! in flight get the grace, nothing new starts), so it ends `interrupted` and can be resumed.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::log::RunLog;

/// How often a running run looks for a cancel request: one indexed read per second per run,
/// and a person sees the run stop about a second after asking.
pub(super) const POLL_EVERY: Duration = Duration::from_secs(1);

/// Polls the run log until the run ends; cancels `stop` on a request. Dropped, it stops polling.
pub(super) struct Watch(tokio::task::JoinHandle<()>);

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(super) fn watch(log: Arc<dyn RunLog>, run_id: i64, stop: CancellationToken) -> Watch {
    Watch(tokio::spawn(async move {
        let mut every = tokio::time::interval(POLL_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            match log.cancel_requested(run_id).await {
                Ok(Some(r)) => {
                    tracing::warn!(run_id, by = %r.by, "cancel requested: no new items; items in flight may finish");
                    stop.cancel();
                    return;
                }
                Ok(None) => {}
                // A read that fails now may work at the next tick; the run's own writes decide
                // whether the run log is usable (the fuse), not this poll.
                Err(e) => tracing::debug!(run_id, "cannot read cancel requests: {e:#}"),
            }
        }
    }))
}

/// The error of an interrupted run: when a person asked for the stop, say who, whichever way
/// the request arrived (the run log, or a token of the process that started the run).
pub(super) async fn with_who(log: &dyn RunLog, run_id: i64, error: Option<String>) -> Option<String> {
    let Ok(Some(r)) = log.cancel_requested(run_id).await else { return error };
    let who = format!("cancelled by {} at {}; `cxflow resume {run_id}` continues it", r.by, r.at);
    Some(match error {
        Some(e) => format!("{who}; {e}"),
        None => who,
    })
}

#[cfg(test)]
mod tests;
