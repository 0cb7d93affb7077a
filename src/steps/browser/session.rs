//! A pool of logged-in browser sessions on one driver. Items borrow a session, run their
//! actions and give it back; a session whose browser died is dropped and replaced lazily.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fantoccini::Client;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

use super::driver::Driver;

pub struct Session {
    pub client: Client,
    /// Fresh Chromium profile, removed when the session ends.
    profile: PathBuf,
    /// Driver generation the session was opened on (see `Driver::restart_if_dead`).
    pub generation: u64,
    pub logged_in: bool,
}

impl Session {
    pub async fn close(self) {
        // Ending the WebDriver session quits Chromium; a dead driver makes this fail, which is
        // fine: the process group kill takes care of the browser then.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.client.close()).await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

pub struct Pool {
    pub driver: Arc<Driver>,
    idle: Mutex<Vec<Session>>,
    slots: Arc<Semaphore>,
    profiles_root: PathBuf,
    /// The most opening a session may take (Chromium starting on a busy machine is slow; a
    /// chromedriver that stopped answering must still not hang the item).
    start_limit: Duration,
}

/// A session on loan; give it back with `Pool::put` or drop it with `Pool::discard`.
pub struct Lease {
    pub session: Option<Session>,
    _permit: OwnedSemaphorePermit,
}

impl Pool {
    pub fn new(driver: Arc<Driver>, size: usize, profiles_root: PathBuf, start_limit: Duration) -> Pool {
        Pool { driver, idle: Mutex::new(Vec::new()), slots: Arc::new(Semaphore::new(size.max(1))), profiles_root, start_limit }
    }

    /// Waits for a free slot; the slot holds an idle session when one exists, else none
    /// (`open` makes one in that slot).
    pub async fn take(&self) -> Lease {
        let permit = self.slots.clone().acquire_owned().await.expect("pool semaphore is never closed");
        let session = self.idle.lock().await.pop();
        Lease { session, _permit: permit }
    }

    pub async fn open(&self) -> anyhow::Result<Session> {
        let profile = self.profiles_root.join(format!("chromium-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&profile)?;
        let opened = tokio::time::timeout(self.start_limit, self.driver.new_session(&profile)).await.unwrap_or_else(|_| {
            Err(anyhow::anyhow!("chromedriver did not open a browser session within {}", humantime::format_duration(self.start_limit)))
        });
        match opened {
            Ok((client, generation)) => Ok(Session { client, profile, generation, logged_in: false }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&profile);
                Err(e)
            }
        }
    }

    pub async fn put(&self, mut lease: Lease) {
        if let Some(s) = lease.session.take() {
            self.idle.lock().await.push(s);
        }
    }

    /// Closes every idle session (call once no lease is out).
    pub async fn close_all(&self) {
        let sessions: Vec<Session> = std::mem::take(&mut *self.idle.lock().await);
        futures::future::join_all(sessions.into_iter().map(Session::close)).await;
        let _ = std::fs::remove_dir(&self.profiles_root);
    }
}
