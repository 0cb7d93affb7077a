//! An SMTP server with TLS on 127.0.0.1 (tokio-rustls) for the tests of email over TLS: STARTTLS
//! and/or TLS from the first byte, AUTH PLAIN and LOGIN checked against one login, and a
//! certificate from a CA the test makes (`Pki` in pki.rs). It records every line the client
//! sent, each marked as read in clear or over TLS, so a test can show what crossed the wire
//! unencrypted.
#![allow(dead_code)]

use std::net::TcpListener as StdListener;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use rustls::pki_types::PrivateKeyDer;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[path = "pki.rs"]
mod pki;
pub(crate) use pki::{Identity, Pki};

#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// Offer STARTTLS on the plain connection.
    pub starttls: bool,
    /// TLS from the first byte (what `smtps://` expects).
    pub implicit: bool,
    /// Offer AUTH (in clear too, as a careless server would) and require this user and password
    /// before MAIL.
    pub login: Option<(String, String)>,
    /// Close each session after its first message, and show this certificate from the second
    /// session on: a server whose certificate changes mid-run.
    pub then: Option<Identity>,
}

/// One line the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub tls: bool,
    pub text: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
    /// It came over TLS.
    pub tls: bool,
    /// The user that logged in on its session.
    pub user: Option<String>,
}

#[derive(Default)]
struct State {
    lines: Vec<Line>,
    inbox: Vec<Mail>,
    /// TLS handshakes that failed, in the server's words.
    handshake_errors: Vec<String>,
    logins_refused: usize,
}

pub(crate) struct TlsSmtp {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TlsSmtp {
    pub(crate) fn start(identity: &Identity, options: Options) -> TlsSmtp {
        let first = acceptor(identity);
        let then = options.then.as_ref().map(acceptor).unwrap_or_else(|| first.clone());
        let listener = StdListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                let options = Arc::new(options);
                let mut sessions = 0;
                loop {
                    tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => {
                            let Ok((tcp, _)) = accepted else { continue };
                            sessions += 1;
                            let acceptor = if sessions == 1 { first.clone() } else { then.clone() };
                            tokio::spawn(session(tcp, acceptor, options.clone(), shared.clone()));
                        }
                    }
                }
            });
        });
        TlsSmtp { port, state, stop: Some(stop) }
    }

    pub(crate) fn lines(&self) -> Vec<Line> {
        self.state.lock().unwrap().lines.clone()
    }

    /// What the client sent before TLS.
    pub(crate) fn plain_lines(&self) -> Vec<String> {
        self.lines().into_iter().filter(|l| !l.tls).map(|l| l.text).collect()
    }

    pub(crate) fn messages(&self) -> Vec<Mail> {
        self.state.lock().unwrap().inbox.clone()
    }

    pub(crate) fn handshake_errors(&self) -> Vec<String> {
        self.state.lock().unwrap().handshake_errors.clone()
    }

    pub(crate) fn logins_refused(&self) -> usize {
        self.state.lock().unwrap().logins_refused
    }
}

fn acceptor(identity: &Identity) -> TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), PrivateKeyDer::Pkcs8(identity.key.clone().into()))
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

impl Drop for TlsSmtp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Conn = BufReader<Box<dyn Io>>;

enum Next {
    StartTls(Box<dyn Io>),
    Done,
}

async fn session(tcp: tokio::net::TcpStream, acceptor: TlsAcceptor, options: Arc<Options>, state: Arc<Mutex<State>>) {
    let mut io: Box<dyn Io> = Box::new(tcp);
    let mut tls = false;
    let mut user = None;
    if options.implicit {
        match acceptor.accept(io).await {
            Ok(s) => io = Box::new(s),
            Err(e) => return state.lock().unwrap().handshake_errors.push(e.to_string()),
        }
        tls = true;
    }
    let mut greet = true;
    loop {
        match dialogue(BufReader::new(io), tls, greet, &options, &state, &mut user).await {
            Next::StartTls(plain) => match acceptor.accept(plain).await {
                Ok(s) => io = Box::new(s),
                Err(e) => return state.lock().unwrap().handshake_errors.push(e.to_string()),
            },
            Next::Done => return,
        }
        // RFC 3207: the session starts over, without a greeting, and forgets a login.
        (tls, greet, user) = (true, false, None);
    }
}

async fn reply(c: &mut Conn, text: &str) -> Option<()> {
    c.get_mut().write_all(format!("{text}\r\n").as_bytes()).await.ok()?;
    c.get_mut().flush().await.ok()
}

/// One line from the client, recorded; None when the connection ended.
async fn line(c: &mut Conn, tls: bool, state: &Mutex<State>) -> Option<String> {
    let mut buf = String::new();
    if c.read_line(&mut buf).await.ok()? == 0 {
        return None;
    }
    let text = buf.trim_end_matches(['\r', '\n']).to_string();
    state.lock().unwrap().lines.push(Line { tls, text: text.clone() });
    Some(text)
}

