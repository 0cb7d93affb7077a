//! `write_csv` and `write_json`: the records of an earlier step (e.g. confirmation ids) to a file.
//! Written to a temporary file first (a random name, created exclusively) and renamed, so a crash
//! never leaves half a report and a planted symlink is never written through.
//! The file work runs on a blocking thread fed through a bounded channel, so a slow disk never
//! stalls the runtime's workers; a write that fails or is abandoned removes its temporary file.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use futures::StreamExt;
use serde_json::Value;
use tempfile::NamedTempFile;

use async_trait::async_trait;
use serde_json::json;

use super::RunEnv;
use crate::engine::records::{is_bad_record, BadRecords};
use crate::engine::{Artifact, BatchCx, BatchOutcome, BatchStep, RecordSource};
use crate::plan::paths::PathTemplate;
use crate::plan::PlanCx;
use crate::spec::kinds::records::WriteSpec;

#[derive(Debug)]
pub struct WritePlan {
    pub from: String,
    pub path: PathTemplate,
    pub columns: Option<Vec<String>>,
    pub lines: bool,
    csv: bool,
}

pub(crate) fn plan_csv(raw: &crate::spec::Node, kpath: &str, cx: &mut PlanCx) -> Option<Box<dyn BatchStep>> {
    plan(raw, kpath, true, cx)
}

pub(crate) fn plan_json(raw: &crate::spec::Node, kpath: &str, cx: &mut PlanCx) -> Option<Box<dyn BatchStep>> {
    plan(raw, kpath, false, cx)
}

fn plan(raw: &crate::spec::Node, kpath: &str, csv: bool, cx: &mut PlanCx) -> Option<Box<dyn BatchStep>> {
    let w: WriteSpec = cx.spec(raw, kpath)?;
    let from_ok = cx.require_records(&format!("{kpath}.from"), &w.from);
    cx.forbid_secrets(&format!("{kpath}.path"), &w.path, "an output path");
    let path = cx.path_template(&format!("{kpath}.path"), &w.path);
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

    fn produces_records(&self) -> bool {
        false
    }

    async fn run(&self, input: RecordSource, cx: &BatchCx<'_>) -> anyhow::Result<BatchOutcome> {
        let path = cx.path(&self.path)?;
        let (n, failed) = write(&input, &path, self.csv, self, cx.run, cx.bad_records()).await?;
        let artifacts = match cx.run.dry_run {
            true => Vec::new(),
            false => vec![Artifact::new(if self.csv { "csv" } else { "json" }, path.clone())],
        };
        let output = json!({"path": path.display().to_string(), "count": n});
        Ok(BatchOutcome { records: RecordSource::Empty, output, ok: n, failed, artifacts })
    }
}

/// Write the records of `input` to `path`; returns how many were written and how many the input
/// could not give (a row that does not parse). Those fail alone, as items in `bad`, like in a
/// per-item step: the file holds the others. In a dry run nothing is written.
///
/// The file is written on a blocking thread that pulls the records itself: a hand-off through
/// the runtime cost a thread wake-up per record (twice the futex calls of a direct read).
pub async fn write(
    input: &RecordSource,
    path: &Path,
    csv: bool,
    w: &WritePlan,
    env: &RunEnv,
    mut bad: BadRecords,
) -> anyhow::Result<(u64, u64)> {
    let mut records = input.open(env);
    let read_context = format!("cannot read the records of step `{}`", w.from);
    if env.dry_run {
        let (mut n, mut seq) = (0u64, 0u64);
        while let Some(rec) = records.next().await {
            seq += 1;
            match rec {
                Ok(_) => n += 1,
                Err(e) if is_bad_record(&e) => bad.add(seq, &e).await,
                Err(e) => {
                    bad.finish().await;
                    return Err(e.context(read_context));
                }
            }
        }
        return Ok((n, bad.finish().await));
    }
    let (path, format) = (path.to_path_buf(), Format { csv, columns: w.columns.clone(), lines: w.lines });
    let secrets = env.secrets.clone();
    let handle = tokio::runtime::Handle::current();
    let (written, n, bad, source_error) = tokio::task::spawn_blocking(move || {
        // `seq` counts bad records too, so an item key `#17` is the 17th record of the input.
        let (mut n, mut seq, mut source_error) = (0u64, 0u64, None);
        let mut next = || loop {
            seq += 1;
            match handle.block_on(records.next()) {
                Some(Ok(rec)) => {
                    n += 1;
                    return Some(Msg::Record(Value::Object(rec)));
                }
                Some(Err(e)) if is_bad_record(&e) => handle.block_on(bad.add(seq, &e)),
                // The source itself failed: not `End`, so the writer drops the temporary file.
                Some(Err(e)) => {
                    source_error = Some(e.context(read_context.clone()));
                    return None;
                }
                None => return Some(Msg::End),
            }
        };
        let written = write_file(&mut next, &path, &format, &|v| secrets.redact_value(v));
        (written, n, bad, source_error)
    })
    .await
    .context("the file writer stopped unexpectedly")?;
    let failed = bad.finish().await;
    if let Some(e) = source_error {
        return Err(e);
    }
    written?;
    Ok((n, failed))
}

enum Msg {
    Record(Value),
    /// Every record was sent: finish the file and move it into place.
    End,
}

