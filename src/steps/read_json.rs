//! `read_json`: the records of a JSON file, an array of objects or JSON Lines, streamed from a
//! reader thread. Each record is cut out of the file before it is parsed (`split.rs`), so one
//! over the record size limit, or one that does not parse, fails alone.

mod split;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context};
use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use self::split::{Cut, Elements, Lines};
use crate::engine::records::{blocking, open_file, BadRecord, Record, Records, Source};
use crate::engine::{BatchCx, BatchOutcome, BatchStep, RecordSource};
use crate::plan::paths::PathTemplate;
use crate::plan::PlanCx;
use crate::spec::kinds::records::FileSource;

type Tx = mpsc::Sender<anyhow::Result<Record>>;

#[derive(Debug)]
pub(crate) struct ReadJson {
    path: PathTemplate,
}

pub(crate) fn plan(raw: &crate::spec::Node, kpath: &str, cx: &mut PlanCx) -> Option<Box<dyn BatchStep>> {
    let src: FileSource = cx.spec(raw, kpath)?;
    let ppath = match &src {
        FileSource::Path(_) => kpath.to_string(),
        _ => format!("{kpath}.path"),
    };
    if src.delimiter().is_some() {
        cx.error_at_key(&format!("{kpath}.delimiter"), "`delimiter` applies to CSV only", Some("remove it".into()));
    }
    cx.check_input_file(&ppath, src.path());
    Some(Box::new(ReadJson { path: cx.path_template(&ppath, src.path())? }))
}

#[async_trait]
impl BatchStep for ReadJson {
    async fn run(&self, _input: RecordSource, cx: &BatchCx<'_>) -> anyhow::Result<BatchOutcome> {
        let path = cx.path(&self.path)?;
        open_file(&path)?;
        let out = json!({"path": path.display().to_string()});
        let max_record = cx.run.config.max_record_bytes;
        Ok(BatchOutcome::source(RecordSource::Source(Arc::new(JsonFile { path, max_record })), out))
    }
}

#[derive(Debug)]
struct JsonFile {
    path: PathBuf,
    max_record: usize,
}

impl Source for JsonFile {
    fn open(&self) -> Records {
        let (path, max) = (self.path.clone(), self.max_record);
        blocking(move |tx| read_json(&path, max, tx))
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

fn read_json(path: &Path, max: usize, tx: Tx) -> anyhow::Result<()> {
    let mut reader = BufReader::with_capacity(1 << 16, open_file(path)?);
    let mut lines_before = 0u64;
    let first = loop {
        let buf = reader.fill_buf().with_context(|| format!("cannot read `{}`", path.display()))?;
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                lines_before += buf[..i].iter().filter(|&&b| b == b'\n').count() as u64;
                break Some(buf[i]);
            }
            None if buf.is_empty() => break None,
            None => {
                let n = buf.len();
                lines_before += buf.iter().filter(|&&b| b == b'\n').count() as u64;
                reader.consume(n);
            }
        }
    };
    match first {
        None => Ok(()),
        Some(b'[') => {
            reader.consume(1);
            let mut elements = Elements::new(reader, max, lines_before);
            send_all(path, max, &tx, |buf| elements.next(buf))
        }
        Some(_) => {
            let mut lines = Lines::new(reader, max);
            send_all(path, max, &tx, |buf| lines.next(buf))
        }
    }
}

/// Parses each record `next` cuts out and sends it; a bad one is sent as its error.
fn send_all(path: &Path, max: usize, tx: &Tx, mut next: impl FnMut(&mut Vec<u8>) -> std::io::Result<Cut>) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    loop {
        let cut = next(&mut buf).with_context(|| format!("cannot read `{}`", path.display()))?;
        let rec = match cut {
            Cut::End => return Ok(()),
            // Blank lines between JSON Lines records are no record.
            Cut::Record { .. } if buf.iter().all(u8::is_ascii_whitespace) => continue,
            Cut::Record { line } => {
                serde_json::from_slice::<Value>(&buf).map_err(|e| parse_error(path, line, &e)).and_then(|v| object(v, path, line))
            }
            Cut::TooLarge { line } => Err(anyhow!(
                "`{}` line {line}: this record is larger than the record size limit ({max} bytes), so it was skipped without being read; \
                     split the data, or raise `max_record_bytes` in cxflow.yaml",
                path.display()
            )),
            Cut::Unclosed { line } => {
                let _ = tx.blocking_send(Err(BadRecord::wrap(anyhow!(
                    "`{}` line {line}: the file ends inside this record (a bracket or quote is not closed); close the array",
                    path.display()
                ))));
                return Ok(());
            }
        };
        if tx.blocking_send(rec.map_err(BadRecord::wrap)).is_err() {
            return Ok(()); // the consumer stopped
        }
    }
}

/// serde's message, at the line in the file (serde counts from the record's first line).
fn parse_error(path: &Path, line: u64, e: &serde_json::Error) -> anyhow::Error {
    let msg = e.to_string();
    let msg = msg.rsplit_once(" at line ").map_or(msg.as_str(), |(m, _)| m);
    anyhow!("`{}` line {}: {msg}", path.display(), line + e.line().saturating_sub(1) as u64)
}

fn object(v: Value, path: &Path, line: u64) -> anyhow::Result<Record> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(anyhow!("`{}` line {line}: this record is not a JSON object; each record must be `{{...}}`", path.display())),
    }
}
