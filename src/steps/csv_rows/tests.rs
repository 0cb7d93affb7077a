use std::io::Cursor;

use super::*;

/// Every row of `text` as `Ok(fields)` or `Err(problem)`, with its line.
fn rows(text: &[u8], max: usize) -> Vec<(u64, Result<Vec<String>, Problem>)> {
    let mut r = CsvRows::new(Cursor::new(text.to_vec()), text.len() as u64, b',', max);
    let mut rec = ByteRecord::new();
    let mut out = Vec::new();
    loop {
        match r.next(&mut rec).unwrap() {
            Row::Record { line } => {
                out.push((line, Ok(rec.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect())));
            }
            Row::Bad { line, problem } => out.push((line, Err(problem))),
            Row::End => return out,
        }
    }
}

fn ok(line: u64, fields: &[&str]) -> (u64, Result<Vec<String>, Problem>) {
    (line, Ok(fields.iter().map(|s| s.to_string()).collect()))
}

#[test]
fn line_numbers_are_the_same_with_crlf_line_ends() {
    for (text, name) in
        [(&b"a,b\n1,2\n3\n4,5\n"[..], "lf"), (b"a,b\r\n1,2\r\n3\r\n4,5\r\n", "crlf"), (b"a,b\r\n\r\n1,2\r\n3\r\n4,5", "blank")]
    {
        let got = rows(text, 1 << 20);
        let bad: Vec<u64> = got.iter().filter(|r| r.1.is_err()).map(|r| r.0).collect();
        let third = if name == "blank" { 5 } else { 4 };
        assert_eq!(bad, [third - 1], "{name}: {got:?}");
        assert_eq!(got.last().unwrap(), &ok(third, &["4", "5"]), "{name}");
    }
}

#[test]
fn an_unterminated_quote_is_reported_at_its_line_and_the_next_rows_are_read() {
    // The open quote pairs with the quote of row 4: the `csv` crate read rows 2-4 as one record.
    let got = rows(b"id,text\n1,\"oops\n2,fine\n3,\"ok\"\n4,last\n", 1 << 20);
    assert_eq!(
        got,
        [ok(1, &["id", "text"]), (2, Err(Problem::UnterminatedQuote)), ok(3, &["2", "fine"]), ok(4, &["3", "ok"]), ok(5, &["4", "last"])]
    );
    // Unclosed at the end of the file, and one that makes a wrong field count.
    let got = rows(b"id,text\n1,a\n2,\"open\n", 1 << 20);
    assert_eq!(got[2], (3, Err(Problem::UnterminatedQuote)));
    assert_eq!(got.len(), 3);
    let got = rows(b"id,text,x\n1,\"a\n2,b,c\n", 1 << 20);
    assert_eq!(got[1..], [(2, Err(Problem::UnterminatedQuote)), ok(3, &["2", "b", "c"])]);
}

#[test]
fn a_quoted_field_over_several_lines_is_one_record() {
    let got = rows(b"id,text\n1,\"two\r\nlines, \"\"quoted\"\"\"\n2,x\n", 1 << 20);
    assert_eq!(got[1..], [ok(2, &["1", "two\r\nlines, \"quoted\""]), ok(4, &["2", "x"])]);
}

#[test]
fn a_record_over_the_limit_fails_alone_and_is_never_held() {
    let mut text = b"id,text\n1,small\n2,\"".to_vec();
    text.extend(std::iter::repeat_n(b'x', 5_000_000));
    text.extend(b"\n,still in the field\"\n3,after\n");
    let mut r = CsvRows::new(Cursor::new(text.clone()), text.len() as u64, b',', 64 * 1024);
    let mut rec = ByteRecord::new();
    let mut got = Vec::new();
    while let Ok(row) = r.next(&mut rec) {
        if row == Row::End {
            break;
        }
        got.push(row);
    }
    assert_eq!(got[2], Row::Bad { line: 3, problem: Problem::TooLarge { limit: 64 * 1024 } });
    assert_eq!(got[3], Row::Record { line: 5 });
    assert_eq!(rec.get(1), Some(&b"after"[..]));
    // What the reader kept of the big record: about the limit, not the record.
    assert!(r.fields.len() <= 256 * 1024, "{}", r.fields.len());
}

#[test]
fn reading_stops_at_the_given_end() {
    let text = b"a\n1\n2\n3";
    let mut r = CsvRows::new(Cursor::new(text.to_vec()), 6, b',', 100);
    let mut rec = ByteRecord::new();
    let mut n = 0;
    while let Row::Record { .. } = r.next(&mut rec).unwrap() {
        n += 1;
    }
    assert_eq!((n, r.next_line()), (3, 4));
}

#[test]
fn records_are_counted_not_lines() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.csv");
    for (text, want) in [(&b"id,t\n1,\"a\nb\nc\"\n2,x\n"[..], 2), (b"id\r\n1\r\n2", 2), (b"id\n", 0), (b"", 0)] {
        std::fs::write(&p, text).unwrap();
        assert_eq!(count_records(&p, b',').unwrap(), want, "{text:?}");
    }
}

#[test]
fn a_short_row_with_a_proper_multi_line_field_is_a_field_count_error_not_a_quote_error() {
    let got = rows(b"id,text,x\n1,\"two\nlines, 3,\"\n2,b,c\n", 1 << 20);
    assert_eq!(got[1..], [(2, Err(Problem::Fields { len: 2, expected: 3 })), ok(4, &["2", "b", "c"])]);
}

#[test]
fn readers_are_reused_only_for_their_own_delimiter() {
    // Each reader read to its end goes back to this thread's pool; the next with the same
    // delimiter takes it, one with another delimiter must not.
    let mut rec = ByteRecord::new();
    for _ in 0..3 {
        assert_eq!(rows(b"x,y\n1,2\n", 1 << 20), [ok(1, &["x", "y"]), ok(2, &["1", "2"])]);
        let semi = b"x;y\n1;2\n";
        let mut r = CsvRows::new(Cursor::new(semi.to_vec()), semi.len() as u64, b';', 1 << 20);
        assert!(matches!(r.next(&mut rec).unwrap(), Row::Record { line: 1 }));
        assert!(matches!(r.next(&mut rec).unwrap(), Row::Record { line: 2 }));
        assert_eq!(rec.iter().collect::<Vec<_>>(), [b"1", b"2"]);
        while !matches!(r.next(&mut rec).unwrap(), Row::End) {}
    }
}
