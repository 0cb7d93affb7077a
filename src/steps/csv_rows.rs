//! CSV records read under hostile data, for `read_csv`, its progress total and the `route` step.
//!
//! The `csv` crate's reader grows its buffers to whatever a record holds (a 1 GB field took
//! 3.2 GB), swallows the rows after an unterminated quote into one field and reports line
//! numbers one too low after CRLF line ends. This reader drives `csv_core` directly: a record
//! larger than the limit is skipped without being kept (only its size is counted), a record
//! that an open quote ran past its own line is reported at that line and reading resumes on the
//! next line, and line numbers count the `\n` bytes actually read.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};

use csv::ByteRecord;

/// What a record's reading came to. `Record` filled the caller's `ByteRecord`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Row {
    /// `line` is the line the record starts on (1-based).
    Record {
        line: u64,
    },
    Bad {
        line: u64,
        problem: Problem,
    },
    End,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum Problem {
    #[error(
        "this row is larger than the record size limit ({limit} bytes), so it was skipped without being read; \
         split the data, or raise `max_record_bytes` in cxflow.yaml"
    )]
    TooLarge { limit: usize },
    #[error(
        "a quoted field that starts on this line is not closed before the row ends; \
         close the quote (write a quote inside a field as `\"\"`). Reading went on at the next line"
    )]
    UnterminatedQuote,
    #[error("this row has {len} fields but the header has {expected}; fix the row or quote fields that contain the delimiter")]
    Fields { len: usize, expected: usize },
    #[error("this row is not valid UTF-8; save the file as UTF-8")]
    Utf8,
}

/// Records of a CSV stream; the first record is the header.
pub(crate) struct CsvRows<R> {
    input: BufReader<R>,
    core: Core,
    delimiter: u8,
    max: usize,
    /// Offset of the next byte to read, and where reading stops (a tail still being written).
    pos: u64,
    end: u64,
    /// `\n` bytes before `pos`.
    lines: u64,
    fields: Vec<u8>,
    ends: Vec<usize>,
    header_len: Option<usize>,
}

impl<R: Read + Seek> CsvRows<R> {
    /// Reads `input` from where it is up to `end` bytes further; records over `max` bytes fail.
    pub(crate) fn new(input: R, end: u64, delimiter: u8, max: usize) -> Self {
        CsvRows {
            input: BufReader::with_capacity(1 << 16, input),
            core: Core::new(delimiter),
            delimiter,
            max: max.max(1),
            pos: 0,
            end,
            lines: 0,
            fields: vec![0; 1 << 12],
            ends: vec![0; 64],
            header_len: None,
        }
    }

    /// The buffered input up to `end`.
    fn fill(&mut self) -> std::io::Result<&[u8]> {
        let left = self.end - self.pos;
        let buf = self.input.fill_buf()?;
        Ok(&buf[..buf.len().min(usize::try_from(left).unwrap_or(usize::MAX))])
    }

    fn consume(&mut self, n: usize) {
        self.input.consume(n);
        self.pos += n as u64;
    }

    /// Line ends before a record are not part of it: skipping them here is what makes the
    /// record's first line known (csv_core leaves the `\n` of a `\r\n` for the next record).
    fn skip_line_ends(&mut self) -> std::io::Result<()> {
        loop {
            let buf = self.fill()?;
            let n = buf.iter().take_while(|&&b| b == b'\n' || b == b'\r').count();
            let (nl, all) = (buf[..n].iter().filter(|&&b| b == b'\n').count() as u64, n == buf.len());
            let empty = buf.is_empty();
            self.lines += nl;
            self.consume(n);
            if !all || empty {
                return Ok(());
            }
        }
    }

