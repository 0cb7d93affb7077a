//! Our own SMTP connection pool over lettre's `AsyncSmtpConnection`.
//!
//! Why not lettre's pooled transport: it never sets TCP_NODELAY and writes the message and the
//! end-of-data `.` separately, so Nagle holds the `.` until the server's delayed ACK (~40 ms):
//! about 22 msg/s per connection. Here we connect the socket ourselves with nodelay and hand it
//! to lettre (`connect_with_transport`), which still does EHLO, STARTTLS and AUTH (session.rs).
//!
//! We also drive MAIL/RCPT/DATA ourselves so we know *when* a failure happened: before the
//! message was handed over it was definitely not delivered; a dropped connection after that
//! is "uncertain", which the exactly-once ledger must treat differently.

use std::sync::Mutex;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::Error as SmtpError;
use tokio::sync::Semaphore;

use super::smtp_url::SmtpSettings;
use super::transport::Gate;

/// Outcome of a failed send, by what we know about delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// 4xx, or the connection failed before the message was handed over: not delivered, retry.
    #[error("{0}")]
    Transient(String),
    /// 5xx or a configuration problem: not delivered, retrying will not help.
    #[error("{0}")]
    Permanent(String),
    /// The connection broke after the whole message was written: the server may have it.
    #[error("{0}")]
    Uncertain(String),
    /// The exactly-once claim could not be written: nothing was sent.
    #[error("run log: {0}")]
    NotClaimed(String),
}

pub struct SmtpPool {
    settings: SmtpSettings,
    client_id: ClientId,
    idle: Mutex<Vec<AsyncSmtpConnection>>,
    permits: Semaphore,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Phase {
    /// Before the message was handed over (MAIL, RCPT, DATA): not delivered, whatever happened.
    Envelope,
    /// The message was written: a failure now may or may not have reached the server.
    Body,
}

/// Why one transaction did not end with the server's acceptance.
enum Fail {
    Smtp(Phase, SmtpError),
    Timeout(Phase),
    /// The gate said not to send. `mid_data`: the server had already said go ahead to DATA.
    Withheld {
        mid_data: bool,
    },
    /// The gate's claim could not be written.
    Gate {
        error: String,
        mid_data: bool,
    },
}

impl SmtpPool {
    pub fn new(settings: SmtpSettings, size: usize) -> Self {
        SmtpPool {
            settings,
            client_id: ClientId::Domain("cxflow.localhost".into()),
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size.max(1)),
        }
    }

    pub fn settings(&self) -> &SmtpSettings {
        &self.settings
    }

    /// Opens one connection (and keeps it) so a wrong host, TLS mode or password fails the run
    /// up front instead of failing every item.
    pub async fn check(&self) -> Result<(), SendError> {
        let conn = self.connect().await?;
        self.idle.lock().unwrap().push(conn);
        Ok(())
    }

    /// Sends one message; returns the server's acceptance line (e.g. `250 OK queued as X`), or
    /// `None` when `gate` withheld it. The gate is asked once, with the envelope accepted.
    pub async fn send(&self, envelope: &Envelope, bytes: &[u8], gate: &dyn Gate) -> Result<Option<String>, SendError> {
        let t = self.settings.timeout;
        // Every connection may be stuck on a silent server: waiting for one is bounded too.
        let checkout = t.saturating_mul(4);
        let _permit = tokio::time::timeout(checkout, self.permits.acquire())
            .await
            .map_err(|_| SendError::Transient(format!("no SMTP connection came free within {checkout:?}")))?
            .map_err(|_| SendError::Transient("pool closed".into()))?;
        let pooled = self.idle.lock().unwrap().pop();
        let (mut conn, reused) = match pooled {
            Some(c) => (c, true),
            None => (self.connect().await?, false),
        };
        let mut passed = false;
        let mut result = self.transact(&mut conn, envelope, bytes, gate, &mut passed).await;
        // A pooled connection the server closed while idle fails on MAIL; nothing was sent, so
        // one fresh connection is tried before bothering the engine's retry.
        if reused && matches!(&result, Err(Fail::Smtp(Phase::Envelope, e)) if !answered(e)) {
            self.abort(&mut conn).await;
            conn = self.connect().await?;
            result = self.transact(&mut conn, envelope, bytes, gate, &mut passed).await;
        }
        // A session left in DATA mode cannot be reset, and a QUIT there would be read as
        // message text: the socket is closed without a word, and the server drops the
        // unfinished message.
        let mid_data = matches!(&result, Err(Fail::Withheld { mid_data: true } | Fail::Gate { mid_data: true, .. }));
        let keep = match &result {
            Ok(_) | Err(Fail::Withheld { .. } | Fail::Gate { .. }) => !mid_data,
            // A negative reply leaves the session usable after RSET; anything else does not.
            Err(Fail::Smtp(_, e)) => answered(e),
            Err(Fail::Timeout(_)) => false,
        };
        let needs_reset = result.is_err();
        if keep && !conn.has_broken() && (!needs_reset || self.reset(&mut conn).await) {
            self.idle.lock().unwrap().push(conn);
        } else if !mid_data {
            self.abort(&mut conn).await;
        }
        match result {
            Ok(resp) => Ok(Some(resp)),
            Err(Fail::Withheld { .. }) => Ok(None),
            Err(Fail::Gate { error, .. }) => Err(SendError::NotClaimed(error)),
            Err(Fail::Smtp(phase, e)) => Err(classify(phase, &e)),
            Err(Fail::Timeout(Phase::Body)) => Err(SendError::Uncertain(format!(
                "SMTP server did not answer within {t:?} after the message was sent; it may have accepted it"
            ))),
            Err(Fail::Timeout(Phase::Envelope)) => Err(SendError::Transient(format!("SMTP server did not answer within {t:?}"))),
        }
    }

