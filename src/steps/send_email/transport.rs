//! Where messages go: an SMTP server through our pool, or (no SMTP configured) `.eml` files in
//! the outbox folder via lettre's file transport, so a workflow can be tried without a server.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};

use super::pool::{SendError, SmtpPool};
use super::rate::RateLimiter;

pub enum Transport {
    Smtp(SmtpPool),
    Outbox { dir: PathBuf, files: AsyncFileTransport<Tokio1Executor> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// The server's acceptance line, e.g. `250 2.0.0 Ok: queued as 4B1F`.
    Smtp(String),
    File(PathBuf),
}

/// The exactly-once claim, taken at handover: with a connection held and the envelope accepted,
/// right before the message goes (before the outbox file is written).
#[async_trait]
pub trait Gate: Send + Sync {
    /// `Ok(true)`: send it now. `Ok(false)`: do not (already sent, or a live run holds it); the
    /// envelope is reset and the connection kept. `Err`: the claim could not be written, so
    /// nothing is sent.
    async fn pass(&self) -> Result<bool, String>;
}

/// For mail outside the exactly-once protocol (the scheduler's alerts, which may repeat): always send.
pub struct Ungated;

#[async_trait]
impl Gate for Ungated {
    async fn pass(&self) -> Result<bool, String> {
        Ok(true)
    }
}

impl Transport {
    pub fn outbox(dir: &Path) -> std::io::Result<Transport> {
        std::fs::create_dir_all(dir)?;
        Ok(Transport::Outbox { dir: dir.to_path_buf(), files: AsyncFileTransport::new(dir) })
    }

    pub fn describe(&self) -> String {
        match self {
            Transport::Smtp(p) => format!("smtp {}:{}", p.settings().host, p.settings().port),
            Transport::Outbox { dir, .. } => format!("outbox {}", dir.display()),
        }
    }

    pub async fn check(&self) -> Result<(), SendError> {
        match self {
            Transport::Smtp(p) => p.check().await,
            Transport::Outbox { .. } => Ok(()),
        }
    }

    /// `Ok(None)`: the gate withheld it, nothing was sent.
    pub async fn send(&self, msg: &Message, rate: &RateLimiter, gate: &dyn Gate) -> Result<Option<Delivered>, SendError> {
        match self {
            Transport::Smtp(pool) => {
                rate.wait().await;
                Ok(pool.send(msg.envelope(), &msg.formatted(), gate).await?.map(Delivered::Smtp))
            }
            Transport::Outbox { dir, files } => {
                if !gate.pass().await.map_err(SendError::NotClaimed)? {
                    return Ok(None);
                }
                let id = files
                    .send(msg.clone())
                    .await
                    .map_err(|e| SendError::Transient(format!("cannot write to outbox {}: {e}", dir.display())))?;
                Ok(Some(Delivered::File(dir.join(format!("{id}.eml")))))
            }
        }
    }

    pub async fn close(&self) {
        if let Transport::Smtp(p) = self {
            p.close().await;
        }
    }
}
