//! Streams of records between steps. A source step's output is a description of where its
//! records are (a file, a query, the run log), opened lazily by whichever step consumes it,
//! so a million-row CSV flows through without being held in memory.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::steps::RunEnv;

pub type Record = Map<String, Value>;
pub type Records = BoxStream<'static, anyhow::Result<Record>>;

#[derive(Debug, Clone)]
pub enum RecordSource {
    Csv { path: PathBuf, delimiter: u8 },
    Json { path: PathBuf },
    Sql { url: String, query: String },
    /// Outputs of the successful items of an earlier per-item step, from the run log.
    Items { run_id: i64, step_id: String },
    Values(Arc<Vec<Value>>),
    /// A step that was skipped by `when:` has no records.
    Empty,
}

/// How many records may wait between a reader and the step consuming them.
const BUFFER: usize = 256;

impl RecordSource {
    pub fn open(&self, env: &RunEnv) -> Records {
        match self.clone() {
            RecordSource::Csv { path, delimiter } => blocking(move |tx| super::sources::read_csv(&path, delimiter, tx)),
            RecordSource::Json { path } => blocking(move |tx| super::sources::read_json(&path, tx)),
            RecordSource::Sql { url, query } => super::sources::read_sql(url, query),
            RecordSource::Items { run_id, step_id } => env
                .store
                .item_outputs(run_id, &step_id)
                .map(|r| {
                    let text = r?.unwrap_or_else(|| "{}".into());
                    match serde_json::from_str(&text)? {
                        Value::Object(m) => Ok(m),
                        other => Ok(Map::from_iter([("value".to_string(), other)])),
                    }
                })
                .boxed(),
            RecordSource::Values(v) => {
                let items: Vec<anyhow::Result<Record>> = v.iter().map(|x| as_record(x.clone(), "value")).collect();
                futures::stream::iter(items).boxed()
            }
            RecordSource::Empty => futures::stream::empty().boxed(),
        }
    }

    /// A cheap estimate of the number of records, for progress bars.
    pub fn count_hint(&self) -> Option<u64> {
        match self {
            RecordSource::Csv { path, .. } => off_the_runtime(|| csv_lines(path)).map(|n| n.saturating_sub(1)),
            RecordSource::Values(v) => Some(v.len() as u64),
            RecordSource::Empty => Some(0),
            _ => None,
        }
    }

    /// Where the records come from, for messages.
    pub fn describe(&self) -> String {
        match self {
            RecordSource::Csv { path, .. } | RecordSource::Json { path } => path.display().to_string(),
            RecordSource::Sql { query, .. } => format!("query `{query}`"),
            RecordSource::Items { step_id, .. } => format!("outputs of step `{step_id}`"),
            RecordSource::Values(_) => "computed records".into(),
            RecordSource::Empty => "a skipped step".into(),
        }
    }
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

/// Lines in a file, counted in fixed-size chunks: the hint must not hold a large input in memory.
fn csv_lines(path: &std::path::Path) -> Option<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            // A last line without a newline still counts.
            return Some(lines + u64::from(last != b'\n'));
        }
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
        last = buf[n - 1];
    }
}

/// A JSON value as a record; anything but an object is wrapped as `{field: value}`.
pub fn as_record(v: Value, field: &str) -> anyhow::Result<Record> {
    Ok(match v {
        Value::Object(m) => m,
        other => Map::from_iter([(field.to_string(), other)]),
    })
}

/// Run a blocking reader on its own thread, feeding a bounded channel (backpressure keeps memory flat).
fn blocking<F>(read: F) -> Records
where
    F: FnOnce(mpsc::Sender<anyhow::Result<Record>>) -> anyhow::Result<()> + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel(BUFFER);
    tokio::task::spawn_blocking(move || {
        let err_tx = tx.clone();
        if let Err(e) = read(tx) {
            let _ = err_tx.blocking_send(Err(e));
        }
    });
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// The file could not be opened at all: the whole step fails, not an item.
#[derive(Debug, thiserror::Error)]
// The io error is part of the message, not a `source`: as both, `{:#}` printed it twice.
#[error("cannot open `{path}`: {error}")]
pub struct OpenError {
    pub path: String,
    pub error: std::io::Error,
}

pub(crate) fn open_file(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::open(path)
        .map_err(|error| OpenError { path: path.display().to_string(), error })
        .context("check the path (relative paths start at the project folder)")
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
                let src = RecordSource::Csv { path: p.clone(), delimiter: b',' };
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
        assert_eq!(RecordSource::Csv { path: p, delimiter: b',' }.count_hint(), Some(1));
    }

    #[test]
    fn count_hint_counts_records_with_or_without_a_final_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        for (text, want) in [("id\n1\n2\n", 2), ("id\n1\n2", 2), ("id\n", 0), ("", 0)] {
            std::fs::write(&p, text).unwrap();
            let src = RecordSource::Csv { path: p.clone(), delimiter: b',' };
            assert_eq!(src.count_hint(), Some(want), "{text:?}");
        }
    }
}
