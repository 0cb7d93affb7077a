//! Running a `route` step: load the ids routed before, stream the input through the router on
//! blocking threads while routed ids are written to the run log, then build one output record
//! per team (see `output.rs`).

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use futures::StreamExt;
use serde_json::{json, Value};

use super::bucket::{Bucket, Limits};
use super::compile::{compile, CompileInput, RuleSet};
use super::output::{deliver, TeamRecord};
use super::parallel::{route_csv_parallel, Setup, ID_BATCH};
use super::plan::Planned;
use super::router::{RecordError, RouteCounts, Router};
use super::seen::{IdBatch, IdBatcher, IdSink, SeenIds};
use super::source::MapRows;
use crate::engine::log::{DigestFigures, IdsSender};
use crate::engine::records::complete_lines;
use crate::engine::{BatchCx, BatchOutcome, BatchStep, RecordSource};
use crate::steps::RunEnv;

/// What routing produced, detached from the rules it borrowed.
pub(super) struct Routed {
    pub buckets: Vec<Bucket>,
    pub counts: RouteCounts,
    pub errors: Vec<RecordError>,
    pub missing_columns: Vec<String>,
}

impl Routed {
    fn from(r: Router<'_>, missing_columns: Vec<String>) -> Routed {
        Routed { buckets: r.buckets, counts: r.counts, errors: r.errors, missing_columns }
    }
}

#[async_trait]
impl BatchStep for Planned {
    fn input(&self) -> Option<&str> {
        Some(&self.input)
    }

    async fn run(&self, input: RecordSource, cx: &BatchCx<'_>) -> anyhow::Result<BatchOutcome> {
        run(self, input, cx).await
    }
}

async fn run(p: &Planned, input: RecordSource, cx: &BatchCx<'_>) -> anyhow::Result<BatchOutcome> {
    let env = cx.run;
    let log = cx.route_log();
    let as_of = p.as_of.unwrap_or_else(|| chrono::Utc::now().timestamp());
    let rules = Arc::new(
        compile(&CompileInput {
            teams: &p.teams,
            teams_path: "teams",
            fields: &p.fields,
            unmatched: p.unmatched.as_deref(),
            unmatched_path: "unmatched",
            as_of,
        })
        .map_err(|e| anyhow::anyhow!("invalid routing rules: {}", e.first().map_or("", |e| e.message.as_str())))?,
    );
    let seen = if p.reroute { None } else { log.routed_ids().await?.map(|j| Arc::new(SeenIds::from_joined(j))) };
    let (writer, ids) = if env.dry_run {
        (None, None)
    } else {
        let (w, s) = log.writer();
        (Some(w), Some(s))
    };
    let limits =
        Limits { urgent: p.digest.urgent_limit, sample: p.digest.sample_size, keywords: p.digest.keywords, breakdown: p.digest.breakdown };
    let routed = route_blocking(input, rules.clone(), p.mode, limits, seen, ids, env).await;
    let routed = match routed {
        Ok(r) => r,
        Err(e) => {
            // Dropping the writer rolls its transaction back: nothing is remembered as routed.
            drop(writer);
            return Err(e);
        }
    };
    for c in &routed.missing_columns {
        if rules.required.iter().any(|&s| rules.fields.names[s] == *c) {
            tracing::warn!(step = %p.step_id, "the input has no column `{c}`, which a routing rule names: every record will be an error");
        }
    }
    for e in &routed.errors {
        tracing::warn!(step = %p.step_id, record = %env.secrets.redact(&e.record), "{}", env.secrets.redact(&e.message));
    }
    if routed.counts.errors > routed.errors.len() as u64 {
        tracing::warn!(step = %p.step_id, "{} more record errors not shown", routed.counts.errors - routed.errors.len() as u64);
    }

    let mut teams = Vec::new();
    for (i, team) in rules.teams.iter().enumerate() {
        let b = &routed.buckets[i];
        if b.count == 0 && !p.digest.include_empty {
            continue;
        }
        let previous = log.previous_digest(&team.name).await?;
        teams.push(TeamRecord::new(team, b, &limits, previous, p.digest.chart));
    }
    if let Some(w) = writer {
        let figures = rules
            .teams
            .iter()
            .zip(&routed.buckets)
            .filter(|(_, b)| b.count > 0 || p.digest.include_empty)
            .map(|(t, b)| DigestFigures {
                team: t.name.clone(),
                count: b.count,
                urgent: b.urgent_count,
                rated: b.rated,
                avg_rating: b.avg_rating(),
                csat: b.csat(),
            })
            .collect();
        w.finish(figures).await.context("cannot record routed feedback in the run log")?;
    }
    let run_ctx = json!({
        "id": env.run_id,
        "workflow": env.workflow,
        "step": p.step_id,
        "as_of": chrono::DateTime::from_timestamp(as_of, 0).map(|t| t.to_rfc3339()).unwrap_or_default(),
    });
    let (records, artifacts) = deliver(p, cx, teams, &run_ctx).await?;
    let summary = summary(&routed, &records, env);
    // Routed records count as ok, records that could not be routed (a missing field) as failed,
    // and so does each digest whose webhook failed or may not have arrived: the step is then
    // `partial`, never green over a team that did not get its digest.
    let hooks_failed = records.iter().filter(|t| matches!(t["webhook"]["status"].as_str(), Some("failed" | "uncertain"))).count() as u64;
    let (ok, failed) = (routed.counts.routed, routed.counts.errors + hooks_failed);
    Ok(BatchOutcome { records: RecordSource::Values(Arc::new(records)), output: summary, ok, failed, artifacts })
}

