//! Runs one rendered action against a browser session.
//!
//! Speed matters (every WebDriver command is an HTTP round trip to chromedriver and a dozen CDP
//! calls that cost Chromium CPU), so `fill` in `set` mode does its work in one script call for
//! all fields, `select` and `check` find their element and read or set it in one call
//! (`fields.rs`, `lookup.rs`), and lookups poll only when the element is not there yet.
//!
//! Every command is bounded by `Page::limit`: fantoccini waits for chromedriver's answer as long
//! as it takes, and a chromedriver that stopped answering (stopped, swapping, deadlocked) would
//! hang the item and the run with it. No answer in time counts as a lost session.

use std::future::Future;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::error::{CmdError, ErrorStatus};
use fantoccini::Client;
use serde_json::Value;

use super::action::{Action, WaitTarget};
use super::selector::Selector;
use super::spec::InputMode;

pub(super) const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum ActError {
    /// The page is not what the workflow expects (missing element, failed assertion, ...).
    #[error("{0}")]
    Page(String),
    /// The WebDriver connection or the browser session is gone; a new session may succeed.
    #[error("browser session lost: {0}")]
    Session(String),
}

/// Sorts WebDriver errors into "the page is wrong" and "the browser is gone".
pub fn classify(e: CmdError) -> ActError {
    let msg = e.to_string();
    let gone = matches!(e, CmdError::Lost(_) | CmdError::Failed(_) | CmdError::FailedC(_))
        || e.is_invalid_session_id()
        || e.is_no_such_window()
        || msg.contains("chrome not reachable")
        || msg.contains("disconnected")
        || msg.contains("session deleted");
    if gone {
        ActError::Session(msg)
    } else {
        ActError::Page(msg)
    }
}

/// What the actions of one item produce besides side effects on the portal.
#[derive(Debug, Default)]
pub struct Produced {
    pub output: serde_json::Map<String, Value>,
    pub screenshots: Vec<(String, Vec<u8>)>,
}

pub struct Page<'a> {
    pub client: &'a Client,
    /// Fields holding one are hidden in screenshots.
    pub secrets: &'a crate::secrets::Secrets,
    /// Default wait for elements.
    pub wait: Duration,
    /// The most one WebDriver command may take.
    pub limit: Duration,
}

/// What a command that got no answer in time reports: the session counts as lost.
pub fn no_answer(limit: Duration) -> ActError {
    ActError::Session(format!("chromedriver did not answer within {}", humantime::format_duration(limit)))
}

