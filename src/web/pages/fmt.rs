//! Small formatting shared by the pages: times, durations, long text cut down, query strings.

use chrono::{DateTime, Utc};
use maud::{html, Markup};

use crate::web::WebError;

/// A run log time (RFC 3339, UTC) as `2024-05-31 09:00:03 UTC`, machine-readable in `datetime`.
pub(super) fn time(stored: &str) -> Markup {
    let pretty = match DateTime::parse_from_rfc3339(stored) {
        Ok(t) => t.with_timezone(&Utc).format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => stored.to_string(),
    };
    html! { time datetime=(stored) { (pretty) } }
}

pub(super) fn time_opt(stored: Option<&str>) -> Markup {
    match stored {
        Some(t) => time(t),
        None => html! { span.muted { "—" } },
    }
}

/// From start to finish; for something still going, from start to `now` with a trailing `…`.
pub(super) fn duration_between(started: &str, finished: Option<&str>, now: DateTime<Utc>) -> String {
    let Ok(start) = DateTime::parse_from_rfc3339(started) else { return String::new() };
    let (end, going) = match finished {
        Some(f) => match DateTime::parse_from_rfc3339(f) {
            Ok(t) => (t.with_timezone(&Utc), false),
            Err(_) => return String::new(),
        },
        None => (now, true),
    };
    let ms = (end - start.with_timezone(&Utc)).num_milliseconds().max(0);
    if going {
        format!("{}…", duration_ms(ms))
    } else {
        duration_ms(ms)
    }
}

/// `850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`.
pub(super) fn duration_ms(ms: i64) -> String {
    let s = ms / 1000;
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    }
}

/// The first line of `text`, at most `max` characters, with `…` when anything was left out.
pub(super) fn cut(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    let mut out: String = line.chars().take(max).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// Long text as its cut form, the whole of it one click away (`<details>`, no script).
pub(super) fn expandable(text: &str, max: usize) -> Markup {
    let short = cut(text, max);
    html! {
        @if short.len() == text.len() {
            (text)
        } @else {
            details { summary { (short) } pre { (text) } }
        }
    }
}

/// `path?k=v&…` with the pairs whose value is set, encoded.
pub(super) fn url(path: &str, pairs: &[(&str, Option<String>)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            q.append_pair(k, v);
            any = true;
        }
    }
    if any {
        format!("{path}?{}", q.finish())
    } else {
        path.to_string()
    }
}

/// A form field left empty means no filter.
pub(super) fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// A number of the query string (a cursor id, a page), none when empty; one that does not read
/// as `T` is a 400 naming the field and what it takes (`what`: "a run id").
pub(super) fn number<T: std::str::FromStr>(field: &str, v: &Option<String>, what: &str) -> Result<Option<T>, WebError> {
    given(v).map(|s| s.parse::<T>().map_err(|_| WebError::BadRequest(format!("`{field}={}` is not {what}", cut(s, 40))))).transpose()
}

/// `10,000`: a count as people read it.
pub(super) fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A status or trigger filter: one of `all` (by its word), or none when empty.
pub(super) fn word<T: Copy>(field: &str, v: &Option<String>, all: &[T], name: fn(T) -> &'static str) -> Result<Option<T>, WebError> {
    let Some(v) = given(v) else { return Ok(None) };
    all.iter().copied().find(|t| name(*t) == v).map(Some).ok_or_else(|| {
        let words: Vec<&str> = all.iter().map(|t| name(*t)).collect();
        WebError::BadRequest(format!("`{field}={}` is not one of {}; pick one of those", cut(v, 40), words.join(", ")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_text_and_links_read_as_documented() {
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(12_340), "12.3 s");
        assert_eq!(duration_ms(245_000), "4 min 05 s");
        assert_eq!(duration_ms(7_380_000), "2 h 03 min");
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("first line\nsecond", 100), "first line…");
        assert_eq!(cut("ééééé", 2), "éé…");
        assert_eq!(
            url("/runs", &[("workflow", Some("a b&c".into())), ("status", None), ("to", Some(String::new()))]),
            "/runs?workflow=a+b%26c"
        );
        assert_eq!(url("/runs", &[("status", None)]), "/runs");
        assert_eq!(
            word("status", &Some(" failed ".into()), crate::store::RunStatus::ALL, crate::store::RunStatus::as_str).unwrap(),
            Some(crate::store::RunStatus::Failed)
        );
        assert_eq!(number::<i64>("before", &Some(" 42 ".into()), "a run id").unwrap(), Some(42));
        assert_eq!(number::<i64>("before", &Some(String::new()), "a run id").unwrap(), None);
        let e = number::<std::num::NonZeroUsize>("page", &Some("0".into()), "a page number").unwrap_err();
        assert_eq!(e.to_string(), "`page=0` is not a page number");
        assert_eq!([0, 7, 999, 1_000, 10_000, 1_234_567].map(count), ["0", "7", "999", "1,000", "10,000", "1,234,567"]);
    }
}
