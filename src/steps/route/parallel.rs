//! Parallel CSV routing: the calling thread parses records into chunks, `workers` threads route
//! them with their own `Router`, and the routers are merged at the end. Regex matching costs
//! several times more than CSV parsing, so this is what makes a second core pay off. Results
//! equal the sequential ones: buckets merge exactly (see `Bucket::merge`), and record order
//! only matters for positions, which travel with each chunk.

use std::io::Read;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

use super::bucket::Limits;
use super::compile::RuleSet;
use super::router::Router;
use super::rules::Mode;
use super::seen::{IdBatcher, IdSink, SeenIds};
use super::source::{csv_reader, CsvInfo, CsvLayout, SourceError};

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
    pub cancelled: &'a (dyn Fn() -> bool + Sync),
}

type Chunk = (u64, Vec<csv::ByteRecord>);

pub fn route_csv_parallel<'a, R: Read>(input: R, s: &Setup<'a>) -> Result<(Router<'a>, CsvInfo), SourceError> {
    let mut rdr = csv_reader(input, s.delimiter);
    let (layout, info) = CsvLayout::new(&rdr.byte_headers()?.clone(), &s.rules.fields);
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
        let read = read_chunks(&mut rdr, work_tx, back_rx, s.cancelled);
        let mut merged: Option<Router<'a>> = None;
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

fn read_chunks<R: Read>(
    rdr: &mut csv::Reader<R>,
    work: SyncSender<Chunk>,
    back: Receiver<Vec<csv::ByteRecord>>,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<(), SourceError> {
    let mut seq = 0u64;
    loop {
        if cancelled() {
            return Err(SourceError::Cancelled);
        }
        let mut chunk = back.try_recv().unwrap_or_else(|_| (0..CHUNK).map(|_| csv::ByteRecord::new()).collect());
        chunk.resize_with(CHUNK, csv::ByteRecord::new);
        let mut n = 0;
        while n < CHUNK && rdr.read_byte_record(&mut chunk[n])? {
            n += 1;
        }
        chunk.truncate(n);
        if n > 0 && work.send((seq, chunk)).is_err() {
            return Err(SourceError::Cancelled);
        }
        seq += n as u64;
        if n < CHUNK {
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
