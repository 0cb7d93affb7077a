//! A small returns portal served on loopback: the thing the `browser` step is tested and
//! benchmarked against, and what the README's first command fills in.
//!
//! Pages: `/login` (session cookie), `/dashboard`, `/returns/new` (text, email with the HTML
//! `required` attribute, select, textarea, file upload, checkbox), `POST /returns`
//! (confirmation page with an id, or the form again with `#errors` when it refuses the record).
//! JSON: `GET /api/records` (what was submitted, so tests check the portal side),
//! `GET /api/stats`, `POST /api/expire` (drop every session now).
//! A session can be made to expire after N submissions to exercise re-login, and the portal can
//! refuse returns without a customer name (`require_name`) to exercise refusals.

mod pages;
mod routes;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;

pub use state::{PortalOptions, Record, Stats};

/// A portal running in the background; dropping the handle does not stop it, `stop` does.
pub struct Portal {
    pub addr: SocketAddr,
    state: Arc<state::PortalState>,
    shutdown: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Portal {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn records(&self) -> Vec<Record> {
        self.state.records()
    }
    pub fn stats(&self) -> Stats {
        self.state.stats()
    }
    pub async fn stop(self) -> std::io::Result<()> {
        self.shutdown.cancel();
        self.task.await.unwrap_or(Ok(()))
    }
    /// Resolves when the server task ends (it only ends on `stop` or an accept error).
    pub async fn wait(self) -> std::io::Result<()> {
        self.task.await.unwrap_or(Ok(()))
    }
}

/// Bind `addr` (the caller passes a loopback address; port 0 picks a free one) and serve in the
/// background.
pub async fn serve(addr: SocketAddr, opts: PortalOptions) -> std::io::Result<Portal> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(state::PortalState::new(opts));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let app = routes::router(state.clone());
    let token = shutdown.clone();
    let task = tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(async move { token.cancelled().await }).await });
    Ok(Portal { addr, state, shutdown, task })
}