fn b64(s: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD.decode(s.trim()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

async fn dialogue(mut c: Conn, tls: bool, greet: bool, options: &Options, state: &Mutex<State>, user: &mut Option<String>) -> Next {
    macro_rules! say {
        ($($t:tt)*) => { if reply(&mut c, &format!($($t)*)).await.is_none() { return Next::Done } };
    }
    macro_rules! read {
        () => {
            match line(&mut c, tls, state).await {
                Some(l) => l,
                None => return Next::Done,
            }
        };
    }
    if greet {
        say!("220 tls-sink ESMTP");
    }
    let mut envelope: Option<(String, Vec<String>)> = None;
    loop {
        let l = read!();
        let upper = l.to_ascii_uppercase();
        let mut words = l.split_whitespace();
        let verb = words.next().unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" => {
                let mut caps = vec!["tls-sink", "8BITMIME"];
                if options.starttls && !tls {
                    caps.push("STARTTLS");
                }
                if options.login.is_some() {
                    caps.push("AUTH PLAIN LOGIN");
                }
                let n = caps.len();
                for (i, cap) in caps.into_iter().enumerate() {
                    say!("250{}{cap}", if i + 1 == n { " " } else { "-" });
                }
            }
            "STARTTLS" if options.starttls && !tls => {
                say!("220 2.0.0 ready to start TLS");
                return Next::StartTls(c.into_inner());
            }
            "STARTTLS" => say!("454 4.7.0 TLS not available"),
            "AUTH" => {
                let mech = words.next().unwrap_or("").to_ascii_uppercase();
                let initial = words.next().map(str::to_string);
                let (u, p) = match mech.as_str() {
                    "PLAIN" => {
                        let resp = match initial {
                            Some(r) => r,
                            None => {
                                say!("334 ");
                                read!()
                            }
                        };
                        let plain = b64(&resp);
                        let mut parts = plain.split('\0').skip(1);
                        (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string())
                    }
                    "LOGIN" => {
                        let u = match initial {
                            Some(r) => b64(&r),
                            None => {
                                say!("334 VXNlcm5hbWU6");
                                b64(&read!())
                            }
                        };
                        say!("334 UGFzc3dvcmQ6");
                        (u, b64(&read!()))
                    }
                    _ => {
                        say!("504 5.5.4 unknown mechanism");
                        continue;
                    }
                };
                if options.login.as_ref().is_some_and(|(eu, ep)| *eu == u && *ep == p) {
                    *user = Some(u);
                    say!("235 2.7.0 authenticated");
                } else {
                    state.lock().unwrap().logins_refused += 1;
                    say!("535 5.7.8 authentication credentials invalid");
                }
            }
            "MAIL" if options.login.is_some() && user.is_none() => say!("530 5.7.0 authentication required"),
            "MAIL" => {
                envelope = Some((address(&l), vec![]));
                say!("250 2.1.0 ok");
            }
            "RCPT" => match &mut envelope {
                Some((_, to)) => {
                    to.push(address(&l));
                    say!("250 2.1.5 ok");
                }
                None => say!("503 5.5.1 MAIL first"),
            },
            "DATA" => {
                let Some((from, to)) = envelope.take() else {
                    say!("503 5.5.1 MAIL first");
                    continue;
                };
                say!("354 go ahead");
                let mut data = vec![];
                loop {
                    let mut buf = String::new();
                    if c.read_line(&mut buf).await.unwrap_or(0) == 0 {
                        return Next::Done;
                    }
                    let t = buf.trim_end_matches(['\r', '\n']);
                    if t == "." {
                        break;
                    }
                    data.push(t.strip_prefix('.').filter(|_| t.starts_with("..")).unwrap_or(t).to_string());
                }
                let n = {
                    let mut s = state.lock().unwrap();
                    s.inbox.push(Mail { from, to, data: data.join("\r\n"), tls, user: user.clone() });
                    s.inbox.len()
                };
                say!("250 2.0.0 queued as {n}");
                if options.then.is_some() {
                    return Next::Done;
                }
            }
            "RSET" => {
                envelope = None;
                say!("250 2.0.0 ok");
            }
            "NOOP" => say!("250 2.0.0 ok"),
            "QUIT" => {
                let _ = reply(&mut c, "221 2.0.0 bye").await;
                return Next::Done;
            }
            _ => say!("502 5.5.2 `{}` not recognized", upper.split_whitespace().next().unwrap_or("")),
        }
    }
}

/// The address of `MAIL FROM:<a@b> ...` or `RCPT TO:<a@b>`.
fn address(l: &str) -> String {
    l.split_once('<').and_then(|(_, r)| r.split_once('>')).map(|(a, _)| a.to_string()).unwrap_or_default()
}