fn summary(r: &Routed, records: &[Value], env: &RunEnv) -> Value {
    let teams: Vec<Value> = records
        .iter()
        .map(|t| {
            json!({
                "team": t["team"]["name"],
                "count": t["count"],
                "urgent": t["urgent_count"],
                "files": t["files"],
                "webhook": t["webhook"],
            })
        })
        .collect();
    let errors: Vec<Value> =
        r.errors.iter().map(|e| json!({"record": env.secrets.redact(&e.record), "error": env.secrets.redact(&e.message)})).collect();
    let c = &r.counts;
    json!({
        "records": c.records,
        "routed": c.routed,
        "dropped": c.dropped,
        "already_routed": c.already_routed,
        "errors": c.errors,
        "without_id": c.without_id,
        "teams": teams,
        "error_samples": errors,
    })
}

/// Routes on blocking threads: CSV through the parallel typed path, anything else as JSON maps
/// pulled from the async stream.
async fn route_blocking(
    input: RecordSource,
    rules: Arc<RuleSet>,
    mode: super::rules::Mode,
    limits: Limits,
    seen: Option<Arc<SeenIds>>,
    ids: Option<IdsSender>,
    env: &RunEnv,
) -> anyhow::Result<Routed> {
    let shutdown = env.shutdown.clone();
    let sink = move || -> Option<IdSink> {
        let tx = ids.clone()?;
        Some(Box::new(move |b: IdBatch| {
            // A failed send means the writer stopped; its error surfaces from `finish`.
            let _ = tx(b.json);
        }))
    };
    match input.csv_file().map(|(p, d, m)| (p.to_path_buf(), d, m)) {
        Some((path, delimiter, max_record)) => {
            tokio::task::spawn_blocking(move || -> anyhow::Result<Routed> {
                let (file, cut_short) = complete_lines(&path)?;
                if cut_short {
                    // Not an error: the ids routed now are remembered, so the next run routes
                    // that line once it is complete.
                    tracing::warn!(
                        "`{}`: the last line has no line end (the file may still be being written); it is left for the next run",
                        path.display()
                    );
                }
                let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
                let cancelled = || shutdown.is_cancelled();
                let source = path.display().to_string();
                let setup = Setup {
                    rules: &rules,
                    mode,
                    limits,
                    seen: seen.as_deref(),
                    sink: &sink,
                    workers,
                    delimiter,
                    max_record,
                    source: &source,
                    cancelled: &cancelled,
                };
                let end = file.limit();
                let (router, info) =
                    route_csv_parallel(file.into_inner(), end, &setup).with_context(|| format!("routing `{}`", path.display()))?;
                Ok(Routed::from(router, info.missing_columns))
            })
            .await?
        }
        None => {
            let mut stream = input.open(env);
            let handle = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || -> anyhow::Result<Routed> {
                let mut router = Router::new(&rules, mode, limits, seen.as_deref(), IdBatcher::new(ID_BATCH, sink()));
                let mut rows = MapRows::new(&rules.fields);
                while let Some(rec) = handle.block_on(stream.next()) {
                    if shutdown.is_cancelled() {
                        anyhow::bail!("cancelled");
                    }
                    // A record the source could not read fails alone, as for any other consumer.
                    match rec {
                        Ok(rec) => rows.route(rec, &mut router),
                        Err(e) => rows.bad(format!("{e:#}"), &mut router),
                    }
                }
                router.ids.flush();
                Ok(Routed::from(router, Vec::new()))
            })
            .await?
        }
    }
}
