//! Streams of records between steps. A source step's output is a description of where its
//! records are (a file, a query, the run log), opened lazily by whichever step consumes it,
//! so a million-row CSV flows through without being held in memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::contract::RunEnv;
use super::log::{ItemResult, ItemSink, ItemStatus};

pub type Record = Map<String, Value>;
pub type Records = BoxStream<'static, anyhow::Result<Record>>;

/// Records a step kind reads from outside the run (a file, a query), opened lazily by the
/// step that consumes them.
pub trait Source: std::fmt::Debug + Send + Sync {
    fn open(&self) -> Records;
    /// A cheap estimate of the number of records, for progress bars.
    fn count_hint(&self) -> Option<u64> {
        None
    }
    /// Where the records come from, for messages.
    fn describe(&self) -> String;
    /// A CSV file, its delimiter and the record size limit, for consumers with a faster path
    /// over the raw file (routing).
    fn csv_file(&self) -> Option<(&std::path::Path, u8, usize)> {
        None
    }
}

#[derive(Debug, Clone)]
pub enum RecordSource {
    /// Records a source kind describes (`read_csv`, `sql`, ...).
    Source(Arc<dyn Source>),
    /// Outputs of the successful items of an earlier per-item step, from the run log.
    Items {
        run_id: i64,
        step_id: String,
    },
    Values(Arc<Vec<Value>>),
    /// A step that was skipped by `when:`, or one that yields nothing.
    Empty,
}

/// How many records may wait between a reader and the step consuming them.
pub const BUFFER: usize = 256;

impl RecordSource {
    pub fn open(&self, env: &RunEnv) -> Records {
        match self.clone() {
            RecordSource::Source(s) => s.open(),
            RecordSource::Items { run_id, step_id } => env
                .log
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
            RecordSource::Source(s) => s.count_hint(),
            RecordSource::Values(v) => Some(v.len() as u64),
            RecordSource::Empty => Some(0),
            RecordSource::Items { .. } => None,
        }
    }

    /// Where the records come from, for messages.
    pub fn describe(&self) -> String {
        match self {
            RecordSource::Source(s) => s.describe(),
            RecordSource::Items { step_id, .. } => format!("outputs of step `{step_id}`"),
            RecordSource::Values(_) => "computed records".into(),
            RecordSource::Empty => "a skipped step".into(),
        }
    }

    pub fn csv_file(&self) -> Option<(&std::path::Path, u8, usize)> {
        match self {
            RecordSource::Source(s) => s.csv_file(),
            _ => None,
        }
    }
}

/// A JSON value as a record; anything but an object is wrapped as `{field: value}`.
pub fn as_record(v: Value, field: &str) -> anyhow::Result<Record> {
    Ok(match v {
        Value::Object(m) => m,
        other => Map::from_iter([(field.to_string(), other)]),
    })
}

/// The error of one record its source could not give while the source itself goes on (a row
/// that does not parse, one over the size limit, a tail still being written): the consumer fails
/// that record alone. Any other error in a record stream means the source itself failed (a
/// database it cannot reach, a file it cannot read), and a batch step fails with it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadRecord(pub String);

impl BadRecord {
    /// `e` as the error of one bad record (its message kept).
    pub fn wrap(e: anyhow::Error) -> anyhow::Error {
        anyhow::Error::new(BadRecord(format!("{e:#}")))
    }
}

/// Whether `e` is one bad record (`BadRecord`), not a failure of the whole source.
pub fn is_bad_record(e: &anyhow::Error) -> bool {
    e.downcast_ref::<BadRecord>().is_some()
}

