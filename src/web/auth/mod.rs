//! Who is calling, and what they may do: an API token (`Authorization: Bearer`), a person's
//! session cookie (`/login`), or `local` when no users and no tokens are configured (then the
//! server listens on loopback only and every caller is admin). Roles: viewer < operator < admin.
//!
//! ```text
//! request ─▶ guard (one middleware for every route)
//!              Host loopback? (no auth)   cross-site state change? ─▶ 403
//!              Bearer token │ session cookie │ local ─▶ Caller (request extension)
//!              nobody: /api, /metrics ─▶ 401 JSON; pages ─▶ /login?next=...
//!              state change without a token: the CSRF token back (form `csrf`, `X-CSRF-Token`)
//!         ─▶ handler (`caller.require(Role::Operator)?`) ─▶ security headers on the response
//! ```
//!
//! The users and tokens are those of `cxflow.yaml` as it is now (read again when it changes),
//! so a user removed there loses access at the next request. docs/dashboard.md, "Who may do
//! what", and docs/security.md, "Dashboard", say what is refused and why.

mod guard;
mod limit;
mod login;
pub(crate) mod secret;
mod state;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponseParts, ResponseParts};
use axum::Router;

pub(crate) use crate::config::Role;
pub(crate) use secret::hash_password;

use super::{App, WebError};

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub name: String,
    pub role: Role,
    /// The CSRF token forms carry back: a person's session's, or the process's for `local`.
    /// None for API tokens (they need none).
    csrf: Option<String>,
    /// A person logged in with a session cookie (can log out).
    session: bool,
    /// Authenticated by an API token.
    token: bool,
}

impl Caller {
    /// The caller when no authentication is configured (loopback only).
    pub(crate) fn local() -> Caller {
        Caller { name: "local".into(), role: Role::Admin, csrf: None, session: false, token: false }
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

    /// Authenticated by an API token (a script, a webhook, Prometheus).
    pub(crate) fn is_token(&self) -> bool {
        self.token
    }
}

impl FromRequestParts<App> for Caller {
    type Rejection = WebError;

    /// The guard put the caller there; only the login page is served to nobody.
    async fn from_request_parts(parts: &mut Parts, _app: &App) -> Result<Caller, WebError> {
        parts.extensions.get::<Caller>().cloned().ok_or(WebError::Unauthorized)
    }
}

impl OptionalFromRequestParts<App> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _app: &App) -> Result<Option<Caller>, Self::Rejection> {
        Ok(parts.extensions.get::<Caller>().cloned())
    }
}

/// Put in a response (`(SameOriginFraming, body)`) that pages of this server may frame: an
/// artifact shown in an `<iframe>` of the run page. Everything else may not be framed at all.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SameOriginFraming;

impl IntoResponseParts for SameOriginFraming {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        res.extensions_mut().insert(self);
        Ok(res)
    }
}

/// `/login`, `/logout`, `/api/me`.
pub(crate) fn routes() -> Router<App> {
    login::routes()
}

/// Wraps every route of `routes` in the guard (authentication, CSRF, security headers).
pub(crate) fn guarded(routes: Router<App>, app: &App) -> Router<App> {
    guard::wrap(routes, app)
}

/// Refuses to listen beyond loopback while no authentication is configured.
pub(crate) fn check_listen(app: &App, addr: SocketAddr) -> anyhow::Result<()> {
    if addr.ip().is_loopback() || app.project.config.auth_configured() {
        return Ok(());
    }
    anyhow::bail!(
        "refusing to serve the dashboard on `{addr}`: beyond loopback it needs logins or API tokens in cxflow.yaml (docs/dashboard.md); or set `http_addr: 127.0.0.1:8080`"
    )
}
