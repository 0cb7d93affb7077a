//! Who is calling: an API token, a person's session, or `local` when no authentication is
//! configured (then the server listens on loopback only). Roles: viewer < operator < admin.

use std::net::SocketAddr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::Router;

use super::{App, WebError};

pub(crate) use crate::control::Role;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub name: String,
    pub role: Role,
    /// The CSRF token of a person's session (forms carry it back); None for tokens and `local`.
    csrf: Option<String>,
    /// A person logged in with a session cookie (can log out).
    session: bool,
}

impl Caller {
    /// The caller when no authentication is configured (loopback only).
    pub(crate) fn local() -> Caller {
        Caller { name: "local".into(), role: Role::Admin, csrf: None, session: false }
    }

    /// 403 unless the caller has at least `role`.
    pub(crate) fn require(&self, role: Role) -> Result<(), WebError> {
        if self.role >= role {
            return Ok(());
        }
        Err(WebError::Forbidden(format!("`{}` has role {}; this needs {} or admin", self.name, self.role.as_str(), role.as_str())))
    }

    pub(crate) fn csrf_token(&self) -> Option<String> {
        self.csrf.clone()
    }

    pub(crate) fn can_log_out(&self) -> bool {
        self.session
    }

    /// Who `control` records as having done an action.
    pub(crate) fn actor(&self) -> crate::control::Actor {
        crate::control::Actor::new(self.name.clone(), self.role)
    }
}

impl FromRequestParts<App> for Caller {
    type Rejection = WebError;

    async fn from_request_parts(_parts: &mut Parts, _app: &App) -> Result<Caller, WebError> {
        Ok(Caller::local())
    }
}

/// `/login` and `/logout`.
pub(crate) fn routes() -> Router<App> {
    Router::new()
}

/// Refuses to listen beyond loopback while no authentication is configured.
pub(crate) fn check_listen(_app: &App, addr: SocketAddr) -> anyhow::Result<()> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    anyhow::bail!(
        "refusing to serve the dashboard on `{addr}`: beyond loopback it needs logins or API tokens in cxflow.yaml (docs/dashboard.md); or set `http_addr: 127.0.0.1:8080`"
    )
}
