//! Parallel CSV routing: `workers` threads take turns at the reader. Who holds it reads the next
//! chunk of records, lets go, and routes the chunk with its own `Router`; the routers are merged
//! at the end. Reading is about a third of the work, so while one thread reads the others route,
//! and no thread waits on a hand-off: a reader thread feeding routing threads through channels
//! kept the two cores 16% idle (issue 14: three threads on two cores, sleeping and waking at
//! each chunk). Results equal the sequential ones: buckets merge exactly (see `Bucket::merge`),
//! and record order only matters for positions, which are given out with the chunks, in order.

use std::collections::VecDeque;
use std::io::{Read, Seek};
use std::sync::{Mutex, TryLockError};

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

/// The reader and where it is, held by one thread at a time.
struct Reading<R> {
    rdr: CsvRows<R>,
    /// Position of the next record read.
    seq: u64,
    /// The input ended, failed or was cancelled: nothing more to take.
    done: bool,
    failed: Option<SourceError>,
}

/// Routes `input` up to `end` bytes (`u64::MAX`: all of it).
pub fn route_csv_parallel<'a, R: Read + Seek + Send>(input: R, end: u64, s: &Setup<'a>) -> Result<(Router<'a>, CsvInfo), SourceError> {
    let mut rdr = CsvRows::new(input, end, s.delimiter, s.max_record);
    let header = read_header(&mut rdr, s.source)?;
    let (layout, info) = CsvLayout::new(&header, &s.rules.fields);
    let new_router = || Router::new(s.rules, s.mode, s.limits, s.seen, IdBatcher::new(ID_BATCH, (s.sink)()));
    let reading = Mutex::new(Reading { rdr, seq: 0, done: false, failed: None });
    let merged = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..s.workers.max(1))
            .map(|_| {
                let router = new_router();
                let (reading, layout) = (&reading, &layout);
                scope.spawn(move || take_turns(reading, layout, s, router))
            })
            .collect();
        // The calling thread is one of them.
        let mut merged = take_turns(&reading, &layout, s, new_router());
        for h in handles {
            match h.join() {
                Ok(r) => merged.merge(r),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        merged
    });
    match reading.into_inner().unwrap_or_else(|p| p.into_inner()).failed {
        Some(e) => Err(e),
        None => Ok((merged, info)),
    }
}

/// Reads a chunk while holding the reader, routes it after letting go; until the input is done.
/// A thread keeps up to two chunks: when the reader is busy and it has one in hand, it routes
/// that instead of waiting (when routing is cheap, as in a rerun where every id is already
/// routed, the threads would otherwise mostly wait for each other at the reader).
fn take_turns<'a, R: Read + Seek>(reading: &Mutex<Reading<R>>, layout: &CsvLayout, s: &Setup<'a>, mut router: Router<'a>) -> Router<'a> {
    let new_chunk = || -> Vec<csv::ByteRecord> { (0..CHUNK).map(|_| csv::ByteRecord::new()).collect() };
    let mut free = vec![new_chunk(), new_chunk()];
    // Read and not yet routed: (position of the first record, records, chunk).
    let mut ready: VecDeque<(u64, usize, Vec<csv::ByteRecord>)> = VecDeque::new();
    let mut done = false;
    loop {
        if !done && !free.is_empty() {
            // A thread that panicked while reading left nothing half-done that matters here:
            // its panic is raised again when it is joined.
            let held = if ready.is_empty() {
                Some(reading.lock().unwrap_or_else(|p| p.into_inner()))
            } else {
                match reading.try_lock() {
                    Ok(r) => Some(r),
                    Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
                    Err(TryLockError::WouldBlock) => None,
                }
            };
            if let Some(mut r) = held {
                if r.done {
                    done = true;
                } else {
                    let mut chunk = free.pop().unwrap_or_else(new_chunk);
                    let start = r.seq;
                    let read = if (s.cancelled)() {
                        Err(SourceError::Cancelled)
                    } else {
                        read_chunk(&mut r.rdr, &mut chunk, start, s, &mut router)
                    };
                    match read {
                        Ok((n, ended)) => {
                            r.seq += n as u64;
                            r.done = ended;
                            done = ended;
                            ready.push_back((start, n, chunk));
                        }
                        Err(e) => {
                            r.failed = Some(e);
                            r.done = true;
                            done = true;
                        }
                    }
                }
            }
        }
        match ready.pop_front() {
            Some((start, n, chunk)) => {
                for (i, rec) in chunk[..n].iter().enumerate() {
                    layout.route(rec, start + i as u64, &mut router);
                }
                free.push(chunk);
            }
            None if done => break,
            None => {}
        }
    }
    router.ids.flush();
    router
}

/// The header row; a header that cannot be read fails the step (no record can be read without it).
pub(super) fn read_header<R: Read + Seek>(rdr: &mut CsvRows<R>, source: &str) -> Result<csv::ByteRecord, SourceError> {
    let mut header = csv::ByteRecord::new();
    match rdr.next(&mut header)? {
        Row::Bad { line, problem } => Err(SourceError::Header(format!("`{source}` line {line}: {problem}"))),
        Row::Record { .. } | Row::End => Ok(header),
    }
}

/// Fills `chunk` from the reader: how many records it holds, and whether the input ended.
/// Rows that cannot be read are record errors, kept by `router`.
fn read_chunk<R: Read + Seek>(
    rdr: &mut CsvRows<R>,
    chunk: &mut [csv::ByteRecord],
    seq: u64,
    s: &Setup<'_>,
    router: &mut Router<'_>,
) -> Result<(usize, bool), SourceError> {
    let mut n = 0;
    while n < chunk.len() {
        let problem = match rdr.next(&mut chunk[n])? {
            Row::End => return Ok((n, true)),
            Row::Record { .. } if is_utf8(&chunk[n]) => {
                n += 1;
                continue;
            }
            Row::Record { line } => (line, Problem::Utf8),
            Row::Bad { line, problem } => (line, problem),
        };
        let (line, problem) = problem;
        router.bad_record(seq + n as u64, format!("line {line}"), format!("`{}` line {line}: {problem}", s.source));
    }
    Ok((n, false))
}
