//! Where messages go: an SMTP server through our pool, or (no SMTP configured) `.eml` files in
//! the outbox folder via lettre's file transport, so a workflow can be tried without a server.

use std::path::{Path, PathBuf};

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

    pub async fn send(&self, msg: &Message, rate: &RateLimiter) -> Result<Delivered, SendError> {
        match self {
            Transport::Smtp(pool) => {
                rate.wait().await;
                pool.send(msg.envelope(), &msg.formatted()).await.map(Delivered::Smtp)
            }
            Transport::Outbox { dir, files } => {
                let id = files
                    .send(msg.clone())
                    .await
                    .map_err(|e| SendError::Transient(format!("cannot write to outbox {}: {e}", dir.display())))?;
                Ok(Delivered::File(dir.join(format!("{id}.eml"))))
            }
        }
    }

    pub async fn close(&self) {
        if let Transport::Smtp(p) = self {
            p.close().await;
        }
    }
}