/// How records are laid out in the file.
struct Format {
    csv: bool,
    columns: Option<Vec<String>>,
    lines: bool,
}

/// The writer thread: creates the file at the first record (or at the end when there is none),
/// writes each record as it arrives, and at `End` flushes it and renames it to `path`. If the
/// channel closes before `End`, the temporary file is removed.
/// Writes what `next` gives, each record passed through `redact` first; `None` abandons the
/// file (no temporary file is left).
fn write_file(next: &mut dyn FnMut() -> Option<Msg>, path: &Path, format: &Format, redact: &dyn Fn(&Value) -> Value) -> anyhow::Result<()> {
    // The temporary file is removed when dropped unless it was persisted: whatever stops a write
    // (an error, reading failing partway, the run cancelled) leaves nothing behind.
    let mut sink: Option<(Sink, NamedTempFile)> = None;
    loop {
        match next() {
            Some(Msg::Record(rec)) => {
                let rec = redact(&rec);
                if sink.is_none() {
                    let (file, tmp) = create(path)?;
                    sink = Some((Sink::new(file, format, &rec)?, tmp));
                }
                if let Some((s, _)) = sink.as_mut() {
                    s.write(&rec)?;
                }
            }
            Some(Msg::End) => break,
            None => return Ok(()), // abandoned: the temporary file is removed on drop
        }
    }
    let (sink, tmp) = match sink {
        Some(s) => s,
        // No records: still an (empty) file, so the next step or person finds the report.
        None => {
            let (file, tmp) = create(path)?;
            (Sink::new(file, format, &Value::Null)?, tmp)
        }
    };
    sink.finish()?;
    // A rename replaces a symlink at `path` itself, never the file it points to.
    tmp.persist(path).map_err(|e| e.error).with_context(|| format!("cannot move the finished file to `{}`", path.display()))?;
    Ok(())
}

/// A temporary file next to `path` (created with `path`'s folder if missing), and a handle to
/// write it through. Its name is random and it is created exclusively (`O_EXCL`, which does not
/// follow a symlink): a link planted at a predictable name once made the write overwrite its target.
fn create(path: &Path) -> anyhow::Result<(std::fs::File, NamedTempFile)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create folder `{}`", dir.display()))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".cxflow-tmp")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in `{}`", dir.display()))?;
    let file = tmp.as_file().try_clone().with_context(|| format!("cannot open the temporary file in `{}`", dir.display()))?;
    Ok((file, tmp))
}

// One sink per step run, so the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Sink {
    Csv { out: csv::Writer<std::fs::File>, columns: Vec<String> },
    Json { out: std::io::BufWriter<std::fs::File>, lines: bool, first: bool },
}

impl Sink {
    fn new(file: std::fs::File, w: &Format, first: &Value) -> anyhow::Result<Sink> {
        if w.csv {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn send_all(msgs: Vec<Msg>) -> tokio::sync::mpsc::Receiver<Msg> {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        for m in msgs {
            tx.try_send(m).ok().unwrap();
        }
        rx
    }

    const CSV: Format = Format { csv: true, columns: None, lines: false };

    fn names_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_symlink_planted_at_the_old_temporary_name_is_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim.txt");
        std::fs::write(&victim, "precious").unwrap();
        std::fs::create_dir(dir.path().join("out")).unwrap();
        let path = dir.path().join("out/r.csv");
        // The name the writer used to create with `File::create`, which follows links.
        let planted = path.with_extension("cxflow-tmp");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let mut rx = send_all(vec![Msg::Record(serde_json::json!({"id": 1})), Msg::End]);
        write_file(&mut || rx.blocking_recv(), &path, &CSV, &Value::clone).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(std::fs::read_link(&planted).unwrap(), victim);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "id\n1\n");
        assert_eq!(names_in(&dir.path().join("out")), ["r.csv", "r.cxflow-tmp"]);
    }

    #[test]
    fn end_renames_the_finished_file_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/r.csv");
        let mut rx =
            send_all(vec![Msg::Record(serde_json::json!({"id": 1, "n": "a"})), Msg::Record(serde_json::json!({"id": 2})), Msg::End]);
        write_file(&mut || rx.blocking_recv(), &path, &CSV, &Value::clone).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "id,n\n1,a\n2,\n");
        assert_eq!(names_in(&dir.path().join("out")), ["r.csv"]);
    }

    #[test]
    fn records_that_stop_before_the_end_leave_no_file_and_no_temp_file() {
        // The sender went away without `End`: reading failed partway, or the run was cancelled.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        let mut rx = send_all(vec![Msg::Record(serde_json::json!({"id": 1}))]);
        write_file(&mut || rx.blocking_recv(), &path, &Format { csv: false, columns: None, lines: true }, &Value::clone).unwrap();
        assert!(names_in(dir.path()).is_empty());
    }

    #[test]
    fn a_failed_rename_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        std::fs::create_dir_all(path.join("taken")).unwrap();
        let mut rx = send_all(vec![Msg::Record(serde_json::json!({"id": 1})), Msg::End]);
        let e = write_file(&mut || rx.blocking_recv(), &path, &CSV, &Value::clone).unwrap_err();
        assert!(format!("{e:#}").starts_with("cannot move the finished file to"), "{e:#}");
        assert_eq!(names_in(dir.path()), ["r.csv"], "only the folder that was in the way");
    }
}
