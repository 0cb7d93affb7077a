//! A small SMTP server on 127.0.0.1 written on raw TCP, so it can misbehave where a real server
//! library would not let it: refuse at RCPT or after the message, drop the connection right
//! after the final dot, or fall silent after MAIL or after the message. One thread per session.
//!
//! Its inbox is what the server *has*: a message counts once the whole of it was read, even when
//! the server then crashed or fell silent instead of answering (`keep: true`, the mail log a
//! real operator would read), and never when it answered with a refusal.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    /// RCPT is answered with this line (`451 4.3.0 busy`, `550 5.1.1 gone`).
    RcptReply(String),
    /// The message is read, then refused with this line (`451 ...`, `554 ...`): not delivered.
    DotReply(String),
    /// The message is read, then the connection is closed without an answer. `keep`: the server
    /// had queued it before it went (the duplicate case); otherwise it lost it.
    DropAfterDot { keep: bool },
    /// No answer to MAIL FROM, ever; the connection is held open until the client closes it.
    /// Recipient rules cannot match this early: give it to `fail_all`.
    SilentAfterMail,
    /// The message is read, then no answer, ever. `keep` as for `DropAfterDot`.
    SilentAfterDot { keep: bool },
}

#[derive(Debug, Clone)]
pub(crate) struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
    /// The server answered 250 (as opposed to keeping it and then dropping or going silent).
    pub acked: bool,
}

impl Mail {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// First header with that name (case-insensitive), as written (not unfolded).
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        let text = self.text();
        let head = text.split("\r\n\r\n").next().unwrap_or("").to_string();
        head.split("\r\n").find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

struct Rule {
    /// `None`: every recipient (and the MAIL phase).
    rcpt: Option<String>,
    fault: Fault,
    /// How many more times it applies.
    left: u32,
}

#[derive(Default)]
struct State {
    inbox: Vec<Mail>,
    rules: Vec<Rule>,
    /// Sessions whose thread is still running.
    open_sessions: usize,
    sessions: u64,
    /// Faults that fired, by kind, for the test to check it tested what it meant to.
    fired: HashMap<String, u32>,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

pub(crate) struct FaultySmtp {
    pub addr: SocketAddr,
    shared: Shared,
}

pub(crate) const ALWAYS: u32 = u32::MAX;

fn bare(addr: &str) -> String {
    let a = addr.trim();
    let a = a.split_once(':').map_or(a, |(_, rest)| rest).trim();
    let a = a.split_whitespace().next().unwrap_or("");
    a.trim_start_matches('<').trim_end_matches('>').to_ascii_lowercase()
}

fn kind(f: &Fault) -> &'static str {
    match f {
        Fault::RcptReply(_) => "rcpt_reply",
        Fault::DotReply(_) => "dot_reply",
        Fault::DropAfterDot { .. } => "drop_after_dot",
        Fault::SilentAfterMail => "silent_after_mail",
        Fault::SilentAfterDot { .. } => "silent_after_dot",
    }
}

impl State {
    /// The first rule matching `pick` for any of `rcpts` (or a catch-all), consumed once.
    fn take(&mut self, rcpts: &[String], pick: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let i = self
            .rules
            .iter()
            .position(|r| r.left > 0 && pick(&r.fault) && r.rcpt.as_ref().is_none_or(|want| rcpts.iter().any(|t| t == want)))?;
        let r = &mut self.rules[i];
        if r.left != ALWAYS {
            r.left -= 1;
        }
        let f = r.fault.clone();
        *self.fired.entry(kind(&f).to_string()).or_default() += 1;
        Some(f)
    }
}

impl FaultySmtp {
    pub(crate) fn start() -> FaultySmtp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared: Shared = Arc::default();
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                {
                    let mut st = s.0.lock().unwrap();
                    st.open_sessions += 1;
                    st.sessions += 1;
                }
                std::thread::spawn(move || {
                    let _ = session(conn, &s);
                    s.0.lock().unwrap().open_sessions -= 1;
                    s.1.notify_all();
                });
            }
        });
        FaultySmtp { addr, shared }
    }

    pub(crate) fn url(&self) -> String {
        format!("smtp://{}?tls=none", self.addr)
    }

    /// With a timeout, so a silent server costs that instead of the 60 s default.
    pub(crate) fn url_with_timeout(&self, timeout: &str) -> String {
        format!("smtp://{}?tls=none&timeout={timeout}", self.addr)
    }

    /// `fault` for messages to `rcpt`, the next `times` times (`ALWAYS` for good).
    pub(crate) fn fail(&self, rcpt: &str, fault: Fault, times: u32) {
        let rule = Rule { rcpt: Some(rcpt.to_ascii_lowercase()), fault, left: times };
        self.shared.0.lock().unwrap().rules.push(rule);
    }

    /// `fault` for every session, the next `times` times.
    pub(crate) fn fail_all(&self, fault: Fault, times: u32) {
        self.shared.0.lock().unwrap().rules.push(Rule { rcpt: None, fault, left: times });
    }

    /// The server is fixed: no more faults.
    pub(crate) fn heal(&self) {
        self.shared.0.lock().unwrap().rules.clear();
    }

    pub(crate) fn fired(&self, kind: &str) -> u32 {
        self.shared.0.lock().unwrap().fired.get(kind).copied().unwrap_or(0)
    }

    pub(crate) fn inbox(&self) -> Vec<Mail> {
        self.shared.0.lock().unwrap().inbox.clone()
    }

    pub(crate) fn count(&self) -> usize {
        self.shared.0.lock().unwrap().inbox.len()
    }

    /// Messages the server has, per recipient (envelope).
    pub(crate) fn per_recipient(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for mail in self.shared.0.lock().unwrap().inbox.iter() {
            for t in &mail.to {
                *m.entry(t.clone()).or_default() += 1;
            }
        }
        m
    }

    pub(crate) fn count_to(&self, rcpt: &str) -> usize {
        self.per_recipient().get(&rcpt.to_ascii_lowercase()).copied().unwrap_or(0)
    }

    pub(crate) fn open_sessions(&self) -> usize {
        self.shared.0.lock().unwrap().open_sessions
    }

    /// Waits until at least `n` messages are in the inbox; returns the count reached.
    pub(crate) fn wait_for(&self, n: usize, timeout: Duration) -> usize {
        let (lock, cv) = &*self.shared;
        let deadline = Instant::now() + timeout;
        let mut st = lock.lock().unwrap();
        while st.inbox.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = cv.wait_timeout(st, left).unwrap().0;
        }
        st.inbox.len()
    }

    /// Waits until every session has ended (the client closed it): after a client was killed,
    /// bytes already in a socket may still be turning into a message.
    #[track_caller]
    pub(crate) fn wait_idle(&self, timeout: Duration) {
        let (lock, cv) = &*self.shared;
        let deadline = Instant::now() + timeout;
        let mut st = lock.lock().unwrap();
        while st.open_sessions > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "{} SMTP session(s) still open after {timeout:?}", st.open_sessions);
            st = cv.wait_timeout(st, left).unwrap().0;
        }
    }
}

