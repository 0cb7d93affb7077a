//! Embedded SMTP sink on 127.0.0.1 for tests and the benchmark (mailin-embedded, one thread per
//! session). Stores every accepted message and can inject faults per recipient:
//! a 4xx a given number of times, or a 5xx always.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use mailin_embedded::{response, Handler, Response, Server, SslConfig};

#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
}

impl Received {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// First header with that name (case-insensitive), unfolded.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        let text = self.text();
        let head = text.split("\r\n\r\n").next().unwrap_or("");
        let mut out: Option<String> = None;
        let mut taking = false;
        for line in head.split("\r\n") {
            if taking && (line.starts_with(' ') || line.starts_with('\t')) {
                out.as_mut().unwrap().push_str(line.trim_start_matches(['\t']));
                continue;
            }
            if out.is_some() {
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                if n.eq_ignore_ascii_case(name) {
                    out = Some(v.trim_start().to_string());
                    taking = true;
                }
            }
        }
        out
    }
}

/// A leaf MIME part, decoded.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub content_type: String,
    pub filename: Option<String>,
    pub body: Vec<u8>,
}

impl Part {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Received {
    /// Leaf parts (nested multiparts flattened), with quoted-printable / base64 decoded.
    pub(crate) fn parts(&self) -> Vec<Part> {
        let mut out = vec![];
        entity(&self.text(), &mut out);
        out
    }

    /// The first part whose content type starts with `ct` (e.g. "text/plain"), as text.
    pub(crate) fn part(&self, ct: &str) -> Option<String> {
        self.parts().into_iter().find(|p| p.content_type.starts_with(ct)).map(|p| p.text())
    }
}

fn header_of(head: &str, name: &str) -> Option<String> {
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

fn param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().trim_matches('"').to_string())
    })
}

fn entity(raw: &str, out: &mut Vec<Part>) {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let ct = header_of(head, "Content-Type").unwrap_or_else(|| "text/plain".into());
    if ct.to_ascii_lowercase().starts_with("multipart/") {
        let Some(b) = param(&ct, "boundary") else { return };
        let delim = format!("--{b}");
        for chunk in body.split(&delim).skip(1) {
            if chunk.starts_with("--") {
                break;
            }
            entity(chunk.trim_start_matches("\r\n"), out);
        }
        return;
    }
    let body = body.strip_suffix("\r\n").unwrap_or(body);
    let cte = header_of(head, "Content-Transfer-Encoding").unwrap_or_default().to_ascii_lowercase();
    let decoded = match cte.as_str() {
        "quoted-printable" => qp(body),
        "base64" => b64(body),
        _ => body.as_bytes().to_vec(),
    };
    let filename = header_of(head, "Content-Disposition").and_then(|d| param(&d, "filename"));
    out.push(Part { content_type: ct.split(';').next().unwrap().trim().to_string(), filename, body: decoded });
}

fn qp(s: &str) -> Vec<u8> {
    let s = s.replace("=\r\n", "");
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn b64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let (mut out, mut acc, mut bits) = (vec![], 0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[derive(Default)]
struct State {
    messages: Vec<Received>,
    /// recipient → how many more times RCPT answers 451.
    transient: HashMap<String, u32>,
    /// recipient → RCPT answers 550 with this text, always.
    permanent: HashMap<String, String>,
    rcpt_calls: u64,
    /// Benchmarks drop message bodies so the sink's memory does not blur the sender's figure.
    discard_data: bool,
    /// How long the server takes to answer each message's end of data, like a real server
    /// that scans and queues it: the sender's time per message is then I/O, not CPU.
    answer_after: Duration,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

#[derive(Clone)]
struct Sink {
    shared: Shared,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

fn bare(addr: &str) -> String {
    addr.trim().trim_start_matches('<').trim_end_matches('>').to_ascii_lowercase()
}

impl Handler for Sink {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        self.from = bare(from);
        self.to.clear();
        self.data.clear();
        response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        let to = bare(to);
        let mut st = self.shared.0.lock().unwrap();
        st.rcpt_calls += 1;
        if let Some(text) = st.permanent.get(&to) {
            return Response::custom(550, text.clone());
        }
        if let Some(n) = st.transient.get_mut(&to) {
            if *n > 0 {
                *n -= 1;
                return Response::custom(451, "4.3.0 Try again later (injected)".into());
            }
        }
        self.to.push(to);
        response::OK
    }

    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, _to: &[String]) -> Response {
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let wait = self.shared.0.lock().unwrap().answer_after;
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        let mut msg = Received { from: self.from.clone(), to: std::mem::take(&mut self.to), data: std::mem::take(&mut self.data) };
        let (lock, cv) = &*self.shared;
        let mut st = lock.lock().unwrap();
        if st.discard_data {
            msg.data = Vec::new();
        }
        st.messages.push(msg);
        drop(st);
        cv.notify_all();
        response::OK
    }
}

pub(crate) struct SmtpSink {
    pub addr: SocketAddr,
    shared: Shared,
}

impl SmtpSink {
    /// Starts a sink on an ephemeral loopback port; the server thread lives until the process ends.
    pub(crate) fn start() -> SmtpSink {
        Self::start_with_threads(32)
    }

    /// `threads` bounds concurrent SMTP sessions (mailin serves one per thread).
    pub(crate) fn start_with_threads(threads: u32) -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared: Shared = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let handler = Sink { shared: shared.clone(), from: String::new(), to: vec![], data: vec![] };
        let mut server = Server::new(handler);
        server.with_name("sink.localhost").with_ssl(SslConfig::None).unwrap().with_num_threads(threads).with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        SmtpSink { addr, shared }
    }

    /// Keep envelopes only, not message bodies.
    pub(crate) fn discard_data(&self) {
        self.shared.0.lock().unwrap().discard_data = true;
    }

    /// Every message's end of data is answered `d` later (one thread per session waits).
    pub(crate) fn answer_after(&self, d: Duration) {
        self.shared.0.lock().unwrap().answer_after = d;
    }

    pub(crate) fn url(&self) -> String {
        format!("smtp://{}?tls=none", self.addr)
    }

    /// RCPT for `addr` answers 451 the next `times` times, then accepts.
    pub(crate) fn fail_transient(&self, addr: &str, times: u32) {
        self.shared.0.lock().unwrap().transient.insert(addr.to_ascii_lowercase(), times);
    }

    /// RCPT for `addr` always answers 550 with `text`.
    pub(crate) fn fail_permanent(&self, addr: &str, text: &str) {
        self.shared.0.lock().unwrap().permanent.insert(addr.to_ascii_lowercase(), text.into());
    }

    pub(crate) fn messages(&self) -> Vec<Received> {
        self.shared.0.lock().unwrap().messages.clone()
    }

    pub(crate) fn count(&self) -> usize {
        self.shared.0.lock().unwrap().messages.len()
    }

    pub(crate) fn rcpt_calls(&self) -> u64 {
        self.shared.0.lock().unwrap().rcpt_calls
    }

    pub(crate) fn clear(&self) {
        self.shared.0.lock().unwrap().messages.clear();
    }

    /// Waits until at least `n` messages arrived; returns the count reached.
    pub(crate) fn wait_for(&self, n: usize, timeout: Duration) -> usize {
        let (lock, cv) = &*self.shared;
        let deadline = Instant::now() + timeout;
        let mut st = lock.lock().unwrap();
        while st.messages.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = cv.wait_timeout(st, left).unwrap().0;
        }
        st.messages.len()
    }
}
