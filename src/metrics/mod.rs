//! `/metrics`: Prometheus text (format 0.0.4) for the web server to serve. Two sources:
//!
//! - the run log, read at each scrape (`log.rs`, queries in `store::metrics`): runs, durations,
//!   items, deliveries, skipped fires, the file's size. The same for every process that opens
//!   the log, so `cxflow ui` shows them without a scheduler.
//! - [`Live`], what only the running scheduler knows: whether it is scheduling, how late each
//!   fire started, which runs it saw end. Counted in this process from its start.
//!
//! Labels are workflow names, step ids, step kinds and closed sets of words only (never item
//! keys or record data), so the number of series stays bounded by the workflows' files. The
//! `prometheus-client` crate writes the text and escapes label values.

mod log;
#[cfg(test)]
mod tests;

use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::store::Store;

/// The `Content-Type` to serve [`render`]'s text with: `text/plain; version=0.0.4; charset=utf-8`.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of `cxflow_run_duration_seconds`: a second to four hours.
pub(crate) const DURATION_BUCKETS: &[f64] = &[1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0];

/// Upper bounds (seconds) of `cxflow_fire_lateness_seconds`: on time (the loop wakes within
/// milliseconds) to a day (a catch-up fire after a night down).
pub(crate) const LATENESS_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0];

type Labels = Vec<(&'static str, String)>;

fn lateness_histogram() -> Histogram {
    Histogram::new(LATENESS_BUCKETS.iter().copied())
}

/// What the scheduler of this process records for `/metrics`. Cheap to clone (each part is an
/// `Arc`); all clones record into the same figures.
#[derive(Clone, Debug)]
pub struct Live {
    scheduler_up: Gauge,
    lateness: Family<Labels, Histogram, fn() -> Histogram>,
    runs_ended: Family<Labels, Counter>,
    spec_mismatches: Family<Labels, Counter>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            scheduler_up: Gauge::default(),
            lateness: Family::new_with_constructor(lateness_histogram as fn() -> Histogram),
            runs_ended: Family::default(),
            spec_mismatches: Family::default(),
        }
    }
}

impl Live {
    pub fn new() -> Live {
        Live::default()
    }

    /// The scheduler started (`true`) or stopped (`false`) scheduling.
    pub fn set_scheduler_up(&self, up: bool) {
        self.scheduler_up.set(i64::from(up));
    }

    /// A fire of `workflow` was handed to the launcher `late` after its scheduled instant.
    /// `catch_up`: a fire missed while the scheduler was down, started late on purpose.
    pub fn fire_started(&self, workflow: &str, catch_up: bool, late: Duration) {
        let labels = vec![("workflow", workflow.to_string()), ("catch_up", catch_up.to_string())];
        self.lateness.get_or_create(&labels).observe(late.as_secs_f64());
    }

    /// A run the scheduler started has ended with `status` (the run log's word for it).
    pub fn run_ended(&self, workflow: &str, status: &str) {
        let labels = vec![("workflow", workflow.to_string()), ("status", status.to_string())];
        self.runs_ended.get_or_create(&labels).inc();
    }

    /// Another node had claimed a fire of `workflow` from a workflow file that differs from this
    /// node's copy.
    pub fn spec_mismatch(&self, workflow: &str) {
        self.spec_mismatches.get_or_create(&vec![("workflow", workflow.to_string())]).inc();
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "cxflow_scheduler_up",
            "1 while this process's scheduler (`cxflow serve`) is scheduling, 0 once it stopped",
            self.scheduler_up.clone(),
        );
        registry.register(
            "cxflow_fire_lateness_seconds",
            "How long after its scheduled instant each fire was started, per workflow; catch_up=\"true\" for fires missed while the scheduler was down",
            self.lateness.clone(),
        );
        registry.register(
            "cxflow_scheduler_runs_ended",
            "Runs started by this process's scheduler that ended, per workflow and final status, counted since the process started",
            self.runs_ended.clone(),
        );
        registry.register(
            "cxflow_fire_spec_mismatches",
            "Fires this process found claimed by another cxflow serve node whose workflow file differs from this one's, per workflow, counted since the process started",
            self.spec_mismatches.clone(),
        );
    }
}

/// The text of `/metrics` (serve it with [`CONTENT_TYPE`]): the run log's figures, read now,
/// and `live`'s when this process schedules (`None` in a process without a scheduler: the
/// scheduler's metrics are then absent). When the run log cannot be read the text still comes,
/// with `cxflow_run_log_up 0` and the error logged; an error is returned only when the text
/// itself cannot be written.
pub async fn render(store: &Store, live: Option<&Live>) -> anyhow::Result<String> {
    let figures = match store.metric_figures(DURATION_BUCKETS).await {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::error!("/metrics: cannot read the run log: {e}");
            None
        }
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(log::LogCollector { figures }));
    if let Some(live) = live {
        live.register(&mut registry);
    }
    let mut out = String::new();
    prometheus_text::encode(&mut out, &registry).map_err(|_| anyhow::anyhow!("cannot write the metrics text"))?;
    Ok(out)
}
