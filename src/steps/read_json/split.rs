//! Records of a JSON file cut out before they are parsed, so one that is too large is skipped
//! without being held and one that does not parse fails alone. JSON Lines split at line ends;
//! a top-level array at the commas between its elements (outside strings and brackets).

use std::io::BufRead;

/// One record's bytes, or why there are none.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Cut {
    /// The record is in the buffer; it starts on `line` (1-based).
    Record {
        line: u64,
    },
    TooLarge {
        line: u64,
    },
    /// The file ended inside the record that starts on `line` (an array not closed).
    Unclosed {
        line: u64,
    },
    End,
}

/// Appends `chunk` to `buf` unless that would pass `max`: then the record is too large, and
/// what was kept of it is dropped.
fn keep(buf: &mut Vec<u8>, chunk: &[u8], max: usize, too_large: &mut bool) {
    if *too_large {
        return;
    }
    if buf.len() + chunk.len() > max {
        *too_large = true;
        buf.clear();
        buf.shrink_to(max.min(1 << 16));
    } else {
        buf.extend_from_slice(chunk);
    }
}

pub(super) struct Lines<R> {
    input: R,
    max: usize,
    line: u64,
}

impl<R: BufRead> Lines<R> {
    pub(super) fn new(input: R, max: usize) -> Self {
        Lines { input, max, line: 0 }
    }

    /// The next line (without its `\n`) into `buf`.
    pub(super) fn next(&mut self, buf: &mut Vec<u8>) -> std::io::Result<Cut> {
        buf.clear();
        let (mut too_large, mut any) = (false, false);
        let line = self.line + 1;
        loop {
            let chunk = self.input.fill_buf()?;
            if chunk.is_empty() {
                if !any {
                    return Ok(Cut::End);
                }
                break;
            }
            any = true;
            let (end, used) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (Some(i), i + 1),
                None => (None, chunk.len()),
            };
            keep(buf, &chunk[..end.unwrap_or(used)], self.max, &mut too_large);
            self.input.consume(used);
            if end.is_some() {
                break;
            }
        }
        self.line = line;
        Ok(if too_large { Cut::TooLarge { line } } else { Cut::Record { line } })
    }
}

/// The elements of a top-level array, from just after its `[`.
pub(super) struct Elements<R> {
    input: R,
    max: usize,
    /// `\n` bytes read so far (the `[` is on line `lines_before + 1`).
    lines: u64,
    done: bool,
}

impl<R: BufRead> Elements<R> {
    pub(super) fn new(input: R, max: usize, lines_before: u64) -> Self {
        Elements { input, max, lines: lines_before, done: false }
    }

    /// Skips whitespace; the next byte, not consumed.
    fn peek(&mut self) -> std::io::Result<Option<u8>> {
        loop {
            let chunk = self.input.fill_buf()?;
            let Some(&first) = chunk.first() else { return Ok(None) };
            let n = chunk.iter().take_while(|b| b.is_ascii_whitespace()).count();
            self.lines += chunk[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            if n == 0 {
                return Ok(Some(first));
            }
            self.input.consume(n);
        }
    }

    /// The next element into `buf`.
    pub(super) fn next(&mut self, buf: &mut Vec<u8>) -> std::io::Result<Cut> {
        buf.clear();
        if self.done {
            return Ok(Cut::End);
        }
        let line = match self.peek()? {
            None => return Ok(Cut::Unclosed { line: self.lines + 1 }),
            Some(b']') => {
                self.done = true;
                return Ok(Cut::End);
            }
            Some(_) => self.lines + 1,
        };
        let (mut depth, mut in_str, mut esc, mut too_large) = (0u32, false, false, false);
        loop {
            let chunk = self.input.fill_buf()?;
            if chunk.is_empty() {
                self.done = true;
                return Ok(Cut::Unclosed { line });
            }
            // Where the element ends: a `,` or the array's `]` outside strings and brackets.
            let mut end = None;
            for (i, &b) in chunk.iter().enumerate() {
                if in_str {
                    match (esc, b) {
                        (true, _) => esc = false,
                        (false, b'\\') => esc = true,
                        (false, b'"') => in_str = false,
                        _ => {}
                    }
                    continue;
                }
                match b {
                    b'"' => in_str = true,
                    b'[' | b'{' => depth += 1,
                    b']' | b'}' if depth > 0 => depth -= 1,
                    b']' | b',' if depth == 0 => {
                        end = Some((i, b));
                        break;
                    }
                    _ => {}
                }
            }
            let taken = end.map_or(chunk.len(), |(i, _)| i);
            keep(buf, &chunk[..taken], self.max, &mut too_large);
            self.lines += chunk[..taken].iter().filter(|&&b| b == b'\n').count() as u64;
            match end {
                None => self.input.consume(taken),
                Some((i, b)) => {
                    // The comma goes with this element; the `]` ends the array.
                    self.input.consume(i + 1);
                    self.done = b == b']';
                    return Ok(if too_large { Cut::TooLarge { line } } else { Cut::Record { line } });
                }
            }
        }
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    fn all(mut next: impl FnMut(&mut Vec<u8>) -> std::io::Result<Cut>) -> Vec<(Cut, String)> {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            let c = next(&mut buf).unwrap();
            if c == Cut::End {
                return out;
            }
            let stop = matches!(c, Cut::Unclosed { .. });
            out.push((c, String::from_utf8_lossy(&buf).trim().to_string()));
            if stop {
                return out;
            }
        }
    }

    #[test]
    fn array_elements_are_cut_at_top_level_commas() {
        let text = b"[{\"a\": \"x,]}\\\"\"},\n {\"b\": [1, 2]},\n 3 ]";
        let mut e = Elements::new(&text[1..], 100, 0);
        let got = all(|b| e.next(b));
        let want = [
            (Cut::Record { line: 1 }, "{\"a\": \"x,]}\\\"\"}".to_string()),
            (Cut::Record { line: 2 }, "{\"b\": [1, 2]}".to_string()),
            (Cut::Record { line: 3 }, "3".to_string()),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn a_large_element_is_skipped_and_the_next_read() {
        let mut text = b"[{\"id\": 1}, {\"big\": \"".to_vec();
        text.extend(std::iter::repeat_n(b'x', 100_000));
        text.extend(b"\"},\n{\"id\": 3}]");
        let mut e = Elements::new(&text[1..], 1000, 0);
        let got = all(|b| e.next(b));
        assert_eq!(got[1], (Cut::TooLarge { line: 1 }, String::new()));
        assert_eq!(got[2], (Cut::Record { line: 2 }, "{\"id\": 3}".to_string()));
        let mut e = Elements::new(&b"{\"a\": [1"[..], 1000, 0);
        assert_eq!(all(|b| e.next(b))[0].0, Cut::Unclosed { line: 1 });
    }

    #[test]
    fn lines_over_the_limit_are_skipped() {
        let mut text = b"{\"id\": 1}\n{\"x\": \"".to_vec();
        text.extend(std::iter::repeat_n(b'x', 100_000));
        text.extend(b"\"}\n{\"id\": 3}");
        let mut l = Lines::new(&text[..], 1000);
        let got = all(|b| l.next(b));
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].0, Cut::TooLarge { line: 2 });
        assert_eq!(got[2], (Cut::Record { line: 3 }, "{\"id\": 3}".to_string()));
    }
}
