//! One browser item, start to finish: borrow a logged-in session, run the item's actions
//! (`item.rs`, which keeps the exactly-once protocol around `submit`), and recover from the two
//! ways a long run loses its footing: the portal logs the session out (log in again and redo
//! the item) and chromedriver or Chromium dies or stops answering (restart it and redo the item,
//! unless it was past the claim). A failed item leaves a screenshot and the page HTML behind.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use super::driver::{Driver, DriverConfig};
use super::item::{Item, Stop};
use super::plan::{PlannedBrowser, Renderer};
use super::session::Pool;
use crate::engine::{ItemRunner, ItemStep};
use crate::plan::templates::Reads;
use crate::steps::{Failed, ItemCx, ItemOutput, StepCx, StepError};

/// Tries per item for recoverable trouble (logged out, browser lost) before the engine's own
/// retry policy takes over.
const MAX_TRIES: u32 = 3;

pub struct BrowserRunner {
    plan: PlannedBrowser,
    /// None in a dry run: nothing is started and items only render their actions.
    live: Option<Live>,
}

struct Live {
    driver: Arc<Driver>,
    pool: Pool,
}

#[async_trait]
impl ItemStep for PlannedBrowser {
    /// Each session works an item at a time, so the sessions work in parallel unless told otherwise.
    fn default_concurrency(&self) -> usize {
        self.sessions
    }

    /// Its fields are the workflow's own templates: the plan knows what they read.
    fn own_reads(&self) -> Reads {
        Reads::none()
    }

    async fn open(&self, cx: &StepCx<'_>) -> anyhow::Result<Box<dyn ItemRunner>> {
        Ok(Box::new(open(self, cx).await?))
    }
}

async fn open(p: &PlannedBrowser, cx: &StepCx<'_>) -> anyhow::Result<BrowserRunner> {
    let run = cx.run;
    if run.dry_run {
        return Ok(BrowserRunner { plan: p.clone(), live: None });
    }
    let cfg = DriverConfig {
        webdriver_url: run.config.webdriver_url.clone(),
        chromedriver: run.config.chromedriver.clone(),
        chromium: run.config.chromium.clone(),
    };
    let driver = Arc::new(Driver::start(cfg).await?);
    let tmp = std::env::temp_dir();
    let stale = tokio::task::spawn_blocking({
        let tmp = tmp.clone();
        move || super::profiles::sweep(&tmp)
    })
    .await
    .unwrap_or(0);
    if stale > 0 {
        tracing::info!("removed {stale} Chromium profile folder(s) left by browser runs that were killed");
    }
    let profiles = super::profiles::folder(&tmp, run.run_id);
    // Opening a session starts a Chromium: slower than any command on a busy machine.
    let start_limit = p.command_timeout.max(std::time::Duration::from_secs(60));
    let sessions = match &run.config.webdriver_url {
        Some(url) => grid_sessions(url, cx.step_id, p.sessions).await,
        None => p.sessions,
    };
    let pool = Pool::new(driver.clone(), sessions, profiles, start_limit);
    Ok(BrowserRunner { plan: p.clone(), live: Some(Live { driver, pool }) })
}

/// `sessions`, capped by the Chrome slots when `url` is a Selenium Grid (`grid.rs`).
async fn grid_sessions(url: &str, step_id: &str, sessions: usize) -> usize {
    let slots = super::grid::probe(url).await;
    let cap = super::grid::session_cap(sessions, slots);
    if let Some(slots) = slots {
        tracing::info!(
            "step `{step_id}`: the Selenium Grid at {} has {slots} Chrome slot(s); opening at most {cap} browser session(s) (`sessions: {sessions}`)",
            crate::config::redact_url(url)
        );
    }
    cap
}

#[async_trait]
impl ItemRunner for BrowserRunner {
    async fn run_item(&self, env: &ItemCx<'_>) -> Result<ItemOutput, Failed> {
        let run = env.run;
        let redact = |s: String| run.secrets.redact(&s);
        let r = Renderer { templates: &run.templates, ctx: env.ctx, base_dir: &self.plan.base_dir };
        let render_err = |e: String| StepError::Fatal(redact(format!("cannot render the actions for item `{}`: {e}", env.key)));
        let actions = r.actions(&self.plan.actions).map_err(render_err)?;
        let login = r.actions(&self.plan.login).map_err(render_err)?;
        let logged_out = self.plan.logged_out.as_ref().map(|w| r.wait(w)).transpose().map_err(render_err)?;
        let rejected = self.plan.rejected_if.as_ref().map(|w| r.rejected(w)).transpose().map_err(render_err)?;
        let key = match &self.plan.idempotency_key {
            Some(t) => r.text(t).map_err(|e| StepError::Fatal(redact(format!("cannot render `idempotency_key` for this item: {e}"))))?,
            None => format!("{}/{}/{}", run.workflow, env.step_id, env.key),
        };
        if key.trim().is_empty() {
            return Err(StepError::Fatal("`idempotency_key` rendered empty; it must identify the record".into()).into());
        }
        let Some(live) = &self.live else {
            let list: Vec<String> = actions.iter().map(|a| redact(a.to_string())).collect();
            return Ok(ItemOutput::new(json!({ "dry_run": true, "key": key, "actions": list })));
        };
        let item = Item {
            env,
            login: &login,
            actions: &actions,
            logged_out: logged_out.as_ref(),
            rejected: rejected.as_ref(),
            key: &key,
            wait: self.plan.wait,
            limit: self.plan.command_timeout,
        };
        let mut last = String::new();
        for _ in 0..MAX_TRIES {
            let mut lease = live.pool.take().await;
            let mut session = match lease.session.take() {
                Some(s) => s,
                None => match live.pool.open().await {
                    Ok(s) => s,
                    Err(e) => {
                        last = format!("{e:#}");
                        let gen = live.driver.generation().await;
                        restart(&live.driver, gen).await?;
                        continue;
                    }
                },
            };
            match item.attempt(&mut session).await {
                Ok(out) => {
                    lease.session = Some(session);
                    live.pool.put(lease).await;
                    return Ok(out);
                }
                Err(Stop::LoggedOut) => {
                    tracing::info!("item `{}`: the portal logged the session out; logging in again", env.key);
                    last = "the portal logged the session out".into();
                    session.logged_in = false;
                    lease.session = Some(session);
                    live.pool.put(lease).await;
                }
                Err(Stop::Lost(m)) => {
                    tracing::warn!("item `{}`: {}", env.key, redact(m.clone()));
                    last = m;
                    let gen = session.generation;
                    session.close().await;
                    restart(&live.driver, gen).await?;
                }
                Err(Stop::Failed(e)) => {
                    lease.session = Some(session);
                    live.pool.put(lease).await;
                    return Err(e);
                }
                Err(Stop::FailedLost(e)) => {
                    // The session is gone (or hangs): the next item gets a new one.
                    let gen = session.generation;
                    session.close().await;
                    let _ = live.driver.restart_if_dead(gen).await;
                    return Err(e);
                }
            }
        }
        Err(StepError::Retryable(redact(format!("gave up after {MAX_TRIES} tries; last: {last}"))).into())
    }

    async fn close(self: Box<Self>) {
        if let Some(live) = self.live {
            live.pool.close_all().await;
            live.driver.shutdown().await;
        }
    }
}

async fn restart(driver: &Driver, gen: u64) -> Result<(), StepError> {
    driver.restart_if_dead(gen).await.map(|_| ()).map_err(|e| StepError::Retryable(format!("cannot restart chromedriver: {e:#}")))
}
