//! The secrets of the runs in progress, for output that has no `Secrets` at hand: the tracing
//! log on stderr (a dependency's or a step's message) and the errors `main` prints. A run
//! registers its secrets for as long as it lasts; `cxflow serve` runs several at once.

use std::io::Write;
use std::sync::{Arc, Mutex};

use super::Secrets;

static RUNNING: Mutex<Vec<(u64, Arc<Secrets>)>> = Mutex::new(Vec::new());
static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Keeps `secrets` masked on stderr until dropped.
#[must_use = "the secrets are masked only while this is kept"]
pub struct Registered(u64);

impl Secrets {
    /// Mask these secrets in everything the process writes to stderr, until the guard is dropped.
    pub fn register(self: &Arc<Self>) -> Registered {
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        running().push((id, self.clone()));
        Registered(id)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        running().retain(|(id, _)| *id != self.0);
    }
}

fn running() -> std::sync::MutexGuard<'static, Vec<(u64, Arc<Secrets>)>> {
    // A panic while the lock was held leaves a plain list behind, still usable.
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// `text` with the secrets of every run in progress masked.
pub fn redact_everywhere(text: &str) -> String {
    let all: Vec<Arc<Secrets>> = running().iter().map(|(_, s)| s.clone()).collect();
    all.iter().fold(text.to_string(), |t, s| s.redact(&t))
}

/// Stderr, with the secrets of the runs in progress masked: the tracing subscriber's writer
/// (`.with_writer(redacting_stderr)`), which formats one event per write.
pub fn redacting_stderr() -> RedactingStderr {
    RedactingStderr
}

pub struct RedactingStderr;

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = redact_everywhere(&String::from_utf8_lossy(buf));
        std::io::stderr().write_all(text.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