/// Reads and discards until the client closes: a server that has stopped answering.
fn silent(r: &mut BufReader<TcpStream>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while r.read_until(b'\n', &mut buf)? > 0 {
        buf.clear();
    }
    Ok(())
}

fn session(conn: TcpStream, shared: &Shared) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    let reply = |w: &mut TcpStream, line: &str| w.write_all(format!("{line}\r\n").as_bytes());
    reply(&mut w, "220 faulty.localhost ESMTP")?;
    let (mut from, mut to): (String, Vec<String>) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let verb = cmd.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => w.write_all(b"250-faulty.localhost\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")?,
            "HELO" => reply(&mut w, "250 faulty.localhost")?,
            "MAIL" => {
                let fault = shared.0.lock().unwrap().take(&[], |f| *f == Fault::SilentAfterMail);
                if fault.is_some() {
                    return silent(&mut r);
                }
                from = bare(&cmd);
                to.clear();
                reply(&mut w, "250 2.1.0 Ok")?;
            }
            "RCPT" => {
                let rcpt = bare(&cmd);
                let fault = shared.0.lock().unwrap().take(std::slice::from_ref(&rcpt), |f| matches!(f, Fault::RcptReply(_)));
                match fault {
                    Some(Fault::RcptReply(answer)) => reply(&mut w, &answer)?,
                    _ => {
                        to.push(rcpt);
                        reply(&mut w, "250 2.1.5 Ok")?;
                    }
                }
            }
            "DATA" if to.is_empty() => reply(&mut w, "554 5.5.1 No valid recipients")?,
            "DATA" => {
                reply(&mut w, "354 End data with <CR><LF>.<CR><LF>")?;
                let mut data = Vec::new();
                let mut l = Vec::new();
                loop {
                    l.clear();
                    if r.read_until(b'\n', &mut l)? == 0 {
                        return Ok(()); // cut off mid-message: the server has nothing
                    }
                    if l == b".\r\n" {
                        break;
                    }
                    // Dot-stuffing: a leading `..` stands for `.`.
                    let body = if l.starts_with(b"..") { &l[1..] } else { &l[..] };
                    data.extend_from_slice(body);
                }
                let mail = Mail { from: std::mem::take(&mut from), to: std::mem::take(&mut to), data, acked: false };
                let (lock, cv) = &**shared;
                let mut st = lock.lock().unwrap();
                let fault =
                    st.take(&mail.to, |f| matches!(f, Fault::DotReply(_) | Fault::DropAfterDot { .. } | Fault::SilentAfterDot { .. }));
                match fault {
                    Some(Fault::DotReply(answer)) => {
                        drop(st);
                        reply(&mut w, &answer)?;
                    }
                    Some(Fault::DropAfterDot { keep }) => {
                        if keep {
                            st.inbox.push(mail);
                            cv.notify_all();
                        }
                        drop(st);
                        let _ = w.shutdown(std::net::Shutdown::Both);
                        return Ok(());
                    }
                    Some(Fault::SilentAfterDot { keep }) => {
                        if keep {
                            st.inbox.push(mail);
                            cv.notify_all();
                        }
                        drop(st);
                        return silent(&mut r);
                    }
                    _ => {
                        // Kept before it is acknowledged, like a real server's queue: a client
                        // killed right now may never see the 250, but the server has it.
                        st.inbox.push(Mail { acked: true, ..mail });
                        cv.notify_all();
                        drop(st);
                        reply(&mut w, "250 2.0.0 Ok: queued")?;
                    }
                }
            }
            "RSET" => {
                from.clear();
                to.clear();
                reply(&mut w, "250 2.0.0 Ok")?;
            }
            "NOOP" => reply(&mut w, "250 2.0.0 Ok")?,
            "QUIT" => {
                reply(&mut w, "221 2.0.0 Bye")?;
                return Ok(());
            }
            _ => reply(&mut w, "502 5.5.2 Command not recognized")?,
        }
    }
}
