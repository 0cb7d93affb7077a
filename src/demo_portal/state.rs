//! Portal state: sessions, submitted records and counters, behind one mutex (the portal is a
//! test fixture; contention is irrelevant next to a browser round trip).

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

#[derive(Debug, Clone)]
pub struct PortalOptions {
    pub user: String,
    pub password: String,
    /// Drop a session after it submitted this many records (the next page sends the browser
    /// back to `/login`), to exercise re-login mid-run.
    pub expire_after: Option<u32>,
    /// Show a cookie banner on the form until it is accepted (exercises `if_present`).
    pub cookie_banner: bool,
    /// Sleep this long before answering a submission (makes "kill mid-run" tests deterministic).
    pub submit_delay_ms: u64,
    /// Refuse a return whose customer name is empty ("Customer name is required", shown on the
    /// form again): a portal-side refusal, as opposed to the browser's own check of the
    /// `required` email field.
    pub require_name: bool,
    /// Drop a session when it posts its Nth record, answering with the login page and storing
    /// nothing: a session that expired while the form was being filled.
    pub expire_on_post: Option<u32>,
}

impl Default for PortalOptions {
    fn default() -> Self {
        PortalOptions {
            user: "demo".into(),
            password: "demo-pass".into(),
            expire_after: None,
            cookie_banner: false,
            submit_delay_ms: 0,
            require_name: false,
            expire_on_post: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Record {
    pub confirmation_id: String,
    pub order: String,
    /// The customer name field (optional unless `require_name`).
    #[serde(default)]
    pub name: String,
    pub email: String,
    pub reason: String,
    pub comment: String,
    pub consent: bool,
    pub attachment_name: Option<String>,
    pub attachment_size: usize,
    pub user: String,
    /// A short tag of the session that submitted it (tests check parallel sessions with it).
    pub session: String,
    /// Milliseconds from serving the form to this session to receiving the submission: the
    /// per-form latency the benchmark reports.
    pub form_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Stats {
    pub logins: u64,
    pub failed_logins: u64,
    pub expired_sessions: u64,
    pub submissions: u64,
    pub rejected: u64,
}

struct Session {
    user: String,
    submissions: u32,
    posts: u32,
    form_served: Option<std::time::Instant>,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, Session>,
    records: Vec<Record>,
    stats: Stats,
}

pub(crate) struct PortalState {
    pub(crate) opts: PortalOptions,
    inner: Mutex<Inner>,
}

impl PortalState {
    pub(crate) fn new(opts: PortalOptions) -> Self {
        PortalState { opts, inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters for a fixture, so recover instead of poisoning every later request.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks the credentials and returns a new session id.
    pub(crate) fn login(&self, user: &str, password: &str) -> Option<String> {
        let mut inner = self.lock();
        if user != self.opts.user || password != self.opts.password {
            inner.stats.failed_logins += 1;
            return None;
        }
        inner.stats.logins += 1;
        let sid = uuid::Uuid::new_v4().simple().to_string();
        inner.sessions.insert(sid.clone(), Session { user: user.to_string(), submissions: 0, posts: 0, form_served: None });
        Some(sid)
    }

    pub(crate) fn form_served(&self, sid: &str) {
        if let Some(s) = self.lock().sessions.get_mut(sid) {
            s.form_served = Some(std::time::Instant::now());
        }
    }

    pub(crate) fn user_of(&self, sid: &str) -> Option<String> {
        self.lock().sessions.get(sid).map(|s| s.user.clone())
    }

    /// Stores a record for session `sid`; `None` when the session is unknown (expired).
    pub(crate) fn submit(&self, sid: &str, mut record: Record) -> Option<Record> {
        let mut inner = self.lock();
        let session = inner.sessions.get_mut(sid)?;
        session.submissions += 1;
        record.user = session.user.clone();
        record.session = sid.chars().take(8).collect();
        record.form_ms = session.form_served.take().map(|t| t.elapsed().as_millis() as u64);
        let expire = matches!(self.opts.expire_after, Some(n) if session.submissions >= n);
        if expire {
            inner.sessions.remove(sid);
            inner.stats.expired_sessions += 1;
        }
        inner.stats.submissions += 1;
        record.confirmation_id = format!("RT-{:06}", inner.records.len() + 1);
        inner.records.push(record.clone());
        Some(record)
    }

    /// Counts a post of session `sid`; true when `expire_on_post` ends the session with it.
    pub(crate) fn expires_on_post(&self, sid: &str) -> bool {
        let Some(n) = self.opts.expire_on_post else { return false };
        let mut inner = self.lock();
        let Some(s) = inner.sessions.get_mut(sid) else { return false };
        s.posts += 1;
        if s.posts < n {
            return false;
        }
        inner.sessions.remove(sid);
        inner.stats.expired_sessions += 1;
        true
    }

    pub(crate) fn reject(&self) {
        self.lock().stats.rejected += 1;
    }

    pub(crate) fn expire_all(&self) -> usize {
        let mut inner = self.lock();
        let n = inner.sessions.len();
        inner.sessions.clear();
        inner.stats.expired_sessions += n as u64;
        n
    }

    pub(crate) fn records(&self) -> Vec<Record> {
        self.lock().records.clone()
    }

    pub(crate) fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }
}
