//! How a value is escaped for each kind of output, and the one check a header value needs.

/// A control character no rendered page or message means: NUL, ESC, DEL, the C1 controls (all
/// of `char::is_control` but tab and line ends). A NUL is invalid HTML and cuts the text short in
/// some mail clients; an ESC sequence acts on a terminal that prints the output. Route's digests
/// drop the same ones.
pub fn is_stray_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// Handlebars' own escape also escapes `=` and backticks, which breaks query strings in links
/// (`?a=1&b=2` → `?a&#x3D;1...`). Escaping exactly these five is enough for text and attributes;
/// stray control characters (`is_stray_control`) are dropped.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if is_stray_control(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// Backslash-escapes what Markdown (and HTML inside Markdown) would interpret, so a customer's
/// text shows as the literal text they wrote. Only what would change the meaning is escaped (`&`,
/// `(`, `-5` and `4.5` stay as they are), so the raw `.md` file stays readable.
pub fn escape_markdown(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    let marker = line_start_marker(s);
    for (i, c) in s.char_indices() {
        match c {
            // Emphasis, strikethrough, code, links, tables and inline HTML.
            '\\' | '`' | '*' | '_' | '~' | '[' | ']' | '|' | '<' | '>' => {
                o.push('\\');
                o.push(c);
            }
            // A newline inside a value would break out of the list item it is rendered in.
            '\n' | '\r' => o.push(' '),
            c => {
                if marker == Some(i) {
                    o.push('\\');
                }
                o.push(c);
            }
        }
    }
    o
}

/// Where a value rendered at the start of a line (`   {{text}}` under a list item) would begin a
/// heading (`#`), a list (`- `, `+ `, `1. `) or a rule / underline (`---`, `===`): the byte to
/// escape. `-5` and `4.5` are left alone.
fn line_start_marker(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let i = b.iter().position(|c| !c.is_ascii_whitespace())?;
    let blank_at = |j: usize| b.get(j).is_none_or(|c| c.is_ascii_whitespace());
    match b[i] {
        b'#' => Some(i),
        c @ (b'-' | b'+' | b'=') if blank_at(i + 1) || b.get(i + 1) == Some(&c) => Some(i),
        b'0'..=b'9' => {
            let j = i + b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            (matches!(b.get(j), Some(b'.' | b')')) && blank_at(j + 1)).then_some(j)
        }
        _ => None,
    }
}

/// Characters of record text an error quotes; the rest is cut and only counted.
const QUOTED_CHARS: usize = 80;

/// Record text as an error message quotes it: in double quotes with control characters (and
/// quotes, backslashes, invisible format characters) escaped as `\r`, `\u{1b}`, ..., and cut to
/// its first 80 characters followed by its full length: `"Eve\r\nBcc: …"… (1048594 bytes)`.
/// A 1 MB field would otherwise make a 1 MB error in the run log and on the terminal, and an
/// escape sequence in the data would act on the terminal of whoever reads the log.
pub fn quote_data(s: &str) -> String {
    match s.char_indices().nth(QUOTED_CHARS) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &s[..cut], s.len()),
    }
}

/// A header value must be one line: a CR or LF in it would start a header of the data's choosing
/// (`Bcc: everyone`). Any control character (not just CR/LF) is either that or broken data; a tab
/// is legitimate folding whitespace. Same rule as `send_email::message`, which checks again.
pub(super) fn one_line(name: &str, value: &str) -> Result<(), String> {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "`{name}` contains a line break ({}); refusing to send (header injection): a header must be one line, remove the line break from the data",
            quote_data(value)
        ));
    }
    Ok(())
}
