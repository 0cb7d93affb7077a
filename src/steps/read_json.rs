//! `read_json`: the records of a JSON file, an array of objects or JSON Lines, streamed from a
//! reader thread.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context};
use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::engine::records::{blocking, open_file, Record, Records, Source};
use crate::engine::{BatchCx, BatchOutcome, BatchStep, RecordSource};
use crate::plan::{PlanCx, TemplateRef};
use crate::spec::kinds::records::FileSource;

type Tx = mpsc::Sender<anyhow::Result<Record>>;

#[derive(Debug)]
pub(crate) struct ReadJson {
    path: TemplateRef,
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
    Some(Box::new(ReadJson { path: cx.template(&ppath, src.path())? }))
}

#[async_trait]
impl BatchStep for ReadJson {
    async fn run(&self, _input: RecordSource, cx: &BatchCx<'_>) -> anyhow::Result<BatchOutcome> {
        let path = cx.path(&self.path)?;
        open_file(&path)?;
        let out = json!({"path": path.display().to_string()});
        Ok(BatchOutcome::source(RecordSource::Source(Arc::new(JsonFile { path })), out))
    }
}

#[derive(Debug)]
struct JsonFile {
    path: PathBuf,
}

impl Source for JsonFile {
    fn open(&self) -> Records {
        let path = self.path.clone();
        blocking(move |tx| read_json(&path, tx))
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

fn read_json(path: &Path, tx: Tx) -> anyhow::Result<()> {
    let mut reader = BufReader::new(open_file(path)?);
    let first = loop {
        let buf = reader.fill_buf()?;
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => break Some(buf[i]),
            None if buf.is_empty() => break None,
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    };
    match first {
        None => Ok(()),
        Some(b'[') => read_json_array(path, reader, tx),
        Some(_) => read_json_lines(path, reader, tx),
    }
}

fn read_json_lines(path: &Path, reader: impl BufRead, tx: Tx) -> anyhow::Result<()> {
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("cannot read `{}`", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let rec = serde_json::from_str::<Value>(&line)
            .map_err(|e| anyhow!("`{}` line {}: {e}", path.display(), i + 1))
            .and_then(|v| object(v, path, i + 1));
        if tx.blocking_send(rec).is_err() {
            break;
        }
    }
    Ok(())
}

fn object(v: Value, path: &Path, n: usize) -> anyhow::Result<Record> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(anyhow!("`{}` record {n} is not a JSON object; each record must be `{{...}}`", path.display())),
    }
}

/// Stream the elements of a top-level JSON array one by one.
fn read_json_array(path: &Path, reader: impl Read, tx: Tx) -> anyhow::Result<()> {
    use serde::de::{Deserializer, SeqAccess, Visitor};
    struct Each<'a> {
        tx: &'a Tx,
        path: &'a Path,
    }
    impl<'de> Visitor<'de> for Each<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut n = 0;
            while let Some(v) = seq.next_element::<Value>()? {
                n += 1;
                if self.tx.blocking_send(object(v, self.path, n)).is_err() {
                    break;
                }
            }
            Ok(())
        }
    }
    let mut de = serde_json::Deserializer::from_reader(reader);
    de.deserialize_seq(Each { tx: &tx, path }).map_err(|e| anyhow!("`{}` line {} column {}: {e}", path.display(), e.line(), e.column()))
}
