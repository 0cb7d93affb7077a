//! `read_csv`: the records of a CSV file, streamed from a reader thread (a million rows never
//! sit in memory). Its header is read while planning, so templates over its records are
//! checked before the run.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context};
use async_trait::async_trait;
use serde_json::{json, Number, Value};
use tokio::sync::mpsc;

use super::csv_rows::{count_records, CsvRows, Problem, Row};
use crate::engine::records::{blocking, complete_lines, open_file, BadRecord, Record, Records, Source};
use crate::engine::{BatchCx, BatchOutcome, BatchStep, RecordSource};
use crate::plan::paths::PathTemplate;
use crate::plan::PlanCx;
use crate::spec::kinds::records::FileSource;

type Tx = mpsc::Sender<anyhow::Result<Record>>;

#[derive(Debug)]
pub(crate) struct ReadCsv {
    path: PathTemplate,
    delimiter: u8,
}

pub(crate) fn plan(raw: &crate::spec::Node, kpath: &str, cx: &mut PlanCx) -> Option<Box<dyn BatchStep>> {
    let src: FileSource = cx.spec(raw, kpath)?;
    let (ppath, dpath) = match &src {
        FileSource::Path(_) => (kpath.to_string(), kpath.to_string()),
        _ => (format!("{kpath}.path"), format!("{kpath}.delimiter")),
    };
    let delimiter = match src.delimiter() {
        None => Some(b','),
        Some(d) if d.len() == 1 => Some(d.as_bytes()[0]),
        Some(d) => {
            cx.error(&dpath, format!("delimiter `{d}` must be one character"), Some("for tabs write `\"\\t\"`".into()));
            None
        }
    };
    cx.check_input_file(&ppath, src.path());
    if let (Some(d), false) = (delimiter, src.path().contains("{{")) {
        if let Some(header) = header(&cx.resolve(src.path()), d, cx.max_record_bytes()) {
            cx.known_fields(src.path(), header);
        }
    }
    let path = cx.path_template(&ppath, src.path())?;
    Some(Box::new(ReadCsv { path, delimiter: delimiter.unwrap_or(b',') }))
}

/// The header of a CSV file that is there: templates over its records can then be checked
/// before the run, not at the first record.
fn header(path: &Path, delimiter: u8, max: usize) -> Option<Vec<String>> {
    let file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let mut rec = csv::ByteRecord::new();
    match CsvRows::new(file, len, delimiter, max).next(&mut rec).ok()? {
        Row::Record { .. } => rec.iter().map(|h| std::str::from_utf8(h).ok().map(str::to_string)).collect(),
        _ => None,
    }
}

#[async_trait]
impl BatchStep for ReadCsv {
    async fn run(&self, _input: RecordSource, cx: &BatchCx<'_>) -> anyhow::Result<BatchOutcome> {
        let path = cx.path(&self.path)?;
        open_file(&path)?;
        let out = json!({"path": path.display().to_string()});
        let max_record = cx.run.config.max_record_bytes;
        Ok(BatchOutcome::source(RecordSource::Source(Arc::new(CsvFile { path, delimiter: self.delimiter, max_record })), out))
    }
}

#[derive(Debug)]
pub(crate) struct CsvFile {
    path: PathBuf,
    delimiter: u8,
    max_record: usize,
}

impl Source for CsvFile {
    fn open(&self) -> Records {
        let (path, delimiter, max) = (self.path.clone(), self.delimiter, self.max_record);
        blocking(move |tx| read_csv(&path, delimiter, max, tx))
    }

    fn count_hint(&self) -> Option<u64> {
        off_the_runtime(|| count_records(&self.path, self.delimiter).ok())
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn csv_file(&self) -> Option<(&Path, u8, usize)> {
        Some((&self.path, self.delimiter, self.max_record))
    }
}

/// A CSV field as JSON: integers and booleans that print back exactly as written become numbers
/// and booleans (so `{{gt item.rating 3}}` compares numbers); everything else, including `007`
/// and `4.50`, stays a string so nothing is lost.
pub fn csv_value(s: &str) -> Value {
    if let Ok(i) = s.parse::<i64>() {
        if i.to_string() == s {
            return Value::Number(i.into());
        }
    }
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() && f.to_string() == s {
            if let Some(n) = Number::from_f64(f) {
                return Value::Number(n);
            }
        }
    }
    match s {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(s.to_string()),
    }
}

