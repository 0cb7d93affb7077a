//! Text for a terminal. Record data (item keys, errors quoting a record, parameters) reaches
//! `cxflow show`, `runs` and the run summary; an escape sequence in it would be run by the
//! terminal (retitle the window, hide lines, rewrite what was printed before it), so control
//! characters are shown escaped instead. `--json` output is JSON-escaped already.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `s` with every control character but newline and tab written as an escape (`\x1b`,
/// `\u{202e}`): C0 and C1 controls, DEL, and the bidirectional overrides that make text read
/// differently from what it is.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if !hidden(c) => out.push(c),
            c if (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

fn hidden(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped_and_text_is_kept() {
        assert_eq!(printable("Zoë 日本 ok\n\tnext"), "Zoë 日本 ok\n\tnext");
        assert_eq!(printable("a\x1b]0;owned\x07b"), "a\\x1b]0;owned\\x07b");
        assert_eq!(printable("\rx\u{9b}31m\u{7f}"), "\\x0d".to_string() + "x\\x9b31m\\x7f");
        assert_eq!(printable("abc\u{202e}fdp.exe"), "abc\\u{202e}fdp.exe");
    }
}
