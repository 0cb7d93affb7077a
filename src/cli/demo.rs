//! `cxflow demo-portal`: the demo returns portal in the foreground until Ctrl-C.

use std::net::{Ipv4Addr, SocketAddr};

use super::{exit, CliError, Result};
use crate::demo_portal::{self, PortalOptions};

pub async fn demo_portal(port: u16, opts: PortalOptions) -> Result<i32> {
    // Loopback only: the portal has a well-known password and exists for demos and tests.
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let (user, password) = (opts.user.clone(), opts.password.clone());
    let portal = demo_portal::serve(addr, opts)
        .await
        .map_err(|e| CliError::Invalid(format!("cannot listen on {addr}: {e}; pick another `--port`")))?;
    outln!("demo portal on {} (user `{user}`, password `{password}`); Ctrl-C stops it", portal.url());
    outln!("submitted records: {}/api/records", portal.url());
    let _ = tokio::signal::ctrl_c().await;
    portal.stop().await.map_err(|e| CliError::Other(e.into()))?;
    Ok(exit::OK)
}