    /// Reads the next record into `rec`. An I/O error ends the stream; anything wrong with the
    /// data fails that one record and reading goes on.
    pub(crate) fn next(&mut self, rec: &mut ByteRecord) -> std::io::Result<Row> {
        use csv_core::ReadRecordResult as R;
        self.skip_line_ends()?;
        let (line, start) = (self.lines + 1, self.pos);
        let mut first_nl: Option<u64> = None;
        let (mut nout, mut nend, mut size, mut too_big) = (0usize, 0usize, 0u64, false);
        let mut at_eof;
        loop {
            if too_big {
                // Only the record's end is looked for now: its bytes are overwritten, never kept.
                (nout, nend) = (0, 0);
            }
            if nout == self.fields.len() {
                self.fields.resize(self.fields.len() * 2, 0);
            }
            if nend == self.ends.len() {
                self.ends.resize(self.ends.len() * 2, 0);
            }
            let pos = self.pos;
            let (fields, ends) = (&mut self.fields[nout..], &mut self.ends[nend..]);
            let buf = {
                let left = usize::try_from(self.end - pos).unwrap_or(usize::MAX);
                let b = self.input.fill_buf()?;
                &b[..b.len().min(left)]
            };
            at_eof = buf.is_empty();
            let (res, nin, o, e) = self.core.read_record(buf, fields, ends);
            let read = &buf[..nin];
            // One pass for both: where the record's first `\n` is, and how many there are.
            let mut newlines = memchr::memchr_iter(b'\n', read);
            if let Some(i) = newlines.next() {
                first_nl.get_or_insert(pos + i as u64);
                self.lines += 1 + newlines.count() as u64;
            }
            self.consume(nin);
            (nout, nend, size) = (nout + o, nend + e, size + nin as u64);
            too_big |= size > self.max as u64;
            match res {
                R::InputEmpty | R::OutputFull | R::OutputEndsFull => continue,
                R::Record => break,
                R::End => return Ok(Row::End),
            }
        }
        // A `\n` before the record's own line end (or any, when the file ended inside the record:
        // a complete file ends in a line end, so that one was inside quotes) means the record ran
        // over lines, inside a quoted field.
        let over_lines = first_nl.is_some_and(|p| at_eof || p + 1 < self.pos);
        if too_big {
            return Ok(Row::Bad { line, problem: Problem::TooLarge { limit: self.max } });
        }
        let expected = *self.header_len.get_or_insert(nend);
        // A quote opened and never closed (the file ended inside it, or the quote that closed it
        // is the opening quote of a later field, followed by its text): it swallowed the lines
        // after it. A multi-line field quoted properly is data, even in a row with the wrong
        // number of fields: reading it again line by line would make rows of its text.
        if over_lines && (at_eof || !quotes_close(&self.raw_since(start)?, self.delimiter)) {
            // Those are read again, from the line after the quote's.
            let resume = first_nl.unwrap_or(start) + 1;
            self.input.seek(SeekFrom::Start(resume))?;
            (self.pos, self.lines) = (resume, line);
            self.core.reset();
            return Ok(Row::Bad { line, problem: Problem::UnterminatedQuote });
        }
        if nend != expected {
            return Ok(Row::Bad { line, problem: Problem::Fields { len: nend, expected } });
        }
        rec.clear();
        let mut s = 0;
        for &e in &self.ends[..nend] {
            rec.push_field(&self.fields[s..e]);
            s = e;
        }
        Ok(Row::Record { line })
    }

    /// The bytes of the record just read, as written, read again from the file: only a record
    /// that ran over lines needs them (to check its quoting), so no record is copied for it.
    fn raw_since(&mut self, start: u64) -> std::io::Result<Vec<u8>> {
        let mut raw = vec![0; usize::try_from(self.pos - start).unwrap_or(usize::MAX)];
        self.input.seek(SeekFrom::Start(start))?;
        self.input.read_exact(&mut raw)?;
        Ok(raw)
    }

    /// The line the next record would start on, at the least (for "the last line" messages).
    pub(crate) fn next_line(&self) -> u64 {
        self.lines + 1
    }
}

