//! One browser item, start to finish: borrow a logged-in session, run the item's actions,
//! claim the exactly-once ledger key just before `submit`, and recover from the two ways a
//! long run loses its footing: the portal logs the session out (log in again and redo the
//! item) and chromedriver or Chromium dies (restart it and redo the item). A failed item
//! leaves a screenshot and the page HTML behind.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::action::{Action, WaitTarget};
use super::artifacts;
use super::driver::{Driver, DriverConfig};
use super::exec::{ActError, Page, Produced};
use super::plan::{PlannedBrowser, Renderer};
use super::session::{Pool, Session};
use crate::engine::{Claim, ItemRunner, ItemStep};
use crate::steps::{Artifact, Failed, ItemCx, ItemOutput, StepCx, StepError};

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
    let pool = Pool::new(driver.clone(), p.sessions, profiles);
    Ok(BrowserRunner { plan: p.clone(), live: Some(Live { driver, pool }) })
}

/// How one try of an item ended when it did not succeed.
enum Stop {
    /// The portal logged the session out before the record was sent: log in, try again.
    LoggedOut,
    /// The browser or driver is gone.
    Lost(String),
    /// The item failed for good (or for the engine's retry policy to decide).
    Failed(Failed),
}

#[async_trait]
impl ItemRunner for BrowserRunner {
    async fn run_item(&self, env: &ItemCx<'_>) -> Result<ItemOutput, Failed> {
        let run = env.run;
        let redact = |s: String| run.secrets.redact(&s);
        let r = Renderer { templates: &run.templates, ctx: env.ctx, base_dir: &self.plan.base_dir };
        let render_err = |e: String| StepError::Fatal(redact(format!("cannot render the actions for this item: {e}")));
        let actions = r.actions(&self.plan.actions).map_err(render_err)?;
        let login = r.actions(&self.plan.login).map_err(render_err)?;
        let logged_out = self.plan.logged_out.as_ref().map(|w| r.wait(w)).transpose().map_err(render_err)?;
        let Some(live) = &self.live else {
            let list: Vec<String> = actions.iter().map(|a| redact(a.to_string())).collect();
            return Ok(ItemOutput::new(json!({ "dry_run": true, "actions": list })));
        };
        let item = Item { env, login: &login, actions: &actions, logged_out: logged_out.as_ref(), wait: self.plan.wait };
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

struct Item<'a> {
    env: &'a ItemCx<'a>,
    login: &'a [Action],
    actions: &'a [Action],
    logged_out: Option<&'a WaitTarget>,
    wait: std::time::Duration,
}

impl Item<'_> {
    fn ledger_key(&self) -> String {
        format!("{}/{}/{}", self.env.run.workflow, self.env.step_id, self.env.key)
    }

    async fn is_logged_out(&self, page: &Page<'_>) -> Result<bool, ActError> {
        match self.logged_out {
            Some(t) => page.matches_now(t).await,
            None => Ok(false),
        }
    }