fn read_csv(path: &Path, delimiter: u8, max: usize, tx: Tx) -> anyhow::Result<()> {
    let (file, cut_short) = complete_lines(path)?;
    let end = file.limit();
    let mut rows = CsvRows::new(file.into_inner(), end, delimiter, max);
    let read_error = || format!("cannot read `{}`", path.display());
    let mut rec = csv::ByteRecord::new();
    let headers: Vec<String> = match rows.next(&mut rec).with_context(read_error)? {
        Row::Record { .. } => match rec.iter().map(|h| std::str::from_utf8(h).map(str::to_string)).collect() {
            Ok(h) => h,
            Err(_) => anyhow::bail!("`{}` line 1: the header row is not valid UTF-8; save the file as UTF-8", path.display()),
        },
        Row::Bad { line, problem } => anyhow::bail!("`{}` line {line}: cannot read the header row: {problem}", path.display()),
        Row::End => return Ok(()),
    };
    loop {
        let msg = match rows.next(&mut rec).with_context(read_error)? {
            // A record that may be half written is not used: it fails, visibly, so the run is
            // not green and a resume after the file is complete picks it up.
            Row::End if cut_short => {
                let line = rows.next_line();
                let _ = tx.blocking_send(Err(BadRecord::wrap(anyhow!(
                    "`{}` line {line}: this last line has no line end, so the file may still be being written; it was left out. \
                     If the file is complete, end it with a line break, then resume the run",
                    path.display()
                ))));
                return Ok(());
            }
            Row::End => return Ok(()),
            Row::Record { line } => record(&headers, &rec).map_err(|p| anyhow!("`{}` line {line}: {p}", path.display())),
            Row::Bad { line, problem } => Err(anyhow!("`{}` line {line}: {problem}", path.display())),
        };
        if tx.blocking_send(msg.map_err(BadRecord::wrap)).is_err() {
            return Ok(()); // the consumer stopped (on_error: stop, or shutdown)
        }
    }
}

fn record(headers: &[String], rec: &csv::ByteRecord) -> Result<Record, Problem> {
    headers
        .iter()
        .zip(rec.iter())
        .map(|(h, v)| std::str::from_utf8(v).map(|v| (h.clone(), csv_value(v))).map_err(|_| Problem::Utf8))
        .collect()
}

/// Runs blocking file work (reading a whole CSV) without stalling the runtime: on a worker of
/// the multi-threaded runtime, `block_in_place` hands that worker's other tasks to another thread
/// first. A current-thread runtime has no other thread to hand them to, and outside a runtime
/// there is nothing to stall: there it simply runs.
fn off_the_runtime<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_hint_on_the_runtime_leaves_its_worker_free() {
        // The CSV is a FIFO fed by another task of the same one-worker runtime, which only gets
        // to run if counting handed the worker on instead of blocking it.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        assert!(std::process::Command::new("mkfifo").arg(&p).status().unwrap().success());
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            let n = rt.block_on(async move {
                let (started_tx, started_rx) = tokio::sync::oneshot::channel();
                let src = CsvFile { path: p.clone(), delimiter: b',', max_record: 1 << 20 };
                let count = tokio::spawn(async move {
                    started_tx.send(()).unwrap();
                    src.count_hint()
                });
                let feed = tokio::spawn(async move {
                    started_rx.await.unwrap();
                    tokio::fs::write(&p, "id\n1\n2\n3\n").await.unwrap();
                });
                feed.await.unwrap();
                count.await.unwrap()
            });
            let _ = done_tx.send(n);
        });
        let n = done_rx.recv_timeout(std::time::Duration::from_secs(60)).expect("count_hint blocked the runtime's only worker");
        assert_eq!(n, Some(3));
    }

    #[tokio::test]
    async fn count_hint_on_a_current_thread_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        std::fs::write(&p, "id\n1\n").unwrap();
        assert_eq!(CsvFile { path: p, delimiter: b',', max_record: 1 << 20 }.count_hint(), Some(1));
    }

    #[test]
    fn count_hint_counts_records_with_or_without_a_final_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        for (text, want) in [("id\n1\n2\n", 2), ("id\n1\n2", 2), ("id\n", 0), ("", 0)] {
            std::fs::write(&p, text).unwrap();
            let src = CsvFile { path: p.clone(), delimiter: b',', max_record: 1 << 20 };
            assert_eq!(src.count_hint(), Some(want), "{text:?}");
        }
    }
    #[test]
    fn csv_values_are_lossless() {
        assert_eq!(csv_value("42"), Value::from(42));
        assert_eq!(csv_value("007"), Value::from("007"));
        assert_eq!(csv_value("4.5"), Value::from(4.5));
        assert_eq!(csv_value("4.50"), Value::from("4.50"));
        assert_eq!(csv_value("+1"), Value::from("+1"));
        assert_eq!(csv_value("true"), Value::from(true));
        assert_eq!(csv_value(""), Value::from(""));
    }
}
