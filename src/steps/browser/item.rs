//! One try of one browser item on a session: log in if needed, run the actions, and around the
//! `submit` click keep the exactly-once protocol (`engine::Delivery`):
//!
//!   find the button, ask the browser whether it would block the form ── blocked ─▶ fail, nothing claimed
//!   claim the key ── AlreadySent / InFlight ─▶ skip;  Uncertain ─▶ fail `uncertain: ...`
//!   click ── certainly not clicked (button gone or covered) ─▶ release, fail (session lost: redo)
//!         └─ no answer to the click / browser lost during it ─▶ uncertain
//!   watch (`rejected_if`) ── refused / login page ─▶ release, fail / log in again
//!   the remaining actions ── fail ─▶ uncertain;  succeed ─▶ confirm (a failed confirm: uncertain)
//!
//! Uncertain means the key stays claimed: no run submits the record again until a person says
//! what happened (`cxflow resolve`).

use serde_json::{json, Value};

use super::action::{Action, Rejected, WaitTarget};
use super::artifacts;
use super::exec::{excerpt, ActError, Page, Produced};
use super::selector::Selector;
use super::session::Session;
use super::submit::{self, Ready, Settled, Submitted, Watch};
use crate::engine::{Claim, Delivery};
use crate::steps::{Artifact, Failed, ItemCx, ItemOutput, StepError};

/// How one try of an item ended when it did not succeed.
pub(super) enum Stop {
    /// The portal logged the session out before the record was sent: log in, try again.
    LoggedOut,
    /// The browser or driver is gone, nothing claimed: a new session may redo the item.
    Lost(String),
    /// The item failed for good (or for the engine's retry policy to decide).
    Failed(Failed),
    /// The item failed and its session is gone with it (lost after the claim).
    FailedLost(Failed),
}

pub(super) struct Item<'a> {
    pub env: &'a ItemCx<'a>,
    pub login: &'a [Action],
    pub actions: &'a [Action],
    pub logged_out: Option<&'a WaitTarget>,
    pub rejected: Option<&'a Rejected>,
    /// The ledger key of this item's submission.
    pub key: &'a str,
    pub wait: std::time::Duration,
    pub limit: std::time::Duration,
}

