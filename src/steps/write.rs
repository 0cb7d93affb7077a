//! `write_csv` and `write_json`: the records of an earlier step (e.g. confirmation ids) to a file.
//! Written to a temporary file first and renamed, so a crash never leaves half a report.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use futures::StreamExt;
use serde_json::Value;

use async_trait::async_trait;
use serde_json::json;

use super::RunEnv;
use crate::engine::{Artifact, BatchCx, BatchOutcome, BatchStep, RecordSource};
use crate::plan::{PlanCx, TemplateRef};
use crate::spec::kinds::records::WriteSpec;

#[derive(Debug)]
pub struct WritePlan {
    pub from: String,
    pub path: TemplateRef,
    pub columns: Option<Vec<String>>,
    pub lines: bool,
    csv: bool,
}

pub(crate) fn plan_csv(raw: &serde_yaml::Value, kpath: &str, cx: &mut PlanCx) -> Option<Box<dyn BatchStep>> {
    plan(raw, kpath, true, cx)
}

pub(crate) fn plan_json(raw: &serde_yaml::Value, kpath: &str, cx: &mut PlanCx) -> Option<Box<dyn BatchStep>> {
    plan(raw, kpath, false, cx)
}

fn plan(raw: &serde_yaml::Value, kpath: &str, csv: bool, cx: &mut PlanCx) -> Option<Box<dyn BatchStep>> {
    let w: WriteSpec = cx.spec(raw, kpath)?;
    let from_ok = cx.require_earlier_step(&format!("{kpath}.from"), &w.from);
    cx.forbid_secrets(&format!("{kpath}.path"), &w.path, "an output path");
    let path = cx.template(&format!("{kpath}.path"), &w.path);
    if csv && w.lines.is_some() {
        cx.error_at_key(&format!("{kpath}.lines"), "`lines` applies to `write_json` only", Some("remove it".into()));
    }
    if !from_ok {
        return None;
    }
    Some(Box::new(WritePlan { from: w.from.clone(), path: path?, columns: w.columns.clone(), lines: w.lines.unwrap_or(false), csv }))
}

#[async_trait]
impl BatchStep for WritePlan {
    fn input(&self) -> Option<&str> {
        Some(&self.from)
    }

    async fn run(&self, input: RecordSource, cx: &BatchCx<'_>) -> anyhow::Result<BatchOutcome> {
        let p = cx.run.templates.render(&self.path, cx.ctx).context("cannot render the path")?;
        let path = cx.run.resolve(&p);
        let n = write(&input, &path, self.csv, self, cx.run).await?;
        let artifacts = match cx.run.dry_run {
            true => Vec::new(),
            false => vec![Artifact::new(if self.csv { "csv" } else { "json" }, path.clone())],
        };
        let output = json!({"path": path.display().to_string(), "count": n});
        Ok(BatchOutcome { records: RecordSource::Empty, output, ok: n, failed: 0, artifacts })
    }
}

/// Write all records of `input` to `path`; returns how many. In a dry run nothing is written.
pub async fn write(input: &RecordSource, path: &Path, csv: bool, w: &WritePlan, env: &RunEnv) -> anyhow::Result<u64> {
    let mut records = input.open(env);
    let tmp = path.with_extension("cxflow-tmp");
    let mut sink: Option<Sink> = None;
    let mut n = 0u64;
    while let Some(rec) = records.next().await {
        let rec = rec.with_context(|| format!("cannot read the records of step `{}`", w.from))?;
        let rec = env.secrets.redact_value(&Value::Object(rec));
        n += 1;
        if env.dry_run {
            continue;
        }
        if sink.is_none() {
            sink = Some(Sink::new(create(path, &tmp)?, csv, w, &rec)?);
        }
        if let Some(s) = sink.as_mut() {
            s.write(&rec)?;
        }
    }
    if env.dry_run {
        return Ok(n);
    }
    let sink = match sink {
        Some(s) => s,
        // No records: still an (empty) file, so the next step or person finds the report.
        None => Sink::new(create(path, &tmp)?, csv, w, &Value::Null)?,
    };
    sink.finish()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot move the finished file to `{}`", path.display()))?;
    Ok(n)
}

/// The temporary file `tmp` for `path`, with `path`'s folder created if missing.
fn create(path: &Path, tmp: &Path) -> anyhow::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create folder `{}`", dir.display()))?;
    }
    std::fs::File::create(tmp).with_context(|| format!("cannot create `{}`", tmp.display()))
}

enum Sink {
    Csv { out: csv::Writer<std::fs::File>, columns: Vec<String> },
    Json { out: std::io::BufWriter<std::fs::File>, lines: bool, first: bool },
}

impl Sink {
    fn new(file: std::fs::File, csv: bool, w: &WritePlan, first: &Value) -> anyhow::Result<Sink> {
        if csv {
            let columns = w.columns.clone().unwrap_or_else(|| first.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default());
            let mut out = csv::Writer::from_writer(file);
            // No columns (no records and none named): an empty file, not a line holding `""`.
            if !columns.is_empty() {
                out.write_record(&columns)?;
            }
            Ok(Sink::Csv { out, columns })
        } else {
            let mut out = std::io::BufWriter::new(file);
            if !w.lines {
                out.write_all(b"[")?;
            }
            Ok(Sink::Json { out, lines: w.lines, first: true })
        }
    }

    fn write(&mut self, rec: &Value) -> anyhow::Result<()> {
        match self {
            Sink::Csv { out, columns } => {
                let row: Vec<String> = columns.iter().map(|c| cell(rec.get(c))).collect();
                out.write_record(&row)?;
            }
            Sink::Json { out, lines, first } => {
                if *lines {
                    serde_json::to_writer(&mut *out, rec)?;
                    out.write_all(b"\n")?;
                } else {
                    if !*first {
                        out.write_all(b",")?;
                    }
                    out.write_all(b"\n  ")?;
                    serde_json::to_writer(&mut *out, rec)?;
                }
                *first = false;
            }
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Sink::Csv { mut out, .. } => out.flush()?,
            Sink::Json { mut out, lines, .. } => {
                if !lines {
                    out.write_all(b"\n]\n")?;
                }
                out.flush()?;
            }
        }
        Ok(())
    }
}

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}