/// A record its source could not read (a CSV row that is not UTF-8, a JSON line that does not
/// parse), as the run log keeps it: a failed item of the consuming step, keyed by its position in
/// the stream (`#17`), its error naming the file and line. Per-item steps and batch sinks record
/// it the same way, so a bad row fails alone whichever kind reads it.
pub(super) fn bad_record(env: &RunEnv, step_id: &str, seq: i64, e: &anyhow::Error) -> ItemResult {
    ItemResult {
        run_id: env.run_id,
        step_id: step_id.to_string(),
        key: format!("#{seq}"),
        seq,
        status: ItemStatus::Failed,
        attempts: 0,
        error: Some(env.secrets.redact(&format!("bad record: {e:#}"))),
        output: None,
        claim: None,
    }
}

/// The bad records a batch step met while reading its input, written to the run log as they come
/// (a file of bad rows costs no memory). Take it with `BatchCx::bad_records`; `finish` when done.
pub struct BadRecords {
    env: RunEnv,
    step_id: String,
    sink: Box<dyn ItemSink>,
    count: u64,
    logged: Arc<AtomicU64>,
}

impl BadRecords {
    pub(super) fn new(env: &RunEnv, step_id: &str, logged: Arc<AtomicU64>) -> BadRecords {
        BadRecords { env: env.clone(), step_id: step_id.to_string(), sink: env.log.item_sink(), count: 0, logged }
    }

    /// Record `e`, the error the input gave at position `seq` (1-based, counting good records too).
    pub async fn add(&mut self, seq: u64, e: &anyhow::Error) {
        self.sink.write(bad_record(&self.env, &self.step_id, seq as i64, e)).await;
        self.count += 1;
        self.logged.fetch_add(1, Ordering::Relaxed);
    }

    /// Commit them; returns how many there were. A failed write blows the run's fuse, so the
    /// step ends `failed` with the reason, as in the item loop.
    pub async fn finish(self) -> u64 {
        if self.count > 0 {
            if let Err(e) = self.sink.flush().await {
                self.env.fuse.blow(format!("item results: {e}"));
            }
        }
        self.count
    }
}

/// Run a blocking reader on its own thread, feeding a bounded channel (backpressure keeps memory flat).
pub fn blocking<F>(read: F) -> Records
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

pub fn open_file(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::open(path)
        .map_err(|error| OpenError { path: path.display().to_string(), error })
        .context("check the path (relative paths start at the project folder)")
}

/// A file another program may still be writing ends in a line without its line end (the CSV a
/// nightly export is halfway through). Reading stops at the last complete line: the returned
/// reader ends there, and the flag says a tail was left out. A file with no line end at all
/// (a lone header) is read whole.
pub fn complete_lines(path: &std::path::Path) -> anyhow::Result<(std::io::Take<std::fs::File>, bool)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = open_file(path)?;
    let len = file.metadata().with_context(|| format!("cannot read `{}`", path.display()))?.len();
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    let cut = loop {
        if end == 0 {
            break None;
        }
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk).with_context(|| format!("cannot read `{}`", path.display()))?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            break Some(start + i as u64 + 1);
        }
        end = start;
    };
    file.seek(SeekFrom::Start(0))?;
    Ok(match cut {
        Some(c) => (file.take(c), c < len),
        None => (file.take(len), false),
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    fn read(content: &[u8]) -> (String, bool) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.csv");
        std::fs::write(&p, content).unwrap();
        let (mut r, cut) = super::complete_lines(&p).unwrap();
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        (s, cut)
    }

    #[test]
    fn reading_stops_at_the_last_complete_line() {
        assert_eq!(read(b"a,b\n1,x@y\n2,trunc"), ("a,b\n1,x@y\n".into(), true));
        assert_eq!(read(b"a,b\r\n1,2\r\n"), ("a,b\r\n1,2\r\n".into(), false));
        assert_eq!(read(b"a,b"), ("a,b".into(), false), "a lone header without a line end");
        assert_eq!(read(b""), ("".into(), false));
        // The last line end is further back than one read chunk.
        let mut big = b"h\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', 200_000));
        let (s, cut) = read(&big);
        assert_eq!((s.as_str(), cut), ("h\n", true));
    }
}
