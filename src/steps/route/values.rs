//! Parsing of field values straight from bytes: numbers and timestamps are parsed per row on
//! the hot path, so the common shapes (`4`, `2024-05-01T10:00:00Z`) avoid allocation and chrono.

/// Parses a number; `None` for empty or non-numeric text. Small integers (ratings) are the
/// fast path; anything else goes through `f64::from_str`.
pub fn parse_number(b: &[u8]) -> Option<f64> {
    let b = trim(b);
    if b.is_empty() {
        return None;
    }
    if b.len() <= 9 && b.iter().all(u8::is_ascii_digit) {
        let mut n: u32 = 0;
        for &c in b {
            n = n * 10 + u32::from(c - b'0');
        }
        return Some(f64::from(n));
    }
    std::str::from_utf8(b).ok()?.parse::<f64>().ok().filter(|v| v.is_finite())
}

pub fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// Seconds since the Unix epoch. Accepts `YYYY-MM-DD`, `YYYY-MM-DD[T ]HH:MM[:SS[.frac]]`
/// with optional `Z` or `±HH:MM` / `±HHMM` offset. Naive times are taken as UTC (documented).
pub fn parse_timestamp(b: &[u8]) -> Option<i64> {
    let b = trim(b);
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&b[0..4])? as i64;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let mut secs = days_from_civil(year, month, day) * 86_400;
    let mut rest = &b[10..];
    if rest.is_empty() {
        return Some(secs);
    }
    if rest[0] != b'T' && rest[0] != b' ' && rest[0] != b't' {
        return None;
    }
    rest = &rest[1..];
    if rest.len() < 5 || rest[2] != b':' {
        return None;
    }
    let h = digits(&rest[0..2])?;
    let m = digits(&rest[3..5])?;
    let mut s = 0;
    rest = &rest[5..];
    if rest.len() >= 3 && rest[0] == b':' {
        s = digits(&rest[1..3])?;
        rest = &rest[3..];
        if rest.first() == Some(&b'.') || rest.first() == Some(&b',') {
            let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            rest = &rest[1 + n..];
        }
    }
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    secs += i64::from(h * 3600 + m * 60 + s);
    match rest {
        [] | [b'Z'] | [b'z'] => Some(secs),
        [sign @ (b'+' | b'-'), tz @ ..] => {
            let (oh, om) = match tz {
                [a, b2, b':', c, d] => (digits(&[*a, *b2])?, digits(&[*c, *d])?),
                [a, b2, c, d] => (digits(&[*a, *b2])?, digits(&[*c, *d])?),
                [a, b2] => (digits(&[*a, *b2])?, 0),
                _ => return None,
            };
            let off = i64::from(oh * 3600 + om * 60);
            Some(if *sign == b'+' { secs - off } else { secs + off })
        }
        _ => None,
    }
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut n = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(c - b'0');
    }
    Some(n)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Howard Hinnant's days-from-civil: exact for the proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Case-insensitive equality of text; ASCII fast path, Unicode lowercase otherwise.
pub fn eq_ignore_case(a: &[u8], b_lower: &str) -> bool {
    let a = trim(a);
    eq_ignore_case_trimmed(a, a.is_ascii(), b_lower)
}

/// `eq_ignore_case` for an `a` already trimmed, `a_ascii` being `a.is_ascii()`: a `one_of`
/// compares one value with each of its values, so the value is trimmed and classified once.
pub fn eq_ignore_case_trimmed(a: &[u8], a_ascii: bool, b_lower: &str) -> bool {
    if b_lower.is_ascii() {
        // Equal bytes up to ASCII case settle it; otherwise only a non-ASCII `a` can still
        // lowercase to `b` (the Kelvin sign is `k`).
        if a.eq_ignore_ascii_case(b_lower.as_bytes()) {
            return true;
        }
        if a_ascii {
            return false;
        }
    } else if a_ascii {
        return false;
    }
    match std::str::from_utf8(a) {
        Ok(s) => s.to_lowercase() == b_lower,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chrono_ts(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp()
    }

    #[test]
    fn timestamps_agree_with_chrono() {
        for s in ["2024-05-01T10:20:30Z", "2024-02-29T23:59:59+02:00", "1999-12-31T00:00:00-05:30", "2024-05-01T10:20:30.123456Z"] {
            assert_eq!(parse_timestamp(s.as_bytes()), Some(chrono_ts(s)), "{s}");
        }
        assert_eq!(parse_timestamp(b"2024-05-01"), Some(chrono_ts("2024-05-01T00:00:00Z")));
        assert_eq!(parse_timestamp(b"2024-05-01 08:00"), Some(chrono_ts("2024-05-01T08:00:00Z")));
        assert_eq!(parse_timestamp(b"2023-02-29"), None);
        assert_eq!(parse_timestamp(b"yesterday"), None);
        assert_eq!(parse_timestamp(b"2024-05-01T25:00:00Z"), None);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number(b"4"), Some(4.0));
        assert_eq!(parse_number(b" 4.5 "), Some(4.5));
        assert_eq!(parse_number(b"-1"), Some(-1.0));
        assert_eq!(parse_number(b""), None);
        assert_eq!(parse_number(b"five"), None);
        assert_eq!(parse_number(b"NaN"), None);
    }

    #[test]
    fn case_insensitive_equality() {
        assert!(eq_ignore_case(b" Billing ", "billing"));
        assert!(eq_ignore_case("ÉQUIPE".as_bytes(), "équipe"));
        assert!(!eq_ignore_case(b"bill", "billing"));
        assert!(eq_ignore_case("\u{212A}iwi".as_bytes(), "kiwi"), "the Kelvin sign lowercases to k");
        assert!(!eq_ignore_case(b"equipe", "équipe"));
    }
}
