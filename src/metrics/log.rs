//! The run log's figures as Prometheus families, written at each scrape from one
//! `store::MetricFigures`. They count what is in the run log now, so retention pruning lowers
//! them: the counts are gauges, and only the durations are a histogram (the format has no
//! gauge histogram); docs/dashboard.md says which queries hold across a prune.

use std::fmt::Error;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, MetricEncoder};
use prometheus_client::metrics::MetricType;

use super::DURATION_BUCKETS;
use crate::store::MetricFigures;

/// (workflow, step id, kind)
type StepKey<'a> = (&'a str, &'a str, &'a str);

#[derive(Debug)]
pub(super) struct LogCollector {
    /// `None`: the run log could not be read.
    pub(super) figures: Option<MetricFigures>,
}

fn gauge<'a>(enc: &'a mut DescriptorEncoder, name: &'a str, help: &str) -> Result<MetricEncoder<'a>, Error> {
    enc.encode_descriptor(name, help, None, MetricType::Gauge)
}

/// One labelled sample of a gauge family.
fn sample<const N: usize>(m: &mut MetricEncoder, labels: [(&str, &str); N], value: impl EncodeGaugeValue) -> Result<(), Error> {
    m.encode_family(&labels)?.encode_gauge(&value)
}

fn epoch_seconds(rfc3339: &str) -> Option<f64> {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).ok()?;
    Some(t.timestamp_millis() as f64 / 1000.0)
}

impl Collector for LogCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), Error> {
        let mut m = gauge(&mut enc, "cxflow_build_info", "Always 1; the version of cxflow serving these metrics.")?;
        sample(&mut m, [("version", env!("CARGO_PKG_VERSION"))], 1u64)?;
        let mut m = gauge(
            &mut enc,
            "cxflow_run_log_up",
            "1 when this scrape could read the run log, 0 when it could not (the error is in the log).",
        )?;
        m.encode_gauge(&i64::from(self.figures.is_some()))?;
        let Some(f) = &self.figures else { return Ok(()) };

        let mut m = gauge(
            &mut enc,
            "cxflow_run_log_size_bytes",
            "Size of the run log database (SQLite: page count times page size, the WAL file not included; PostgreSQL: pg_database_size).",
        )?;
        m.encode_gauge(&f.bytes)?;

        let mut m = gauge(
            &mut enc,
            "cxflow_runs",
            "Runs in the run log, per workflow and status (skipped fires included); retention pruning lowers it.",
        )?;
        for r in &f.runs {
            sample(&mut m, [("workflow", &r.workflow), ("status", &r.status)], r.count)?;
        }
        let mut m = gauge(
            &mut enc,
            "cxflow_run_last_finished_timestamp_seconds",
            "When the latest run in the run log of the workflow with this status finished (Unix time, seconds).",
        )?;
        for r in &f.runs {
            if let Some(t) = r.last_finished.as_deref().and_then(epoch_seconds) {
                sample(&mut m, [("workflow", &r.workflow), ("status", &r.status)], t)?;
            }
        }

        let mut m = enc.encode_descriptor(
            "cxflow_run_duration_seconds",
            "Durations of the finished runs in the run log, per workflow (start to end; a resumed run from its first start).",
            None,
            MetricType::Histogram,
        )?;
        for d in &f.durations {
            let buckets: Vec<(f64, u64)> = DURATION_BUCKETS.iter().copied().chain([f64::INFINITY]).zip(d.buckets.iter().copied()).collect();
            m.encode_family(&[("workflow", d.workflow.as_str())])?.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                d.sum_seconds,
                d.count,
                &buckets,
                None,
            )?;
        }

        let mut m = gauge(
            &mut enc,
            "cxflow_items",
            "Items per workflow, step, kind and status (ok, failed, skipped), summed over the runs in the run log; for a batch step, ok is its record count.",
        )?;
        // Dry and real runs of a step come as two rows: one series.
        let mut items: Vec<(StepKey, [u64; 3])> = Vec::new();
        for s in &f.steps {
            let key = (s.workflow.as_str(), s.step_id.as_str(), s.kind.as_str());
            match items.last_mut() {
                Some((k, v)) if *k == key => (v[0], v[1], v[2]) = (v[0] + s.ok, v[1] + s.failed, v[2] + s.skipped),
                _ => items.push((key, [s.ok, s.failed, s.skipped])),
            }
        }
        for ((workflow, step, kind), v) in &items {
            for (status, n) in [("ok", v[0]), ("failed", v[1]), ("skipped", v[2])] {
                sample(&mut m, [("workflow", workflow), ("step", step), ("kind", kind), ("status", status)], n)?;
            }
        }
        self.deliveries(&mut enc, f, "send_email", "cxflow_emails", "sent", "Emails per send_email step: sent, failed, and uncertain (claimed by a process that stopped before it knew; `cxflow resolve` settles them); dry runs left out.")?;
        self.deliveries(&mut enc, f, "browser", "cxflow_portal_submissions", "submitted", "Portal form submissions per browser step: submitted, failed, and uncertain (`cxflow resolve` settles them); dry runs left out.")?;

        let mut m = gauge(&mut enc, "cxflow_deliveries_uncertain", "Delivery keys (email, portal, digest) left `sending` by a process that is gone, per workflow, step and kind: they need `cxflow resolve`.")?;
        for p in f.pending.iter().filter(|p| p.uncertain > 0) {
            sample(&mut m, [("workflow", p.workflow.as_str()), ("step", &p.step_id), ("kind", &p.kind)], p.uncertain)?;
        }

        let mut m = gauge(&mut enc, "cxflow_fires_skipped", "Skipped fires in the run log, per workflow and reason (business_days, holiday, overlap, missed, invalid_file, removed, shutdown, other).")?;
        for s in &f.skipped_fires {
            sample(&mut m, [("workflow", s.workflow.as_str()), ("reason", &s.reason)], s.count)?;
        }
        Ok(())
    }
}

impl LogCollector {
    /// One family for the steps of `kind`: `done` (its ok count), failed, and uncertain keys.
    fn deliveries(
        &self,
        enc: &mut DescriptorEncoder,
        f: &MetricFigures,
        kind: &str,
        name: &str,
        done: &str,
        help: &str,
    ) -> Result<(), Error> {
        // (workflow, step) → (done, failed, uncertain), in the steps' order.
        let mut rows: Vec<((&str, &str), [u64; 3])> = Vec::new();
        for s in f.steps.iter().filter(|s| s.kind == kind && !s.dry_run) {
            rows.push(((s.workflow.as_str(), s.step_id.as_str()), [s.ok, s.failed, 0]));
        }
        for p in f.pending.iter().filter(|p| p.kind == kind && p.uncertain > 0) {
            match rows.iter_mut().find(|(k, _)| *k == (p.workflow.as_str(), p.step_id.as_str())) {
                Some((_, v)) => v[2] += p.uncertain,
                None => rows.push(((p.workflow.as_str(), p.step_id.as_str()), [0, 0, p.uncertain])),
            }
        }
        let mut m = gauge(enc, name, help)?;
        for ((workflow, step), v) in &rows {
            for (result, n) in [(done, v[0]), ("failed", v[1]), ("uncertain", v[2])] {
                sample(&mut m, [("workflow", workflow), ("step", step), ("result", result)], n)?;
            }
        }
        Ok(())
    }
}
