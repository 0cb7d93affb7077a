//! The forms a secret takes on its way to an output, as one pattern per secret.
//!
//! A value rarely leaves verbatim: a browser error quotes the URL it was in (`p%40ss`), a page's
//! HTML escapes it (`p&amp;ss`), `{{upper ...}}` or `{{json ...}}` changes it, a header is base64.
//! Masking only the verbatim value misses all of these, so each secret becomes a pattern in which
//! every character may appear in any of its encodings, and the whole match ignores case:
//!
//! - as it is, in any case (upper, lower, title, mixed: simple Unicode case folding);
//! - percent-encoded (`%40`, either hex case; a space also as `+` or `%20`);
//! - as an HTML character reference (`&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;`, `&#39;`, `&#x3D;`,
//!   any decimal or hex reference of a non-alphanumeric character);
//! - backslash-escaped, as JSON and Markdown write it (`\"`, `\\`, `\/`, `\n`, `\u0022`);
//! - the whole value (as it is, upper- or lower-cased) base64-encoded, standard or URL-safe
//!   alphabet, with or without padding.
//!
//! Characters may mix forms (a JSON string of an HTML-escaped value still matches). Not covered:
//! other encodings (quoted-printable, punycode, hex of the whole value), base64 of the value inside
//! a longer encoded string (an SMTP `AUTH PLAIN` blob), and a value split across lines.

use std::fmt::Write;

use base64::Engine;
use regex::Regex;

/// Values shorter than this are not masked: they would mask ordinary words everywhere, and are
/// weak secrets anyway (documented in docs/security.md).
pub(super) const MIN_LEN: usize = 3;

/// One pattern matching every value of `values` (at least `MIN_LEN` bytes) in any of its forms;
/// `None` when there is nothing to mask.
pub(super) fn matcher<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Regex> {
    let mut values: Vec<&str> = values.into_iter().filter(|v| v.len() >= MIN_LEN).collect();
    // Leftmost-first alternation: a secret that starts with another must be tried first.
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    values.dedup();
    if values.is_empty() {
        return None;
    }
    let alternatives: Vec<String> = values.iter().map(|v| pattern(v)).collect();
    let src = format!("(?i:{})", alternatives.join("|"));
    // A secret of several kilobytes could exceed the default size limit: give it room rather
    // than leave the value unmasked.
    match regex::RegexBuilder::new(&src).size_limit(64 << 20).build() {
        Ok(re) => Some(re),
        Err(_) => {
            // Still mask the verbatim values: better than nothing, and cannot fail.
            let plain: Vec<String> = values.iter().map(|v| regex::escape(v)).collect();
            Regex::new(&plain.join("|")).ok()
        }
    }
}

fn pattern(value: &str) -> String {
    let mut p = String::new();
    for c in value.chars() {
        p.push_str(&char_forms(c));
    }
    let (std, url) = (base64::engine::general_purpose::STANDARD_NO_PAD, base64::engine::general_purpose::URL_SAFE_NO_PAD);
    let cased = [value.to_string(), value.to_uppercase(), value.to_lowercase()];
    for b64 in cased.iter().flat_map(|v| [std.encode(v), url.encode(v)]) {
        // Base64 is case-sensitive: `(?-i)` so that it does not mask unrelated text.
        let _ = write!(p, "|(?-i:{}=*)", regex::escape(&b64));
    }
    p
}

/// Backslashes, as JSON and Markdown put them before a character, themselves in any form (a
/// JSON string that was then URL-encoded has `%5C%22` for `"`, one encoded twice `\\\"`).
const BACKSLASH: &str = r"(?:\\|%5C|&#0*92;|&#x0*5C;)+";

/// `(?:c|%XX|&#..;|\c|...)` for one character of a secret.
fn char_forms(c: char) -> String {
    let mut alts = vec![regex::escape(&c.to_string())];
    if !c.is_alphanumeric() {
        let mut buf = [0u8; 4];
        let pct: String = c.encode_utf8(&mut buf).bytes().map(|b| format!("%{b:02X}")).collect();
        alts.push(pct);
        if c == ' ' {
            alts.push(r"\+".into());
        }
        // HTML: any numeric reference, leading zeros allowed, and the named ones escapers use.
        alts.push(format!("&#0*{};", c as u32));
        alts.push(format!("&#x0*{:X};", c as u32));
        let named = match c {
            '&' => Some("amp"),
            '<' => Some("lt"),
            '>' => Some("gt"),
            '"' => Some("quot"),
            '\'' => Some("apos"),
            _ => None,
        };
        if let Some(n) = named {
            alts.push(format!("&{n};"));
        }
        // JSON and Markdown escape punctuation with a backslash; JSON writes control characters
        // as letters.
        let escaped = match c {
            '\n' => Some("n".to_string()),
            '\r' => Some("r".into()),
            '\t' => Some("t".into()),
            '\u{8}' => Some("b".into()),
            '\u{c}' => Some("f".into()),
            c if c.is_ascii_punctuation() => Some(format!("(?:{})", alts.join("|"))),
            _ => None,
        };
        if let Some(e) = escaped {
            alts.push(format!("{BACKSLASH}{e}"));
        }
    }
    // `\u0041`: JSON encoders that write only ASCII escape everything else this way.
    if (c as u32) <= 0xFFFF && (!c.is_ascii() || !c.is_alphanumeric()) {
        alts.push(format!(r"{BACKSLASH}u{:04X}", c as u32));
    }
    format!("(?:{})", alts.join("|"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(secret: &str, text: &str) -> String {
        matcher([secret]).unwrap().replace_all(text, "***").into_owned()
    }

    #[test]
    fn every_form_of_a_value_is_masked() {
        let s = "p@ss w&rd\"1";
        for form in [
            "p@ss w&rd\"1",
            "P@SS W&RD\"1",
            "P@ss W&rd\"1",
            "p%40ss+w%26rd%221",
            "p%40ss%20w%26rd%221",
            "p%40SS%20W%26RD%221",
            "p@ss w&amp;rd&quot;1",
            "p@ss w&#38;rd&#x22;1",
            "p@ss w&rd\\\"1",
            "p@ss w\\u0026rd\\u00221",
            "p%40ss+w%26rd%5C%221",
            "p@ss w&rd\\\\\\\"1",
            "cEBzcyB3JnJkIjE=",
            "cEBzcyB3JnJkIjE",
        ] {
            assert_eq!(mask(s, &format!("<{form}>")), "<***>", "{form}");
        }
    }

    #[test]
    fn base64_keeps_its_case_and_other_text_is_left_alone() {
        assert_eq!(mask("hunter22", "aHVudGVyMjI= AHVUDGVYMJI="), "*** AHVUDGVYMJI=");
        assert_eq!(mask("hunter22", "hunter 22 and hunter2"), "hunter 22 and hunter2");
        assert!(matcher(["ab", ""]).is_none());
    }

    #[test]
    fn a_longer_secret_is_masked_whole() {
        let re = matcher(["abc", "abcdef"]).unwrap();
        assert_eq!(re.replace_all("xabcdefx abcx", "***"), "x***x ***x");
    }
}
