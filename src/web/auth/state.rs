//! What the guard and the login handlers share: the users and tokens of `cxflow.yaml` as it is
//! now, the failed-login counts, the process's CSRF token for `local`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use tokio::sync::Semaphore;

use super::limit::Limiter;
use super::secret;
use crate::config::{ApiToken, Config, User};
use crate::store::{SessionLife, Store};
use crate::web::App;

/// The logins in force.
#[derive(Debug, Default)]
pub(crate) struct Logins {
    pub users: Vec<User>,
    pub tokens: Vec<ApiToken>,
}

/// What identifies a version of `cxflow.yaml` without reading it.
type Stamp = Option<(SystemTime, u64, u64)>;

pub(crate) struct AuthState {
    pub store: Store,
    project_dir: PathBuf,
    /// Logins were configured when the server started: removing them all later locks everyone
    /// out, it never opens the server to anonymous callers (it may listen beyond loopback).
    started_with_auth: bool,
    logins: RwLock<(Stamp, Arc<Logins>)>,
    /// `local`'s CSRF token: forms work the same with and without logins.
    pub local_csrf: String,
    pub limiter: Mutex<Limiter>,
    /// Password checks at once: argon2 is slow on purpose, and a flood of logins must not take
    /// every core from the scheduler.
    pub verifying: Semaphore,
    pub life: SessionLife,
}

fn stamp(path: &std::path::Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

impl AuthState {
    pub(crate) fn new(app: &App) -> AuthState {
        let config = &app.project.config;
        let dir = app.project.dir.clone();
        let now = stamp(&dir.join(crate::config::FILE_NAME));
        AuthState {
            store: app.store.clone(),
            project_dir: dir,
            started_with_auth: config.auth_configured(),
            logins: RwLock::new((now, Arc::new(Logins { users: config.users.clone(), tokens: config.api_tokens.clone() }))),
            local_csrf: secret::random_token(),
            limiter: Mutex::default(),
            verifying: Semaphore::new(2),
            life: SessionLife::default(),
        }
    }

    /// The logins of `cxflow.yaml` as it is now: read again when the file changed. A version
    /// that does not validate is logged and the previous logins stay.
    pub(crate) fn logins(&self) -> Arc<Logins> {
        let path = self.project_dir.join(crate::config::FILE_NAME);
        let now = stamp(&path);
        {
            let cur = self.logins.read().unwrap_or_else(|e| e.into_inner());
            if cur.0 == now {
                return cur.1.clone();
            }
        }
        let mut cur = self.logins.write().unwrap_or_else(|e| e.into_inner());
        if cur.0 != now {
            match Config::load(&self.project_dir, |k| std::env::var(k).ok()) {
                Ok(c) => {
                    tracing::info!(
                        users = c.users.len(),
                        api_tokens = c.api_tokens.len(),
                        "cxflow.yaml changed: the dashboard's logins follow it"
                    );
                    cur.1 = Arc::new(Logins { users: c.users, tokens: c.api_tokens });
                }
                Err(d) => tracing::error!("cxflow.yaml changed but is not valid; the dashboard keeps the logins it had:\n{d}"),
            }
            cur.0 = now;
        }
        cur.1.clone()
    }

    /// Whether callers must log in (or present a token).
    pub(crate) fn required(&self, logins: &Logins) -> bool {
        self.started_with_auth || !logins.users.is_empty() || !logins.tokens.is_empty()
    }
}