impl Page<'_> {
    /// One WebDriver command, bounded by `limit`.
    pub async fn cmd<T>(&self, f: impl Future<Output = Result<T, CmdError>>) -> Result<T, ActError> {
        self.within(self.limit, f).await?.map_err(classify)
    }

    /// Anything that talks to the browser (a command, a polling loop), bounded by `d`.
    pub async fn within<T>(&self, d: Duration, f: impl Future<Output = T>) -> Result<T, ActError> {
        tokio::time::timeout(d, f).await.map_err(|_| no_answer(self.limit))
    }

    pub async fn run(&self, action: &Action, out: &mut Produced) -> Result<(), ActError> {
        match action {
            Action::Goto(url) => self.cmd(super::lookup::goto(self.client, url)).await,
            Action::Fill { fields, mode: InputMode::Set } => self.fill_set(fields).await,
            Action::Fill { fields, mode: InputMode::Type } => {
                for (sel, value) in fields {
                    let el = self.find(sel, self.wait).await?;
                    self.cmd(el.clear()).await?;
                    self.cmd(el.send_keys(value)).await?;
                }
                Ok(())
            }
            Action::Select(fields) => {
                for (sel, value) in fields {
                    self.select(sel, value).await?;
                }
                Ok(())
            }
            Action::Check { sel, on } => self.check(sel, *on).await,
            Action::Click(sel) | Action::Submit(sel) => self.click(sel).await,
            Action::Press { on, key } => {
                let el = match on {
                    Some(sel) => self.find(sel, self.wait).await?,
                    None => self.cmd(self.client.active_element()).await?,
                };
                self.cmd(el.send_keys(&key.code)).await
            }
            Action::Upload(files) => {
                for (sel, path) in files {
                    // chromedriver takes only an absolute path with no `..` or symlink in it.
                    let real = match std::fs::canonicalize(path) {
                        Ok(p) if p.is_file() => p,
                        _ => return Err(ActError::Page(format!("file `{}` does not exist", path.display()))),
                    };
                    let el = self.find(sel, self.wait).await?;
                    self.cmd(el.send_keys(&real.to_string_lossy())).await?;
                }
                Ok(())
            }
            Action::WaitFor { target, timeout } => self.wait_for(target, *timeout).await,
            Action::AssertText(checks) => {
                for (sel, want) in checks {
                    let el = self.find(sel, self.wait).await?;
                    let text = self.cmd(el.text()).await?;
                    if !text.contains(want.as_str()) {
                        return Err(ActError::Page(format!("`{sel}` shows `{}`, expected it to contain `{want}`", excerpt(&text, 200))));
                    }
                }
                Ok(())
            }
            Action::Extract(list) => {
                for x in list {
                    let el = self.find(&x.sel, self.wait).await?;
                    let v = match x.attribute.as_deref() {
                        None => self.cmd(el.text()).await?,
                        // `value` is the live property (what the user typed), not the HTML
                        // attribute (what the page was served with).
                        Some("value") => self.cmd(el.prop("value")).await?.unwrap_or_default(),
                        Some(a) => self.cmd(el.attr(a)).await?.unwrap_or_default(),
                    };
                    out.output.insert(x.name.clone(), Value::String(v.trim().to_string()));
                }
                Ok(())
            }
            Action::Screenshot(name) => {
                let png = self.cmd(super::artifacts::screenshot(self.client, self.secrets)).await?;
                out.screenshots.push((name.clone(), png));
                Ok(())
            }
            Action::IfPresent { sel, then } => {
                let found = self.cmd(self.client.find_all(sel.locator())).await?;
                if !found.is_empty() {
                    for a in then {
                        Box::pin(self.run(a, out)).await?;
                    }
                }
                Ok(())
            }
        }
    }

    pub async fn find(&self, sel: &Selector, timeout: Duration) -> Result<Element, ActError> {
        // The polling stops at `timeout`, but one of its commands may hang: bound the whole.
        let r = self.within(timeout + self.limit, self.client.wait().at_most(timeout).every(POLL).for_element(sel.locator())).await?;
        match r {
            Ok(el) => Ok(el),
            Err(CmdError::WaitTimeout) => Err(not_found(sel, timeout)),
            Err(e) if e.is_invalid_selector() => Err(ActError::Page(format!("`{sel}` is not a valid selector"))),
            Err(e) => Err(classify(e)),
        }
    }

    /// Clicks, retrying while something covers the element or it is not interactable yet
    /// (animations, overlays that go away), up to the wait.
    pub(super) async fn click(&self, sel: &Selector) -> Result<(), ActError> {
        self.try_click(sel).await.and_then(|r| r)
    }

    /// `click`, telling apart the errors that certainly come before any click (`Ok(Err(_))`:
    /// the element was not found, stayed covered or not interactable, or the session was lost
    /// while looking it up) from those of a click command that may have reached the page
    /// (`Err(_)`). The submit click needs the difference: only the first is certainly not sent.
    pub async fn try_click(&self, sel: &Selector) -> Result<Result<(), ActError>, ActError> {
        self.try_click_found(sel, None).await
    }

    /// `try_click`, starting with `found` when the caller already looked the element up; a
    /// retry looks it up again (it may have been replaced).
    pub async fn try_click_found(&self, sel: &Selector, mut found: Option<Element>) -> Result<Result<(), ActError>, ActError> {
        let deadline = Instant::now() + self.wait;
        loop {
            let el = match found.take() {
                Some(el) => el,
                None => match self.find(sel, self.wait).await {
                    Ok(el) => el,
                    Err(e) => return Ok(Err(e)),
                },
            };
            match self.within(self.limit, el.click()).await? {
                Ok(()) => return Ok(Ok(())),
                Err(e) => {
                    let blocked = matches!(&e, CmdError::Standard(w) if w.error == ErrorStatus::ElementClickIntercepted)
                        || e.is_element_not_interactable()
                        || e.is_stale_element_reference();
                    if !blocked {
                        return Err(classify(e));
                    }
                    if Instant::now() >= deadline {
                        let msg = e.to_string();
                        let first = msg.lines().next().unwrap_or("");
                        return Ok(Err(ActError::Page(format!("`{sel}` cannot be clicked: {first}"))));
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    }

    async fn wait_for(&self, target: &WaitTarget, timeout: Duration) -> Result<(), ActError> {
        if let WaitTarget::Selector(sel) = target {
            return self.find(sel, timeout).await.map(|_| ());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let ok = match target {
                WaitTarget::Text(t) => self.body_text().await?.contains(t.as_str()),
                WaitTarget::Url(u) => self.cmd(self.client.current_url()).await?.as_str().contains(u.as_str()),
                WaitTarget::Selector(_) => unreachable!("handled above"),
            };
            if ok {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let what = match target {
                    WaitTarget::Text(t) => format!("text `{t}` did not appear"),
                    WaitTarget::Url(u) => format!("the URL did not come to contain `{u}`"),
                    WaitTarget::Selector(_) => unreachable!("handled above"),
                };
                return Err(ActError::Page(format!("{what} within {}", humantime::format_duration(timeout))));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Whether the target holds right now (no waiting): used to recognise the login page.
    pub async fn matches_now(&self, target: &WaitTarget) -> Result<bool, ActError> {
        Ok(match target {
            WaitTarget::Selector(sel) => !self.cmd(self.client.find_all(sel.locator())).await?.is_empty(),
            WaitTarget::Text(t) => self.body_text().await?.contains(t.as_str()),
            WaitTarget::Url(u) => self.cmd(self.client.current_url()).await?.as_str().contains(u.as_str()),
        })
    }

    pub async fn body_text(&self) -> Result<String, ActError> {
        let v = self.cmd(self.client.execute("return document.body ? document.body.innerText : ''", vec![])).await?;
        Ok(v.as_str().unwrap_or("").to_string())
    }
}

pub(super) fn not_found(sel: &Selector, wait: Duration) -> ActError {
    ActError::Page(format!("no element matches `{sel}` after {}", humantime::format_duration(wait)))
}

pub fn excerpt(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}