    /// RSET with a limit; `false` when the session is not usable any more.
    async fn reset(&self, conn: &mut AsyncSmtpConnection) -> bool {
        matches!(tokio::time::timeout(self.settings.timeout, conn.command(Rset)).await, Ok(Ok(_)))
    }

    /// Drops a connection. lettre's `abort` sends QUIT and waits for the answer, which a silent
    /// server never gives: it is bounded, and the socket closes when `conn` is dropped anyway.
    async fn abort(&self, conn: &mut AsyncSmtpConnection) {
        let _ = tokio::time::timeout(self.quit_limit(), conn.abort()).await;
    }

    /// How long a goodbye (QUIT) may wait for its answer: nothing depends on it.
    fn quit_limit(&self) -> Duration {
        self.settings.timeout.min(Duration::from_secs(2))
    }

    /// QUITs idle connections; called once at step close.
    pub async fn close(&self) {
        let conns: Vec<_> = std::mem::take(&mut *self.idle.lock().unwrap());
        for mut c in conns {
            let _ = tokio::time::timeout(self.quit_limit(), c.quit()).await;
        }
    }

    async fn transact(
        &self,
        conn: &mut AsyncSmtpConnection,
        envelope: &Envelope,
        bytes: &[u8],
        gate: &dyn Gate,
        passed: &mut bool,
    ) -> Result<String, Fail> {
        let t = self.settings.timeout;
        let mut opts = vec![];
        if envelope.to().iter().chain(envelope.from()).any(|a| !AsRef::<str>::as_ref(a).is_ascii()) {
            opts.push(MailParameter::SmtpUtfEight);
        }
        if !bytes.is_ascii() && conn.server_info().supports_feature(Extension::EightBitMime) {
            opts.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let env = async {
            conn.command(Mail::new(envelope.from().cloned(), opts)).await?;
            for to in envelope.to() {
                conn.command(Rcpt::new(to.clone(), vec![])).await?;
            }
            Ok::<_, SmtpError>(())
        };
        match tokio::time::timeout(t, env).await {
            Err(_) => return Err(Fail::Timeout(Phase::Envelope)),
            Ok(Err(e)) => return Err(Fail::Smtp(Phase::Envelope, e)),
            Ok(Ok(())) => {}
        }
        // The handover: a connection held, the envelope accepted. Claimed here, an email that
        // waited for the rate limit or a connection, or was refused, was never uncertain.
        // The claim is written while DATA is on its way: the command carries nothing of the
        // message, which leaves only once the claim is on disk, and a server whose DATA is
        // never followed by the message's end discards it. One round trip to the server fewer
        // on the time an email holds its connection.
        let data = tokio::time::timeout(t, conn.command(Data));
        let data = if *passed {
            data.await
        } else {
            let (pass, data) = tokio::join!(gate.pass(), data);
            let mid_data = matches!(data, Ok(Ok(_)));
            match pass {
                Ok(true) => *passed = true,
                Ok(false) => return Err(Fail::Withheld { mid_data }),
                Err(error) => return Err(Fail::Gate { error, mid_data }),
            }
            data
        };
        // DATA refused or cut off: the message itself has not left yet.
        match data {
            Err(_) => return Err(Fail::Timeout(Phase::Envelope)),
            Ok(Err(e)) => return Err(Fail::Smtp(Phase::Envelope, e)),
            Ok(Ok(_)) => {}
        }
        match tokio::time::timeout(t, conn.message(bytes)).await {
            Err(_) => Err(Fail::Timeout(Phase::Body)),
            Ok(Err(e)) => Err(Fail::Smtp(Phase::Body, e)),
            Ok(Ok(resp)) => Ok(format!("{} {}", resp.code(), resp.message().collect::<Vec<_>>().join(" "))),
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        super::session::open(&self.settings, &self.client_id).await
    }
}

/// The server replied with a 4xx/5xx code (as opposed to the connection failing).
fn answered(e: &SmtpError) -> bool {
    e.is_transient() || e.is_permanent()
}

/// 4xx → Transient, 5xx → Permanent (with the server's words), broken connection → Transient
/// before the message was handed over, Uncertain after.
fn classify(phase: Phase, e: &SmtpError) -> SendError {
    let msg = format!("SMTP server: {e}");
    if e.is_transient() {
        SendError::Transient(msg)
    } else if e.is_permanent() {
        SendError::Permanent(msg)
    } else if phase == Phase::Body {
        SendError::Uncertain(format!("{msg} (connection broke after the message was sent; the server may have accepted it)"))
    } else if e.is_client() {
        SendError::Permanent(msg)
    } else {
        SendError::Transient(msg)
    }
}
