//! Opening one SMTP session: TCP (with nodelay, see pool.rs), TLS (implicit or STARTTLS), EHLO
//! and the login. The rules that keep a password off the wire:
//!
//! - a login is sent only over TLS: a server that offers no STARTTLS gets no AUTH, whatever the
//!   `tls=` mode (the one exception, `tls=none` to a server on this machine, is explicit);
//! - a certificate that does not verify (unknown CA, wrong name, expired) ends the attempt: the
//!   session never falls back to plain text, not even with `tls=opportunistic`.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::{ClientId, Extension};
use lettre::transport::smtp::Error as SmtpError;
use rustls::CertificateError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt};

use super::pool::SendError;
use super::smtp_url::{SmtpSettings, Tls};
use crate::config::smtp_ca;

pub(super) async fn open(s: &SmtpSettings, client_id: &ClientId) -> Result<AsyncSmtpConnection, SendError> {
    let transient = |what: &str, e: &dyn std::fmt::Display| SendError::Transient(format!("cannot {what} {}:{}: {e}", s.host, s.port));
    let tcp = tokio::time::timeout(s.timeout, TcpStream::connect((s.host.as_str(), s.port)))
        .await
        .map_err(|_| transient("connect to", &"timed out"))?
        .map_err(|e| transient("connect to", &e))?;
    tcp.set_nodelay(true).map_err(|e| transient("configure socket to", &e))?;
    let peer = tcp.peer_addr().map_err(|e| transient("connect to", &e))?;
    let tls_params = || -> Result<TlsParameters, SendError> {
        smtp_ca::tls_parameters(s.ca.as_ref(), &s.host).map_err(|e| SendError::Permanent(format!("TLS setup for {}: {e}", s.host)))
    };
    let stream: Box<dyn AsyncTokioStream> = if s.tls == Tls::Implicit {
        #[allow(deprecated)] // lettre marks the type deprecated but it is the only way in
        let mut ns = lettre::transport::smtp::client::AsyncNetworkStream::use_existing_tokio1(Box::new(tcp));
        // A server that takes the connection and never answers the hello must not hold the run.
        tokio::time::timeout(s.timeout, ns.upgrade_tls(tls_params()?))
            .await
            .map_err(|_| transient("complete the TLS handshake with", &"timed out"))?
            .map_err(|e| refused(s, &e))?;
        Box::new(TlsStream { inner: ns.compat(), peer })
    } else {
        Box::new(tcp)
    };
    let setup = async {
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, client_id).await.map_err(|e| transient("greet", &e))?;
        let mut encrypted = s.tls == Tls::Implicit;
        let offers = conn.server_info().supports_feature(Extension::StartTls);
        match s.tls {
            Tls::Required if !offers => {
                return Err(SendError::Permanent(format!(
                    "{}:{} does not offer STARTTLS but `tls=required`; use `smtps://` if it listens for TLS from the start \
                     (usually port 465), or ask its admin to enable STARTTLS",
                    s.host, s.port
                )))
            }
            Tls::Required | Tls::Opportunistic if offers => {
                conn.starttls(tls_params()?, client_id).await.map_err(|e| refused(s, &e))?;
                encrypted = true;
            }
            _ => {}
        }
        if let (Some(user), Some(pw)) = (&s.user, &s.password) {
            // The one exception to TLS: `tls=none`, said explicitly, to a server on this machine.
            let may_log_in = encrypted || (s.tls == Tls::None && s.is_loopback());
            if !may_log_in {
                return Err(SendError::Permanent(format!(
                    "{}:{} offers no STARTTLS, and cxflow never sends the SMTP password unencrypted: use `smtps://` if the \
                     server listens for TLS from the start (usually port 465), or ask its admin to enable STARTTLS",
                    s.host, s.port
                )));
            }
            const MECHANISMS: [Mechanism; 2] = [Mechanism::Plain, Mechanism::Login];
            // Told apart from a refused login, whose fix is another password.
            if conn.server_info().get_auth_mechanism(&MECHANISMS).is_none() {
                return Err(SendError::Permanent(format!(
                    "{}:{} offers no login (AUTH PLAIN or LOGIN), but `smtp_user_secret` and `smtp_password_secret` are \
                     set: remove them if the server needs no login, or check that `smtp_url` names the submission port",
                    s.host, s.port
                )));
            }
            // The user is a secret too: the message names the server and the settings, not the login.
            conn.auth(&MECHANISMS, &Credentials::new(user.clone(), pw.clone())).await.map_err(|e| {
                SendError::Permanent(format!(
                    "SMTP login to {}:{} failed: {e}; check the values of the secrets named by `smtp_user_secret` and \
                     `smtp_password_secret`",
                    s.host, s.port
                ))
            })?;
        }
        Ok(conn)
    };
    tokio::time::timeout(s.timeout, setup).await.map_err(|_| transient("set up a session with", &"timed out"))?
}