impl Item<'_> {
    async fn is_logged_out(&self, page: &Page<'_>) -> Result<bool, ActError> {
        match self.logged_out {
            Some(t) => page.matches_now(t).await,
            None => Ok(false),
        }
    }

    pub(super) async fn attempt(&self, s: &mut Session) -> Result<ItemOutput, Stop> {
        let run = self.env.run;
        let delivery = self.env.delivery();
        // Decided before (sent, in flight, uncertain)? Then there is nothing to fill in: say so
        // without touching the portal. The claim before the click still decides for good.
        if self.actions.iter().any(|a| matches!(a, Action::Submit(_))) {
            if let Some(early) = self.decide(delivery.check(self.key).await)? {
                return Ok(early);
            }
        }
        let page = Page { client: &s.client, secrets: &self.env.run.secrets, wait: self.wait, limit: self.limit };
        if !s.logged_in {
            self.log_in(&page).await?;
            s.logged_in = true;
        }
        // Whether this try holds the ledger key (claimed, not yet confirmed or released).
        let mut claimed = false;
        let mut out = Produced::default();
        let mut done_early = None;
        for (i, a) in self.actions.iter().enumerate() {
            if done_early == Some(i) {
                continue;
            }
            let r = match a {
                Action::Submit(sel) => {
                    let next = match self.actions.get(i + 1) {
                        Some(Action::WaitFor { target, timeout }) => Some((target, *timeout)),
                        _ => None,
                    };
                    match self.submit(&page, &delivery, i, a, sel, next).await? {
                        Submitted::Early(early) => return Ok(early),
                        Submitted::Clicked { shown } => {
                            claimed = true;
                            // The watch saw the `wait_for` that follows hold: it is done.
                            if shown {
                                done_early = Some(i + 1);
                            }
                            Ok(())
                        }
                    }
                }
                _ => page.run(a, &mut out).await,
            };
            let r = match r {
                // A goto that lands on the login page: the session expired.
                Ok(()) if matches!(a, Action::Goto(_)) => match self.is_logged_out(&page).await {
                    Ok(true) => Err(ActError::Page("the portal sent the browser to the login page".into())),
                    Ok(false) => Ok(()),
                    Err(e) => Err(e),
                },
                other => other,
            };
            match (r, claimed) {
                (Ok(()), _) => {}
                (Err(ActError::Session(m)), false) => return Err(Stop::Lost(m)),
                (Err(ActError::Session(m)), true) => {
                    let what = at(i, a, &format!("browser lost after the submit ({m})"));
                    return Err(Stop::FailedLost(self.uncertain(&delivery, &what, Vec::new()).await));
                }
                (Err(ActError::Page(m)), _) => {
                    if let Ok(true) = self.is_logged_out(&page).await {
                        // A portal that logged the session out refuses the post and shows the
                        // login page instead, so a claimed record was not sent: release it.
                        if claimed {
                            self.release(&delivery).await?;
                        }
                        return Err(Stop::LoggedOut);
                    }
                    let (e, files) = self.fail(&page, "action", i, a, &m).await;
                    return Err(match claimed {
                        false => Stop::Failed(Failed::with_artifacts(StepError::Fatal(e), files)),
                        // Sent or not, we cannot tell: the key stays claimed.
                        true => Stop::Failed(self.uncertain(&delivery, &e, files).await),
                    });
                }
            }
        }
        let output = Value::Object(out.output);
        if claimed {
            let detail = serde_json::to_string(&run.secrets.redact_value(&output)).ok();
            if let Err(e) = delivery.confirm(self.key, detail.as_deref()).await {
                return Err(Stop::Failed(StepError::Fatal(self.unrecorded(&format!("{e:#}"))).into()));
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

    /// The submit action: `Clicked` when the record was clicked away with the key claimed,
    /// `Early(output)` when there is nothing to do (sent before, or in flight elsewhere).
    async fn submit(
        &self,
        page: &Page<'_>,
        delivery: &Delivery<'_>,
        i: usize,
        a: &Action,
        sel: &Selector,
        next: Option<(&WaitTarget, std::time::Duration)>,
    ) -> Result<Submitted, Stop> {
        let watch = self.rejected.map(|rejected| Watch {
            rejected,
            success: next.map(|n| n.0),
            logged_out: self.logged_out,
            mark: uuid::Uuid::new_v4().simple().to_string(),
        });
        let (el, shown_before) = match submit::prepare(page, sel, watch.as_ref()).await {
            Ok(Ready::Go { el, shown_before }) => (el, shown_before),
            Ok(Ready::Blocked(why)) => {
                let msg = format!("the browser blocks the submit: {why}; {}", self.not_sent());
                return Err(self.failed(page, i, a, &msg).await);
            }
            Err(e) => return Err(self.before_claim(page, i, a, e).await),
        };
        // Right before the click: on disk when it returns Fresh.
        if let Some(early) = self.decide(delivery.claim(self.key).await)? {
            return Ok(Submitted::Early(early));
        }
        match page.try_click_found(sel, Some(el)).await {
            Ok(Ok(())) => {}
            Ok(Err(ActError::Page(not_clicked))) => {
                self.release(delivery).await?;
                return Err(self.failed(page, i, a, &format!("{not_clicked}; {}", self.not_sent())).await);
            }
            // Lost while looking the button up again: nothing was clicked, a new session redoes it.
            Ok(Err(ActError::Session(m))) => {
                self.release(delivery).await?;
                return Err(Stop::Lost(m));
            }
            Err(ActError::Session(m)) => {
                let what = at(i, a, &format!("no answer to the submit click ({m})"));
                return Err(Stop::FailedLost(self.uncertain(delivery, &what, Vec::new()).await));
            }
            Err(ActError::Page(m)) => {
                let (e, files) = self.fail(page, "action", i, a, &m).await;
                return Err(Stop::Failed(self.uncertain(delivery, &e, files).await));
            }
        }
        let Some(w) = &watch else { return Ok(Submitted::Clicked { shown: false }) };
        let bound = next.map_or(self.wait, |n| n.1);
        match w.after(page, shown_before, bound).await {
            Ok(Settled::Shown) => Ok(Submitted::Clicked { shown: true }),
            Ok(Settled::Accepted | Settled::Unknown) => Ok(Submitted::Clicked { shown: false }),
            Ok(Settled::LoggedOut) => {
                self.release(delivery).await?;
                Err(Stop::LoggedOut)
            }
            Ok(Settled::Refused(text)) => {
                self.release(delivery).await?;
                let said = match excerpt(&text, 300) {
                    t if t.is_empty() => format!("`{}` is shown", w.rejected.sel),
                    t => format!("`{t}`"),
                };
                Err(self.failed(page, i, a, &format!("refused by the portal: {said}; {}", self.not_sent())).await)
            }
            Err(ActError::Session(m)) => {
                let what = at(i, a, &format!("browser lost after the submit click ({m})"));
                Err(Stop::FailedLost(self.uncertain(delivery, &what, Vec::new()).await))
            }
            Err(ActError::Page(m)) => {
                let (e, files) = self.fail(page, "action", i, a, &m).await;
                Err(Stop::Failed(self.uncertain(delivery, &e, files).await))
            }
        }
    }

    /// What the ledger's answer (a `check` or a `claim`) means for this item: `None` go on,
    /// `Some(output)` nothing to do, or an error (uncertain, or the run log failing).
    fn decide(&self, answer: anyhow::Result<Claim>) -> Result<Option<ItemOutput>, Stop> {
        let run_id = match answer {
            Ok(Claim::Fresh) => return Ok(None),
            Ok(Claim::AlreadySent { run_id }) => {
                return Ok(Some(ItemOutput::skipped(json!({ "already_submitted": true, "by_run": run_id }))));
            }
            Ok(Claim::InFlight { run_id }) => return Ok(Some(ItemOutput::skipped(json!({ "in_flight": true, "by_run": run_id })))),
            Ok(Claim::Uncertain { run_id }) => run_id,
            // The fuse is blown: the run stops; this item was not sent.
            Err(e) => return Err(Stop::Failed(StepError::Retryable(format!("run log: {e:#}; not submitted")).into())),
        };
        Err(Stop::Failed(
            StepError::Fatal(format!(
                "uncertain: run {run_id} stopped while submitting this record (key `{}`), so it may already be on the portal; \
                 not submitted again. Check the portal, then `cxflow resolve {run_id} {} --as sent|not-sent` (`not-sent` \
                 submits it at the next resume)",
                self.key, self.env.key
            ))
            .into(),
        ))
    }

    /// The record was certainly not sent: give the key back. If the run log cannot take that,
    /// the run stops (its fuse is blown) and the key stays claimed, which the error says.
    async fn release(&self, delivery: &Delivery<'_>) -> Result<(), Stop> {
        delivery.release(self.key).await.map_err(|e| {
            let run_id = self.env.run.run_id;
            Stop::Failed(
                StepError::Fatal(format!(
                    "uncertain: the record was not sent, but the run log could not release key `{}` ({e:#}), so it stays \
                     claimed by run {run_id}: `cxflow resolve {run_id} {} --as not-sent`, then `cxflow resume {run_id}`",
                    self.key, self.env.key
                ))
                .into(),
            )
        })
    }

    /// The record may be on the portal: the key stays claimed, and the error says by which run
    /// and how a person settles it.
    async fn uncertain(&self, delivery: &Delivery<'_>, what: &str, files: Vec<Artifact>) -> Failed {
        let _ = delivery.uncertain(self.key).await;
        let run_id = self.env.run.run_id;
        let msg = format!(
            "uncertain: {what}; the record may be on the portal, so key `{}` stays claimed by run {run_id} and is not \
             submitted again. Check the portal, then `cxflow resolve {run_id} {} --as sent|not-sent`",
            self.key, self.env.key
        );
        Failed::with_artifacts(StepError::Fatal(self.env.run.secrets.redact(&msg)), files)
    }

    /// Submitted, but the ledger could not record it: it must not count as done (a resume would
    /// find the key claimed and report it), and the fuse stops the run.
    fn unrecorded(&self, e: &str) -> String {
        let run_id = self.env.run.run_id;
        self.env.run.secrets.redact(&format!(
            "uncertain: the portal accepted the record, but the run log could not record it ({e}); key `{}` stays \
             claimed by run {run_id}. Check the portal, then `cxflow resolve {run_id} {} --as sent|not-sent`",
            self.key, self.env.key
        ))
    }

    /// The end of the error of a record that certainly did not reach the portal.
    fn not_sent(&self) -> String {
        format!("not submitted (fix the record, then `cxflow resume {}`)", self.env.run.run_id)
    }

    /// A failure before anything was claimed: a lost browser redoes the item, a page problem fails it.
    async fn before_claim(&self, page: &Page<'_>, i: usize, a: &Action, e: ActError) -> Stop {
        match e {
            ActError::Session(m) => Stop::Lost(m),
            ActError::Page(m) => self.failed(page, i, a, &m).await,
        }
    }

    async fn failed(&self, page: &Page<'_>, i: usize, a: &Action, msg: &str) -> Stop {
        let (e, files) = self.fail(page, "action", i, a, msg).await;
        Stop::Failed(Failed::with_artifacts(StepError::Fatal(e), files))
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
        let Some(last) = self.login.last() else { return Ok(()) };
        match self.is_logged_out(page).await {
            Ok(false) => Ok(()),
            Ok(true) => {
                let msg = "still on the login page after logging in; check the credentials";
                let (e, files) = self.fail(page, "login", self.login.len() - 1, last, msg).await;
                Err(Stop::Failed(Failed::with_artifacts(StepError::Fatal(e), files)))
            }
            Err(ActError::Session(m)) => Err(Stop::Lost(m)),
            Err(ActError::Page(m)) => Err(Stop::Failed(StepError::Fatal(m).into())),
        }
    }

    /// Saves the failure artifacts and builds the error: which action, its selector, what
    /// went wrong and what the page showed.
    async fn fail(&self, page: &Page<'_>, what: &str, i: usize, a: &Action, msg: &str) -> (String, Vec<Artifact>) {
        let run = self.env.run;
        let (state, files) = artifacts::save_failure(page.client, run, self.env.step_id, self.env.key, self.env.attempt).await;
        let shown = state.map(|s| format!("; {}", s.describe())).unwrap_or_default();
        (run.secrets.redact(&format!("{what} {} ({a}): {msg}{shown}", i + 1)), files)
    }
}

/// An error about action `i`: its position and what it does (selectors, never values).
fn at(i: usize, a: &Action, why: &str) -> String {
    format!("action {} ({a}): {why}", i + 1)
}
