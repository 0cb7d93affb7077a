//! Feeding records to the router. The CSV path reads `ByteRecord`s into one reused buffer and
//! resolves header positions once, so a row costs no allocation and no JSON conversion; any
//! other source arrives as JSON maps and goes through `MapRows`.

use std::borrow::Cow;
use std::io::Read;

use serde_json::{Map, Value};

use super::compile::Fields;
use super::matcher::Row;
use super::router::Router;

/// Rows with at most this many slots are built on the stack.
const STACK_SLOTS: usize = 32;
/// How often (in rows) the CSV loop checks for cancellation.
const CANCEL_EVERY: u64 = 1 << 16;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("reading CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("cancelled")]
    Cancelled,
}

/// What the CSV header told us, for a warning before routing starts.
#[derive(Debug, Default)]
pub struct CsvInfo {
    /// Slot fields absent from the header (rules naming them make every record an error).
    pub missing_columns: Vec<String>,
}

/// Calls `f` with a row of `n` slots filled by `fill`, on the stack when small.
fn with_row<'a>(n: usize, fill: impl Fn(usize) -> Option<&'a [u8]>, f: impl FnOnce(&Row<'a>)) {
    if n <= STACK_SLOTS {
        let mut row: [Option<&[u8]>; STACK_SLOTS] = [None; STACK_SLOTS];
        for (i, r) in row.iter_mut().take(n).enumerate() {
            *r = fill(i);
        }
        f(&row[..n]);
    } else {
        let row: Vec<Option<&[u8]>> = (0..n).map(fill).collect();
        f(&row);
    }
}

/// Column of each slot, resolved once from the header.
pub struct CsvLayout {
    cols: Vec<Option<usize>>,
    headers: Vec<String>,
}

impl CsvLayout {
    pub fn new(header: &csv::ByteRecord, fields: &Fields) -> (Self, CsvInfo) {
        let names: Vec<&[u8]> = header
            .iter()
            .enumerate()
            // A UTF-8 byte order mark would otherwise become part of the first column's name.
            .map(|(i, h)| if i == 0 { h.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(h) } else { h })
            .map(<[u8]>::trim_ascii)
            .collect();
        let cols: Vec<Option<usize>> = fields.names.iter().map(|f| names.iter().position(|h| *h == f.as_bytes())).collect();
        let info =
            CsvInfo { missing_columns: fields.names.iter().zip(&cols).filter(|(_, c)| c.is_none()).map(|(f, _)| f.clone()).collect() };
        let headers = names.iter().map(|h| String::from_utf8_lossy(h).into_owned()).collect();
        (CsvLayout { cols, headers }, info)
    }

    pub fn route(&self, rec: &csv::ByteRecord, seq: u64, router: &mut Router<'_>) {
        let record = || {
            self.headers
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.clone(), Value::String(String::from_utf8_lossy(v).into_owned())))
                .collect::<Map<String, Value>>()
        };
        with_row(self.cols.len(), |i| self.cols[i].and_then(|c| rec.get(c)), |row| router.route(row, seq, &record));
    }
}

pub fn csv_reader<R: Read>(input: R, delimiter: u8) -> csv::Reader<R> {
    csv::ReaderBuilder::new().flexible(true).delimiter(delimiter).buffer_capacity(1 << 18).from_reader(input)
}

/// Routes every record of a CSV stream (first line = header) on the calling thread.
pub fn route_csv<R: Read>(
    input: R,
    fields: &Fields,
    router: &mut Router<'_>,
    cancelled: &dyn Fn() -> bool,
) -> Result<CsvInfo, SourceError> {
    let mut rdr = csv_reader(input, b',');
    let (layout, info) = CsvLayout::new(&rdr.byte_headers()?.clone(), fields);
    let mut rec = csv::ByteRecord::new();
    let mut seq = 0u64;
    while rdr.read_byte_record(&mut rec)? {
        if seq.is_multiple_of(CANCEL_EVERY) && cancelled() {
            return Err(SourceError::Cancelled);
        }
        layout.route(&rec, seq, router);
        seq += 1;
    }
    Ok(info)
}

/// Slot values of one JSON record; owned because numbers must be turned into text.
pub struct MapRows<'f> {
    fields: &'f Fields,
    seq: u64,
}

impl<'f> MapRows<'f> {
    pub fn new(fields: &'f Fields) -> Self {
        MapRows { fields, seq: 0 }
    }

    pub fn route(&mut self, map: Map<String, Value>, router: &mut Router<'_>) {
        let vals: Vec<Option<Cow<'_, [u8]>>> = self.fields.names.iter().map(|f| map.get(f).map(value_bytes)).collect();
        let record = || map.clone();
        with_row(vals.len(), |i| vals[i].as_deref(), |row| router.route(row, self.seq, &record));
        self.seq += 1;
    }
}

/// Text form of a JSON value as rules see it: strings as-is, null as empty, numbers and
/// booleans as written, arrays/objects as JSON.
fn value_bytes(v: &Value) -> Cow<'_, [u8]> {
    match v {
        Value::String(s) => Cow::Borrowed(s.as_bytes()),
        Value::Null => Cow::Borrowed(b""),
        Value::Bool(b) => Cow::Borrowed(if *b { b"true" } else { b"false" }),
        other => Cow::Owned(other.to_string().into_bytes()),
    }
}