    async fn attempt(&self, s: &mut Session) -> Result<ItemOutput, Stop> {
        let page = Page { client: &s.client, wait: self.wait };
        if !s.logged_in {
            self.log_in(&page).await?;
            s.logged_in = true;
        }
        let run = self.env.run;
        let delivery = self.env.delivery();
        let key = self.ledger_key();
        let mut claimed = false;
        let mut out = Produced::default();
        for (i, a) in self.actions.iter().enumerate() {
            if matches!(a, Action::Submit(_)) {
                match delivery.claim(&key).await {
                    Ok(Claim::Fresh) => claimed = true,
                    Ok(Claim::AlreadySent { run_id }) => {
                        return Ok(ItemOutput::skipped(json!({ "already_submitted": true, "by_run": run_id })));
                    }
                    Ok(Claim::Uncertain { run_id }) => {
                        return Err(Stop::Failed(
                            StepError::Fatal(format!(
                                "uncertain: run {run_id} was interrupted while submitting this record, so it may already be \
                                 on the portal; not submitted again. Check the portal, then `cxflow resolve {run_id} {} --as sent` \
                                 (or `--as not-sent` to submit it at the next resume)",
                                self.env.key
                            ))
                            .into(),
                        ));
                    }
                    Ok(Claim::InFlight { run_id }) => {
                        return Ok(ItemOutput::skipped(json!({ "in_flight": true, "by_run": run_id })));
                    }
                    Err(e) => return Err(Stop::Failed(StepError::Retryable(format!("run log: {e}")).into())),
                }
            }
            let r = page.run(a, &mut out).await;
            let r = match r {
                // A goto that lands on the login page: the session expired.
                Ok(()) if matches!(a, Action::Goto(_)) => match self.is_logged_out(&page).await {
                    Ok(true) => Err(ActError::Page("the portal sent the browser to the login page".into())),
                    Ok(false) => Ok(()),
                    Err(e) => Err(e),
                },
                other => other,
            };
            match r {
                Ok(()) => {}
                Err(ActError::Session(m)) => {
                    if claimed {
                        let _ = delivery.uncertain(&key).await;
                        return Err(Stop::Failed(self.uncertain(i, a, &m).into()));
                    }
                    return Err(Stop::Lost(m));
                }
                Err(ActError::Page(m)) => {
                    if let Ok(true) = self.is_logged_out(&page).await {
                        // A portal that logged the session out refuses the post and shows the
                        // login page instead, so a claimed record was not sent: release it.
                        if claimed {
                            let _ = delivery.release(&key).await;
                        }
                        return Err(Stop::LoggedOut);
                    }
                    let (e, files) = self.fail(&page, "action", i, a, &m).await;
                    if claimed {
                        // Sent or not, we cannot tell: the key stays claimed (uncertain).
                        let _ = delivery.uncertain(&key).await;
                        let e =
                            format!("{e}; the record may have been submitted, so it is marked uncertain and will not be submitted again");
                        return Err(Stop::Failed(Failed::with_artifacts(StepError::Fatal(e), files)));
                    }
                    return Err(Stop::Failed(Failed::with_artifacts(StepError::Fatal(e), files)));
                }
            }
        }
        let output = Value::Object(out.output);
        if claimed {
            let detail = serde_json::to_string(&run.secrets.redact_value(&output)).ok();
            if let Err(e) = delivery.confirm(&key, detail.as_deref()).await {
                tracing::error!("cannot mark `{key}` sent: {e}");
            }
        }
        let mut arts = Vec::new();
        for (name, png) in out.screenshots {
            let p = artifacts::path_for(run, self.env.step_id, self.env.key, &format!("{name}.png"));
            if artifacts::write(&p, &png).is_ok() {
                arts.push(Artifact::new("screenshot", p));
            }
        }
        Ok(ItemOutput { output, artifacts: arts, skipped: false })
    }

    async fn log_in(&self, page: &Page<'_>) -> Result<(), Stop> {
        let mut scratch = Produced::default();
        for (i, a) in self.login.iter().enumerate() {
            match page.run(a, &mut scratch).await {
                Ok(()) => {}
                Err(ActError::Session(m)) => return Err(Stop::Lost(m)),
                Err(ActError::Page(m)) => {
                    let (e, files) = self.fail(page, "login action", i, a, &m).await;
                    return Err(Stop::Failed(Failed::with_artifacts(StepError::Fatal(e), files)));
                }
            }
        }
        if !self.login.is_empty() {
            match self.is_logged_out(page).await {
                Ok(false) => {}
                Ok(true) => {
                    let (e, files) = self
                        .fail(
                            page,
                            "login",
                            self.login.len() - 1,
                            &self.login[self.login.len() - 1],
                            "still on the login page after logging in; check the credentials",
                        )
                        .await;
                    return Err(Stop::Failed(Failed::with_artifacts(StepError::Fatal(e), files)));
                }
                Err(ActError::Session(m)) => return Err(Stop::Lost(m)),
                Err(ActError::Page(m)) => return Err(Stop::Failed(StepError::Fatal(m).into())),
            }
        }
        Ok(())
    }

    /// Saves the failure artifacts and builds the error: which action, its selector, what
    /// went wrong and what the page showed.
    async fn fail(&self, page: &Page<'_>, what: &str, i: usize, a: &Action, msg: &str) -> (String, Vec<Artifact>) {
        let run = self.env.run;
        let (state, files) = artifacts::save_failure(page.client, run, self.env.step_id, self.env.key, self.env.attempt).await;
        let shown = state.map(|s| format!("; {}", s.describe())).unwrap_or_default();
        (run.secrets.redact(&format!("{what} {} ({a}): {msg}{shown}", i + 1)), files)
    }

    fn uncertain(&self, i: usize, a: &Action, m: &str) -> StepError {
        StepError::Fatal(self.env.run.secrets.redact(&format!(
            "action {} ({a}): browser lost after the record was submitted ({m}); it may be on the portal, \
             so it is marked uncertain and will not be submitted again",
            i + 1
        )))
    }
}
