//! Files a browser item leaves behind: screenshots it asked for, and on failure a screenshot
//! and the page HTML (secrets masked) so the operator sees what the portal showed.

use std::path::PathBuf;

use fantoccini::error::CmdError;
use fantoccini::Client;
use serde_json::{json, Value};

use super::exec::excerpt;
use crate::secrets::Secrets;
use crate::steps::{Artifact, RunEnv};

const FIELDS: &str = "Array.from(document.querySelectorAll('input, textarea'))";

/// A screenshot in which no form field shows a secret. A password field shows dots, but a
/// secret typed into a text field (a user name, an API key) would be in the picture, so fields
/// whose value holds one are made to look empty while it is taken: their text is made
/// transparent (the value itself is left alone, and sent nowhere), then their style is restored.
pub async fn screenshot(client: &Client, secrets: &Secrets) -> Result<Vec<u8>, CmdError> {
    let values = client.execute(&format!("return {FIELDS}.map(e => String(e.value))"), vec![]).await?;
    let hide: Vec<usize> = match &values {
        Value::Array(v) => v.iter().enumerate().filter(|(_, v)| v.as_str().is_some_and(|s| secrets.reveals(s))).map(|(i, _)| i).collect(),
        _ => Vec::new(),
    };
    if hide.is_empty() {
        return client.screenshot().await;
    }
    let js = format!(
        "const f = {FIELDS}; window.__cxflowHidden = arguments[0].map(i => [i, f[i].style.cssText]);\
         for (const i of arguments[0]) {{ for (const p of ['color', 'caret-color', '-webkit-text-fill-color']) \
         f[i].style.setProperty(p, 'transparent', 'important'); f[i].style.setProperty('text-shadow', 'none', 'important'); }}"
    );
    client.execute(&js, vec![json!(hide)]).await?;
    let png = client.screenshot().await;
    let restore = format!("const f = {FIELDS}; for (const [i, css] of (window.__cxflowHidden || [])) f[i].style.cssText = css;");
    // Best effort: the picture is taken either way, and a page that navigated has nothing to restore.
    let _ = client.execute(&restore, vec![]).await;
    png
}

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
    if let Ok(Ok(png)) = tokio::time::timeout(timeout, screenshot(client, &run.secrets)).await {
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
