//! Turning rendered strings into a lettre `Message`, refusing anything that could put a wrong or
//! injected header in front of a customer. Every check here runs before the ledger is claimed, so
//! a refused item has nothing to release and nothing was sent.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};

use crate::plan::templates::quote_data;

/// One email with every template already rendered.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub reply_to: Option<String>,
    pub subject: String,
    pub headers: Vec<(String, String)>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub attachments: Vec<PathBuf>,
    /// Idempotency key; becomes the Message-ID so a resent uncertain email can be deduplicated
    /// by the receiving side.
    pub key: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MessageError {
    // Record data is quoted cut and escaped: a 1 MB field must not make a 1 MB error.
    #[error("`{field}` contains a line break ({}); refusing to send (header injection)", quote_data(.value))]
    LineBreak { field: String, value: String },
    #[error("`{field}` is not a valid address: {} ({reason})", quote_data(.value))]
    BadAddress { field: String, value: String, reason: String },
    #[error("`to` is empty after rendering; there is nobody to send to")]
    NoRecipient,
    #[error("header `{0}` is not allowed: {1}")]
    BadHeader(String, String),
    #[error("attachment `{path}` cannot be read: {err}")]
    Attachment { path: PathBuf, err: String },
    #[error("cannot build the message: {0}")]
    Build(String),
}

/// Headers the step sets itself; letting data or spec override them would defeat the checks.
const RESERVED: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "message-id",
    "date",
    "sender",
    "content-type",
    "content-transfer-encoding",
    "mime-version",
    "return-path",
];

fn no_line_break(field: &str, value: &str) -> Result<(), MessageError> {
    // Any control character (not just CR/LF) in a header is either an injection attempt or broken
    // data; tabs are legitimate folding whitespace.
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(MessageError::LineBreak { field: field.into(), value: value.into() });
    }
    Ok(())
}

/// Parses `Name <addr@host>` or a bare `addr@host`. Done by hand rather than with lettre's
/// list parser so that a comma or quote inside a customer's name stays part of the name.
pub fn parse_mailbox(field: &str, value: &str) -> Result<Mailbox, MessageError> {
    no_line_break(field, value)?;
    let bad = |reason: &str| MessageError::BadAddress { field: field.into(), value: value.into(), reason: reason.into() };
    let v = value.trim();
    let (name, addr) = match (v.rfind('<'), v.ends_with('>')) {
        (Some(i), true) => {
            let name = v[..i].trim().trim_matches('"').trim();
            ((!name.is_empty()).then(|| name.to_string()), &v[i + 1..v.len() - 1])
        }
        (None, false) => (None, v),
        _ => return Err(bad("unbalanced `<` `>`")),
    };
    let addr = addr.trim();
    if addr.is_empty() {
        return Err(bad("empty address"));
    }
    let address = Address::from_str(addr).map_err(|e| bad(&e.to_string()))?;
    Ok(Mailbox::new(name, address))
}

fn mailboxes(field: &str, values: &[String]) -> Result<Vec<Mailbox>, MessageError> {
    values
        .iter()
        // A list rendered into one string (`{{item.team.email}}` of a team with two addresses)
        // arrives as `a@x, b@y`; with no `<` in it, a comma cannot be part of a display name.
        .flat_map(|v| if v.contains('<') { vec![v.as_str()] } else { v.split(',').collect() })
        .filter(|v| !v.trim().is_empty()) // an empty optional cc rendered from data is "no cc"
        .map(|v| parse_mailbox(field, v))
        .collect()
}

/// Message-ID from the idempotency key: stable across a resend so receivers can deduplicate.
fn message_id(key: &str, from: &Mailbox) -> String {
    let mut local = String::with_capacity(key.len() + 8);
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.+/".contains(&b) {
            local.push(b as char);
        } else {
            local.push_str(&format!("={b:02X}"));
        }
    }
    let local = local.trim_matches('.').replace("..", ".=2E");
    format!("<{local}.cxflow@{}>", from.email.domain())
}