/// Strict RFC 4180 quoting: a quoted field's closing quote is followed by the delimiter or the
/// line end. csv_core accepts `"a"b` as `ab`, which is how an unclosed quote in one row pairs
/// up with the opening quote of a later one and still yields the right number of fields.
fn quotes_close(raw: &[u8], delimiter: u8) -> bool {
    let (mut in_quotes, mut field_start, mut i) = (false, true, 0);
    while i < raw.len() {
        let b = raw[i];
        if in_quotes {
            if b == b'"' {
                if raw.get(i + 1) == Some(&b'"') {
                    i += 2;
                    continue;
                }
                in_quotes = false;
                if !matches!(raw.get(i + 1), None | Some(b'\r' | b'\n')) && raw.get(i + 1) != Some(&delimiter) {
                    return false;
                }
            }
        } else if field_start && b == b'"' {
            in_quotes = true;
        }
        field_start = !in_quotes && (b == delimiter || b == b'\n' || b == b'\r');
        i += 1;
    }
    !in_quotes
}

/// A csv_core reader, reused: building one (its DFA) costs more than reading a small file's
/// header, which validating a workflow does, and a scheduler validates thousands at start. A
/// built reader cannot be copied (csv_core's clone leaves the copy's DFA half built), so the
/// spares live per thread, `reset` before each use, back in the pool when dropped.
struct Core {
    rdr: Option<csv_core::Reader>,
    delimiter: u8,
}

thread_local! {
    static SPARE: RefCell<Vec<(u8, csv_core::Reader)>> = const { RefCell::new(Vec::new()) };
}

/// Spare readers kept per thread: one per delimiter in use is the common case.
const SPARES: usize = 4;

impl Core {
    fn new(delimiter: u8) -> Self {
        let spare = SPARE.with_borrow_mut(|s| s.iter().position(|(d, _)| *d == delimiter).map(|i| s.swap_remove(i).1));
        let rdr = match spare {
            Some(mut rdr) => {
                rdr.reset();
                rdr
            }
            None => csv_core::ReaderBuilder::new().delimiter(delimiter).build(),
        };
        Core { rdr: Some(rdr), delimiter }
    }
}

impl std::ops::Deref for Core {
    type Target = csv_core::Reader;
    fn deref(&self) -> &csv_core::Reader {
        self.rdr.as_ref().expect("a Core holds its reader until dropped")
    }
}

impl std::ops::DerefMut for Core {
    fn deref_mut(&mut self) -> &mut csv_core::Reader {
        self.rdr.as_mut().expect("a Core holds its reader until dropped")
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        if let Some(rdr) = self.rdr.take() {
            // `try_with`: a reader dropped while the thread's locals are torn down is just freed.
            let _ = SPARE.try_with(|s| {
                if let Ok(mut s) = s.try_borrow_mut() {
                    if s.len() < SPARES {
                        s.push((self.delimiter, rdr));
                    }
                }
            });
        }
    }
}

/// Each field is UTF-8. Checked over the whole record at once (a check per field cost the
/// reading thread, which all routing waits on, 8% of its time): the fields are valid exactly
/// when their concatenation is and no field starts inside a character.
pub(crate) fn is_utf8(rec: &ByteRecord) -> bool {
    let all = rec.as_slice();
    if all.is_ascii() {
        return true;
    }
    let Ok(s) = std::str::from_utf8(all) else { return false };
    let mut start = 0;
    rec.iter().all(|f| {
        let at = start;
        start += f.len();
        s.is_char_boundary(at)
    })
}

/// Records (header excluded) in a CSV file, counted by parsing, not by line breaks: a quoted
/// field may hold line breaks. Nothing of a record is kept, so a huge field costs no memory.
pub(crate) fn count_records(path: &std::path::Path, delimiter: u8) -> std::io::Result<u64> {
    use csv_core::ReadRecordResult as R;
    let mut input = BufReader::with_capacity(1 << 16, std::fs::File::open(path)?);
    let mut core = Core::new(delimiter);
    let (mut out, mut ends) = (vec![0u8; 1 << 12], vec![0usize; 256]);
    let mut n = 0u64;
    loop {
        let buf = input.fill_buf()?;
        let (res, nin, _, _) = core.read_record(buf, &mut out, &mut ends);
        input.consume(nin);
        match res {
            R::Record => n += 1,
            R::End => return Ok(n.saturating_sub(1)),
            R::InputEmpty | R::OutputFull | R::OutputEndsFull => {}
        }
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
