//! Parallel CSV routing: the calling thread parses records into chunks, `workers` threads route
//! them with their own `Router`, and the routers are merged at the end. Regex matching costs
//! several times more than CSV parsing, so this is what makes a second core pay off. Results
//! equal the sequential ones: buckets merge exactly (see `Bucket::merge`), and record order
//! only matters for positions, which travel with each chunk.

use std::io::{Read, Seek};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

use super::bucket::Limits;
use super::compile::RuleSet;
use super::router::Router;
use super::rules::Mode;
use super::seen::{IdBatcher, IdSink, SeenIds};
use super::source::{CsvInfo, CsvLayout, SourceError};
use crate::steps::csv_rows::{is_utf8, CsvRows, Problem, Row};

const CHUNK: usize = 512;
/// Routed ids per batch handed to the run log writer.
pub const ID_BATCH: usize = 5_000;

pub struct Setup<'a> {
    pub rules: &'a RuleSet,
    pub mode: Mode,
    pub limits: Limits,
    pub seen: Option<&'a SeenIds>,
    /// Gives each worker its own sink for routed ids (`None`: ids are not recorded).
    pub sink: &'a (dyn Fn() -> Option<IdSink> + Sync),
    pub workers: usize,
    pub delimiter: u8,
    /// Largest record read, in bytes; a larger one is a record error.
    pub max_record: usize,
    /// The input as named in record errors (its path).
    pub source: &'a str,
    pub cancelled: &'a (dyn Fn() -> bool + Sync),
}

type Chunk = (u64, Vec<csv::ByteRecord>);

/// Routes `input` up to `end` bytes (`u64::MAX`: all of it).
pub fn route_csv_parallel<'a, R: Read + Seek>(input: R, end: u64, s: &Setup<'a>) -> Result<(Router<'a>, CsvInfo), SourceError> {
    let mut rdr = CsvRows::new(input, end, s.delimiter, s.max_record);
    let header = read_header(&mut rdr, s.source)?;
    let (layout, info) = CsvLayout::new(&header, &s.rules.fields);
    let new_router = || Router::new(s.rules, s.mode, s.limits, s.seen, IdBatcher::new(ID_BATCH, (s.sink)()));
    let workers = s.workers.max(1);
    let (work_tx, work_rx) = sync_channel::<Chunk>(workers * 2);
    // Emptied chunks come back so their records' buffers are reused, not reallocated.
    let (back_tx, back_rx) = sync_channel::<Vec<csv::ByteRecord>>(workers * 4);
    let work_rx = Mutex::new(work_rx);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let (work_rx, back_tx, layout) = (&work_rx, back_tx.clone(), &layout);
                let mut router = new_router();
                scope.spawn(move || {
                    worker(work_rx, back_tx, layout, &mut router);
                    router.ids.flush();
                    router
                })
            })
            .collect();
        drop(back_tx);
        // Rows that cannot be read are record errors, kept by a router of their own.
        let mut bad = new_router();
        let read = read_chunks(&mut rdr, work_tx, back_rx, s, &mut bad);
        let mut merged: Option<Router<'a>> = Some(bad);
        for h in handles {
            let r = h.join().map_err(|_| SourceError::Cancelled)?;
            match merged.as_mut() {
                None => merged = Some(r),
                Some(m) => m.merge(r),
            }
        }
        read?;
        Ok((merged.unwrap_or_else(new_router), info))
    })
}

/// The header row; a header that cannot be read fails the step (no record can be read without it).
pub(super) fn read_header<R: Read + Seek>(rdr: &mut CsvRows<R>, source: &str) -> Result<csv::ByteRecord, SourceError> {
    let mut header = csv::ByteRecord::new();
    match rdr.next(&mut header)? {
        Row::Bad { line, problem } => Err(SourceError::Header(format!("`{source}` line {line}: {problem}"))),
        Row::Record { .. } | Row::End => Ok(header),
    }
}

fn read_chunks<R: Read + Seek>(
    rdr: &mut CsvRows<R>,
    work: SyncSender<Chunk>,
    back: Receiver<Vec<csv::ByteRecord>>,
    s: &Setup<'_>,
    bad: &mut Router<'_>,
) -> Result<(), SourceError> {
    let mut seq = 0u64;
    loop {
        if (s.cancelled)() {
            return Err(SourceError::Cancelled);
        }
        let mut chunk = back.try_recv().unwrap_or_else(|_| (0..CHUNK).map(|_| csv::ByteRecord::new()).collect());
        chunk.resize_with(CHUNK, csv::ByteRecord::new);
        let (mut n, mut ended) = (0, false);
        while n < CHUNK {
            let problem = match rdr.next(&mut chunk[n])? {
                Row::End => {
                    ended = true;
                    break;
                }
                Row::Record { .. } if is_utf8(&chunk[n]) => {
                    n += 1;
                    continue;
                }
                Row::Record { line } => (line, Problem::Utf8),
                Row::Bad { line, problem } => (line, problem),
            };
            let (line, problem) = problem;
            bad.bad_record(seq + n as u64, format!("line {line}"), format!("`{}` line {line}: {problem}", s.source));
        }
        chunk.truncate(n);
        if n > 0 && work.send((seq, chunk)).is_err() {
            return Err(SourceError::Cancelled);
        }
        seq += n as u64;
        if ended {
            return Ok(());
        }
    }
}

fn worker(work: &Mutex<Receiver<Chunk>>, back: SyncSender<Vec<csv::ByteRecord>>, layout: &CsvLayout, router: &mut Router<'_>) {
    loop {
        // The lock is held only while taking a chunk, not while routing it.
        let next = work.lock().map(|rx| rx.recv());
        let Ok(Ok((start, chunk))) = next else { return };
        for (i, rec) in chunk.iter().enumerate() {
            layout.route(rec, start + i as u64, router);
        }
        let _ = back.try_send(chunk);
    }
}
