//! The CSV reader over arbitrary and hostile bytes: it never panics, always ends, never hands out
//! a record over the limit, and reads well-formed files exactly (fields and line numbers, with
//! `\n` or `\r\n` line ends). Short by default; `PROPTEST_CASES=20000 cargo test --release --lib
//! steps::csv_rows::proptests` runs it longer.

use std::io::Cursor;

use proptest::prelude::*;

use super::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256)
}

/// Bytes a hostile or broken export is made of: delimiters, quotes, line ends, NUL, escapes,
/// invalid UTF-8 and plain text.
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b",".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\"\"".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\0".to_vec()),
        Just(b"\x1b[2J".to_vec()),
        Just(vec![0xff, 0xfe]),
        "[a-z ]{0,12}".prop_map(String::into_bytes),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    prop::collection::vec(piece, 0..80).prop_map(|v| v.concat())
}

/// A field as a careful writer quotes it: anything, with quotes doubled, when it needs quoting.
fn quote(f: &str) -> String {
    if f.contains([',', '"', '\n', '\r']) || f.is_empty() {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}

fn read_all(text: &[u8], max: usize) -> Vec<(Row, Vec<Vec<u8>>)> {
    let mut r = CsvRows::new(Cursor::new(text.to_vec()), text.len() as u64, b',', max);
    let mut rec = ByteRecord::new();
    let mut out = Vec::new();
    // Each call consumes at least one byte or ends: more calls than bytes would be a loop.
    for _ in 0..=text.len() + 1 {
        let row = r.next(&mut rec).expect("reading from memory does not fail");
        if row == Row::End {
            return out;
        }
        out.push((row, rec.iter().map(<[u8]>::to_vec).collect()));
    }
    panic!("the reader did not end on {:?}", String::from_utf8_lossy(text));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn hostile_bytes_never_panic_and_records_stay_within_the_limit(text in hostile_bytes(), max in 1usize..64) {
        let lines = text.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        let mut last = 0;
        for (row, fields) in read_all(&text, max) {
            let line = match row {
                Row::Record { line } => {
                    prop_assert!(fields.iter().map(Vec::len).sum::<usize>() <= max, "a record over the limit: {fields:?}");
                    line
                }
                Row::Bad { line, .. } => line,
                Row::End => unreachable!(),
            };
            // Lines count `\n`: records ended by a bare `\r` (csv_core ends a record there too)
            // share a line number, so the numbers only never go back.
            prop_assert!(line >= last.max(1) && line <= lines, "line {line} after {last}, of {lines}");
            last = line;
        }
    }

    #[test]
    fn well_formed_files_are_read_exactly(
        rows in prop::collection::vec(prop::collection::vec("[a-z,\"\r\n é]{0,8}", 3), 1..12),
        crlf in any::<bool>(),
    ) {
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut text = String::new();
        let mut starts = Vec::new();
        for row in &rows {
            starts.push(text.matches('\n').count() as u64 + 1);
            text += &row.iter().map(|f| quote(f)).collect::<Vec<_>>().join(",");
            text += eol;
        }
        let got = read_all(text.as_bytes(), 1 << 20);
        prop_assert_eq!(got.len(), rows.len());
        for ((row, fields), (want, start)) in got.iter().zip(rows.iter().zip(&starts)) {
            prop_assert_eq!(row, &Row::Record { line: *start });
            let want: Vec<Vec<u8>> = want.iter().map(|f| f.as_bytes().to_vec()).collect();
            prop_assert_eq!(fields, &want);
        }
    }

    /// The whole-record UTF-8 check agrees with checking field by field, also when a character
    /// is split between two fields (the concatenation is then valid, the fields are not).
    #[test]
    fn utf8_check_equals_a_check_per_field(
        fields in prop::collection::vec(prop::collection::vec(prop_oneof![
            Just(vec![0xC3]), Just(vec![0xA9]), Just(vec![0xE2, 0x82]), Just(vec![0xAC]), Just(vec![0xF0, 0x9F]),
            Just(vec![0x98, 0x80]), Just(vec![0xFF]), Just("é".as_bytes().to_vec()), Just("€😀".as_bytes().to_vec()),
            "[a-z ]{0,6}".prop_map(String::into_bytes),
        ], 0..4).prop_map(|p| p.concat()), 0..6),
    ) {
        let rec = csv::ByteRecord::from(fields.clone());
        let per_field = fields.iter().all(|f| std::str::from_utf8(f).is_ok());
        prop_assert_eq!(is_utf8(&rec), per_field, "{:?}", fields);
    }
}

#[test]
fn utf8_check_edge_cases() {
    let rec = |f: &[&[u8]]| csv::ByteRecord::from(f.to_vec());
    assert!(is_utf8(&rec(&[])));
    assert!(is_utf8(&rec(&[b"", b"plain", "Grüße, ça va".as_bytes(), "😀".as_bytes()])));
    // `é` is C3 A9: split over two fields, each half is invalid though the record's bytes are not.
    assert!(!is_utf8(&rec(&[b"caf\xC3", b"\xA9"])));
    assert!(!is_utf8(&rec(&[b"ok", b"\xA9"])));
    assert!(!is_utf8(&rec(&[b"ok", b"\xFF"])));
    assert!(!is_utf8(&rec(&["é".as_bytes(), b"\xC3"])));
}
