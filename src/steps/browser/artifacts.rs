//! Files a browser item leaves behind: screenshots it asked for, and on failure a screenshot
//! and the page HTML (secrets masked) so the operator sees what the portal showed.

use std::path::PathBuf;

use fantoccini::Client;

use super::exec::excerpt;
use crate::steps::{Artifact, RunEnv};

/// A file-name-safe form of an item key (keys are order ids, emails, anything).
fn safe(key: &str) -> String {
    let s: String = key.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).take(80).collect();
    if s.is_empty() || s.starts_with('.') {
        format!("_{s}")
    } else {
        s
    }
}

pub fn path_for(run: &RunEnv, step_id: &str, key: &str, suffix: &str) -> PathBuf {
    run.artifacts_dir.join(safe(step_id)).join(format!("{}-{suffix}", safe(key)))
}

pub fn write(path: &PathBuf, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, bytes)
}

/// What the page looked like when an action failed.
pub struct PageState {
    pub url: String,
    pub title: String,
    /// Start of the visible text, secrets masked.
    pub text: String,
}

impl PageState {
    pub fn describe(&self) -> String {
        format!("page `{}` (title `{}`) showed: {}", self.url, self.title, self.text)
    }
}

/// Saves a screenshot and the HTML of the current page (best effort: a dead browser gives
/// nothing) and records both in the run log.
pub async fn save_failure(client: &Client, run: &RunEnv, step_id: &str, key: &str, attempt: u32) -> (Option<PageState>, Vec<Artifact>) {
    let mut saved = Vec::new();
    let timeout = std::time::Duration::from_secs(10);
    let url = tokio::time::timeout(timeout, client.current_url()).await.ok().and_then(Result::ok);
    let title = tokio::time::timeout(timeout, client.title()).await.ok().and_then(Result::ok);
    let text = tokio::time::timeout(timeout, client.execute("return document.body ? document.body.innerText : ''", vec![]))
        .await
        .ok()
        .and_then(Result::ok);
    if let Ok(Ok(png)) = tokio::time::timeout(timeout, client.screenshot()).await {
        let p = path_for(run, step_id, key, &format!("attempt{attempt}.png"));
        if write(&p, &png).is_ok() {
            saved.push(Artifact::new("screenshot", p));
        }
    }
    if let Ok(Ok(html)) = tokio::time::timeout(timeout, client.source()).await {
        let p = path_for(run, step_id, key, &format!("attempt{attempt}.html"));
        if write(&p, run.secrets.redact(&html).as_bytes()).is_ok() {
            saved.push(Artifact::new("html", p));
        }
    }
    let state = url.map(|u| PageState {
        url: run.secrets.redact(u.as_str()),
        title: run.secrets.redact(&title.unwrap_or_default()),
        text: run.secrets.redact(&excerpt(text.as_ref().and_then(|v| v.as_str()).unwrap_or(""), 300)),
    });
    (state, saved)
}
