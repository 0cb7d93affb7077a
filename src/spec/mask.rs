//! Hides the password of `scheme://user:password@host` in text shown to people.
//!
//! `cxflow.yaml` may hold a URL with a login (`smtp_url`, a PostgreSQL `database_url`). An error
//! about that line quotes it, and error output ends up in terminals, logs and tickets, so every
//! configuration diagnostic goes through `diagnostic` before anyone sees it.

use std::sync::OnceLock;

use regex::Regex;

use super::Diagnostic;

const MASK: &str = "***";

fn patterns() -> &'static [Regex; 2] {
    static P: OnceLock<[Regex; 2]> = OnceLock::new();
    P.get_or_init(|| {
        [
            // scheme://user:password@host: the password runs to the last `@` of the word. URL
            // parsers stop at `/`, `?` or `#`, but a password written unencoded (`p/ss`) is exactly
            // the URL that fails to parse and gets quoted, so those do not end it: a path holding
            // an `@` is masked too, which hides nothing anyone needs.
            Regex::new(r#"[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#:@]*:([^\s"'`]*)@"#).expect("valid regex"),
            // user:password@host with the scheme forgotten, for the same reason. The password
            // does not start with `/`: that is `scheme://`, which the pattern above handles.
            Regex::new(r#"(?:^|[\s"'\[{,=])[^\s/?#:@"'\[{,=]+:([^\s/"'`][^\s"'`]*)@"#).expect("valid regex"),
        ]
    })
}

/// `text` with every URL password replaced by `***`.
pub fn text(text: &str) -> String {
    line(text, 1).0
}

/// `src` masked, and the 1-based character column `col` moved so that it still points at the
/// same character (or at the mask, when it pointed inside a password).
pub fn line(src: &str, col: usize) -> (String, usize) {
    patterns().iter().fold((src.to_string(), col), |(s, c), re| mask_with(re, &s, c))
}

/// The diagnostic with its message, help and quoted source line masked, caret kept in place.
pub fn diagnostic(mut d: Diagnostic) -> Diagnostic {
    d.message = text(&d.message);
    d.help = d.help.as_deref().map(text);
    if let Some(src) = &d.source_line {
        let (masked, col) = line(src, d.col);
        d.source_line = Some(masked);
        d.col = col;
    }
    d
}

fn mask_with(re: &Regex, src: &str, col: usize) -> (String, usize) {
    let caret = col.saturating_sub(1);
    let mut out = String::with_capacity(src.len());
    // Where the caret lands in `out`, in characters, once the segment holding it is copied.
    let mut new_caret = None;
    let mut last = 0;
    let mut seen = 0; // characters of `src` before `last`
    for caps in re.captures_iter(src) {
        let Some(g) = caps.get(1).filter(|g| !g.is_empty()) else { continue };
        let kept = &src[last..g.start()];
        let (kept_n, pw_n) = (kept.chars().count(), g.as_str().chars().count());
        if new_caret.is_none() && caret < seen + kept_n {
            new_caret = Some(out.chars().count() + caret - seen);
        }
        out.push_str(kept);
        if new_caret.is_none() && caret < seen + kept_n + pw_n {
            new_caret = Some(out.chars().count());
        }
        out.push_str(MASK);
        seen += kept_n + pw_n;
        last = g.end();
    }
    let caret = new_caret.unwrap_or_else(|| out.chars().count() + caret.saturating_sub(seen));
    out.push_str(&src[last..]);
    (out, caret + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_url_passwords_and_keeps_the_rest() {
        assert_eq!(text("smtp_url: smtp://bot:pa55word@mail.x.com:587"), "smtp_url: smtp://bot:***@mail.x.com:587");
        assert_eq!(text("\"smtps://u:p@ss:w@h\""), "\"smtps://u:***@h\"");
        assert_eq!(text("smtp_url: bot:pa55word@mail.x.com"), "smtp_url: bot:***@mail.x.com");
        assert_eq!(text("postgres://cx@127.0.0.1/runs and smtp://a@b"), "postgres://cx@127.0.0.1/runs and smtp://a@b");
        assert_eq!(text("smtp_from: Care <care@x.com>"), "smtp_from: Care <care@x.com>");
        assert_eq!(text("shutdown_grace: 1:30"), "shutdown_grace: 1:30");
    }

    #[test]
    fn a_password_holding_url_delimiters_is_hidden_whole() {
        for pw in ["p/ss", "p#ss", "p?ss", "p/s?s#s@x"] {
            assert_eq!(text(&format!("smtp_url: [smtp://bot:{pw}@mail.x.com:587]")), "smtp_url: [smtp://bot:***@mail.x.com:587]", "{pw}");
            assert_eq!(text(&format!("smtp_url: bot:{pw}@mail.x.com")), "smtp_url: bot:***@mail.x.com", "{pw}");
        }
        assert_eq!(text("a: \"smtp://u:p/w@h\", b: \"x@y\""), "a: \"smtp://u:***@h\", b: \"x@y\"");
    }

    #[test]
    fn caret_stays_on_its_character() {
        let src = "x: [smtp://u:secret@h, 5]";
        assert_eq!(line(src, 4), ("x: [smtp://u:***@h, 5]".to_string(), 4));
        // After the password: moved left by what the mask saved.
        assert_eq!(line(src, 24), ("x: [smtp://u:***@h, 5]".to_string(), 21));
        // Inside it: onto the mask.
        assert_eq!(line(src, 16), ("x: [smtp://u:***@h, 5]".to_string(), 14));
    }
}