/// A failed TLS handshake, said in words a user can act on. Permanent: the same certificate
/// will fail the same way on every attempt.
fn refused(s: &SmtpSettings, e: &SmtpError) -> SendError {
    let at = format!("{}:{}", s.host, s.port);
    let msg = match rustls_cause(e) {
        Some(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => match &s.ca {
            None => format!(
                "TLS with {at} refused: its certificate is not signed by a CA cxflow trusts; if the server uses a private \
                 CA, set `smtp_ca_file` in cxflow.yaml to that CA's PEM file"
            ),
            Some(ca) => format!(
                "TLS with {at} refused: its certificate is signed neither by a public CA nor by the CA in `{}` \
                 (`smtp_ca_file`); set `smtp_ca_file` to the PEM file of the CA that signed it",
                ca.path.display()
            ),
        },
        Some(
            c @ rustls::Error::InvalidCertificate(CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }),
        ) => format!(
            "TLS with {at} refused: its certificate is not valid for `{}` ({c}); write the host name the certificate names in \
             `smtp_url`",
            s.host
        ),
        Some(c @ rustls::Error::InvalidCertificate(_)) => format!(
            "TLS with {at} refused: {c}; have the server's certificate fixed, or, for a private CA, set `smtp_ca_file` in \
             cxflow.yaml to that CA's PEM file"
        ),
        Some(c) => format!("TLS handshake with {at} failed: {c}"),
        None => format!("TLS handshake with {at} failed: {e}"),
    };
    SendError::Permanent(msg)
}

/// The rustls error under lettre's wrapping. `io::Error::source` skips the error it wraps, so
/// each `io::Error` is opened by hand.
fn rustls_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        next = match e.downcast_ref::<io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// lettre's custom-stream hook wants a tokio stream; an implicit-TLS stream upgraded by lettre
/// itself is a futures stream, so it is adapted back with `compat`.
#[derive(Debug)]
#[allow(deprecated)]
struct TlsStream {
    inner: Compat<lettre::transport::smtp::client::AsyncNetworkStream>,
    peer: SocketAddr,
}

impl AsyncRead for TlsStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsStream {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_server_silent_during_the_implicit_tls_handshake_fails_within_the_timeout() {
        // Listening but never accepting: the kernel completes the TCP connection, and no one
        // ever answers the client's hello.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let s = SmtpSettings::parse(&format!("smtps://127.0.0.1:{port}?timeout=30s")).unwrap();
        let started = tokio::time::Instant::now();
        let opened = tokio::time::timeout(Duration::from_secs(3600), open(&s, &ClientId::Domain("t".into())))
            .await
            .expect("the handshake must give up by itself, after `timeout`");
        let Err(e) = opened else { panic!("a silent server cannot open a session") };
        assert_eq!(e, SendError::Transient(format!("cannot complete the TLS handshake with 127.0.0.1:{port}: timed out")));
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        drop(listener);
    }
}