fn content_type_for(path: &Path) -> ContentType {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let mime = match ext.as_str() {
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "csv" => "text/csv",
        "txt" => "text/plain",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        "zip" => "application/zip",
        "ics" => "text/calendar",
        _ => "application/octet-stream",
    };
    ContentType::parse(mime).unwrap_or(ContentType::TEXT_PLAIN)
}

/// Builds the message, reading the attachment files here (blocking): for tests and tools. The
/// step reads them beforehand without blocking the runtime (`attachments.rs`) and calls
/// `build_with`.
pub fn build(r: &Rendered) -> Result<Message, MessageError> {
    let files = r
        .attachments
        .iter()
        .map(|path| std::fs::read(path).map(Arc::new).map_err(|e| attachment_error(path, &e)))
        .collect::<Result<Vec<_>, _>>()?;
    build_with(r, &files)
}

pub fn attachment_error(path: &Path, e: &std::io::Error) -> MessageError {
    MessageError::Attachment { path: path.to_path_buf(), err: e.to_string() }
}

/// Builds the message with `files`, the contents of `r.attachments` in the same order.
pub fn build_with(r: &Rendered, files: &[Arc<Vec<u8>>]) -> Result<Message, MessageError> {
    if files.len() != r.attachments.len() {
        return Err(MessageError::Build(format!("{} attachment(s) but {} file(s) read", r.attachments.len(), files.len())));
    }
    no_line_break("subject", &r.subject)?;
    let from = parse_mailbox("from", &r.from)?;
    let to = mailboxes("to", &r.to)?;
    if to.is_empty() {
        return Err(MessageError::NoRecipient);
    }
    let mut b = Message::builder().from(from.clone()).subject(r.subject.clone()).message_id(Some(message_id(&r.key, &from)));
    for m in to {
        b = b.to(m);
    }
    for m in mailboxes("cc", &r.cc)? {
        b = b.cc(m);
    }
    for m in mailboxes("bcc", &r.bcc)? {
        b = b.bcc(m);
    }
    if let Some(rt) = r.reply_to.as_deref().filter(|s| !s.trim().is_empty()) {
        b = b.reply_to(parse_mailbox("reply_to", rt)?);
    }
    for (name, value) in &r.headers {
        no_line_break(name, value)?;
        if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(MessageError::BadHeader(name.clone(), "set it with the step's own field".into()));
        }
        let hn = HeaderName::new_from_ascii(name.clone())
            .map_err(|_| MessageError::BadHeader(name.clone(), "not a valid header name".into()))?;
        b = b.raw_header(HeaderValue::new(hn, value.clone()));
    }

    let body = match (&r.html, &r.text) {
        (Some(h), Some(t)) => Part::Multi(MultiPart::alternative_plain_html(t.clone(), h.clone())),
        (Some(h), None) => Part::Single(SinglePart::html(h.clone())),
        (None, Some(t)) => Part::Single(SinglePart::plain(t.clone())),
        (None, None) => return Err(MessageError::Build("no body part".into())),
    };
    let msg = if r.attachments.is_empty() {
        match body {
            Part::Multi(m) => b.multipart(m),
            Part::Single(s) => b.singlepart(s),
        }
    } else {
        let mut mixed = match body {
            Part::Multi(m) => MultiPart::mixed().multipart(m),
            Part::Single(s) => MultiPart::mixed().singlepart(s),
        };
        for (path, bytes) in r.attachments.iter().zip(files) {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            // The message owns its copy; the file itself is read once per step when its path is literal.
            mixed = mixed.singlepart(Attachment::new(name).body(bytes.to_vec(), content_type_for(path)));
        }
        b.multipart(mixed)
    };
    msg.map_err(|e| MessageError::Build(e.to_string()))
}

enum Part {
    Multi(MultiPart),
    Single(SinglePart),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Rendered {
        Rendered {
            from: "Support <support@example.com>".into(),
            to: vec!["Ann O'Neil, Jr. <ann@example.org>".into()],
            subject: "How did we do on ticket 42?".into(),
            html: Some("<p>Hi</p>".into()),
            text: Some("Hi & bye".into()),
            key: "follow-up/42".into(),
            ..Default::default()
        }
    }

    #[test]
    fn builds_multipart_alternative_with_stable_id() {
        let m = build(&base()).unwrap();
        let s = String::from_utf8(m.formatted()).unwrap();
        assert!(s.contains("multipart/alternative"), "{s}");
        assert!(s.contains("Message-ID: <follow-up/42.cxflow@example.com>"), "{s}");
        assert!(s.contains("ann@example.org"));
        assert!(s.contains("Hi & bye"));
        assert_eq!(m.envelope().to().len(), 1);
    }

    #[test]
    fn bcc_in_envelope_not_headers_and_custom_headers() {
        let mut r = base();
        r.bcc = vec!["audit@example.com".into()];
        r.cc = vec!["".into()];
        r.headers = vec![("X-Campaign".into(), "follow-up".into())];
        let m = build(&r).unwrap();
        let s = String::from_utf8(m.formatted()).unwrap();
        assert!(!s.contains("audit@"), "{s}");
        assert!(s.contains("X-Campaign: follow-up"));
        assert_eq!(m.envelope().to().len(), 2);
    }

    #[test]
    fn refuses_injection_and_bad_addresses() {
        let mut r = base();
        r.to = vec!["Eve\r\nBcc: all@x.com <eve@example.org>".into()];
        assert!(matches!(build(&r), Err(MessageError::LineBreak { .. })));
        let mut r = base();
        r.subject = "Hi\nBcc: x@y.z".into();
        assert!(matches!(build(&r), Err(MessageError::LineBreak { ref field, .. }) if field == "subject"));
        let mut r = base();
        r.to = vec!["Bob <not-an-address>".into()];
        let e = build(&r).unwrap_err().to_string();
        assert!(e.contains("`to` is not a valid address: \"Bob <not-an-address>\""), "{e}");
        let mut r = base();
        r.headers = vec![("Bcc".into(), "x@y.z".into())];
        assert!(matches!(build(&r), Err(MessageError::BadHeader(..))));
        let mut r = base();
        r.to = vec![" ".into()];
        assert_eq!(build(&r).unwrap_err(), MessageError::NoRecipient);
    }

    #[test]
    fn a_refusal_quotes_record_data_cut_and_escaped() {
        let mut r = base();
        r.subject = format!("Hi\u{1b}[2J{}", "y".repeat(1 << 20));
        assert_eq!(
            build(&r).unwrap_err().to_string(),
            format!(
                r#"`subject` contains a line break ("Hi\u{{1b}}[2J{}"… (1048582 bytes)); refusing to send (header injection)"#,
                "y".repeat(74)
            )
        );
        let mut r = base();
        r.to = vec![format!("Bob <{}>", "z".repeat(1 << 20))];
        assert_eq!(
            build(&r).unwrap_err().to_string(),
            format!(r#"`to` is not a valid address: "Bob <{}"… (1048582 bytes) (Missing domain or user)"#, "z".repeat(75))
        );
    }

    #[test]
    fn single_parts_and_attachments() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("receipt.pdf");
        std::fs::write(&p, b"%PDF-1.4 test").unwrap();
        let mut r = base();
        r.html = None;
        r.attachments = vec![p];
        let s = String::from_utf8(build(&r).unwrap().formatted()).unwrap();
        assert!(s.contains("multipart/mixed") && !s.contains("alternative"), "{s}");
        assert!(s.contains("filename=\"receipt.pdf\"") && s.contains("application/pdf"), "{s}");
        let mut r = base();
        r.attachments = vec!["/nonexistent/x.pdf".into()];
        assert!(matches!(build(&r), Err(MessageError::Attachment { .. })));
    }

    #[test]
    fn a_rendered_list_of_bare_addresses_is_split_but_names_keep_their_commas() {
        let m = mailboxes("to", &["billing@example.com, finance@example.com".to_string()]).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].email.to_string(), "finance@example.com");
        let m = mailboxes("to", &["\"Doe, Jane\" <jane@example.com>".to_string()]).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].name.as_deref(), Some("Doe, Jane"));
    }
}
