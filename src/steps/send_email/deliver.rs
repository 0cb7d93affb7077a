//! The email's side of the exactly-once protocol, written against a small `Ledger` trait so the state
//! machine is testable without a database (the step implements it over the engine's `Delivery`).
//!
//!   render + read attachments + build (any error: Fatal, nothing claimed, nothing sent)
//!   check key ── already sent ───────────────▶ skip
//!            ├─ in flight (a live run has it) ▶ skip, naming that run
//!            ├─ uncertain + `skip` ──────────▶ Fatal: uncertain, until a person resolves it
//!            └─ fresh / uncertain + `resend` ─▶ wait for the rate limit and a connection, MAIL, RCPT
//!               refused or cut off here ──────▶ Retryable / Fatal, nothing was claimed
//!               envelope accepted: claim (on disk) ─▶ DATA + message ─ accepted ──────▶ mark_sent
//!                                                  ├ 4xx / cut off before the message ▶ release, Retryable
//!                                                  ├ 5xx ──────────────────────────────▶ release, Fatal
//!                                                  └ cut off after the message ────────▶ `skip`: keep it claimed, Fatal (uncertain)
//!                                                                                        `resend`: release, Retryable

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::attachments::AttachmentFiles;
use super::compiled::Compiled;
use super::message::build_with;
use super::pool::SendError;
use super::rate::RateLimiter;
use super::spec::Uncertain;
use super::transport::{Delivered, Gate, Transport};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerClaim {
    Fresh,
    AlreadySent {
        run_id: i64,
    },
    /// A previous attempt claimed the key and never confirmed, and is gone: it may or may not
    /// have been sent.
    Uncertain {
        run_id: i64,
    },
    /// A live run holds the key and is sending it now.
    InFlight {
        run_id: i64,
    },
}

#[async_trait]
pub trait Ledger: Send + Sync {
    /// What `claim` would find, without claiming.
    async fn check(&self, key: &str) -> anyhow::Result<LedgerClaim>;
    /// Must be durable (committed) before returning Fresh: the email is sent right after.
    async fn claim(&self, key: &str, item_key: &str) -> anyhow::Result<LedgerClaim>;
    /// Take over an uncertain key for a deliberate resend (`uncertain: resend`); `false` when
    /// another run took it first.
    async fn reclaim(&self, key: &str) -> anyhow::Result<bool>;
    async fn mark_sent(&self, key: &str, detail: &str) -> anyhow::Result<()>;
    async fn release(&self, key: &str) -> anyhow::Result<()>;
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent { key: String, delivered: Delivered, output: Value },
    Skipped { key: String, output: Value },
    DryRun { output: Value },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Retryable(String),
    Fatal(String),
}

pub struct ItemInput<'a> {
    pub ctx: &'a Value,
    pub item_key: &'a str,
    pub default_from: Option<&'a str>,
    pub default_key: &'a str,
    pub base_dir: &'a Path,
    pub dry_run: bool,
}

/// `files` is the step run's attachment cache (`AttachmentFiles::for_step(c)`).
pub async fn deliver<L: Ledger>(
    c: &Compiled,
    files: &AttachmentFiles,
    transport: &Transport,
    rate: &RateLimiter,
    ledger: &L,
    input: ItemInput<'_>,
) -> Result<Outcome, Failure> {
    let r = c.render(input.ctx, input.default_from, input.default_key, input.base_dir, input.item_key).map_err(Failure::Fatal)?;
    let bytes = files.load(&r.attachments).await.map_err(|e| Failure::Fatal(e.to_string()))?;
    let msg = build_with(&r, &bytes).map_err(|e| Failure::Fatal(e.to_string()))?;
    let to = r.to.join(", ");
    if input.dry_run {
        return Ok(Outcome::DryRun { output: json!({"dry_run": true, "key": r.key, "to": to, "subject": r.subject}) });
    }
    // Decided before? Skip it before waiting for the rate limit and a connection.
    if let Some(early) = decided(c.uncertain, &r.key, ledger.check(&r.key).await.map_err(db)?) {
        return early;
    }
    let gate =
        ClaimGate { ledger, key: &r.key, item_key: input.item_key, policy: c.uncertain, claimed: false.into(), withheld: Mutex::new(None) };
    let sent = transport.send(&msg, rate, &gate).await;
    let claimed = gate.claimed.load(Ordering::SeqCst);
    match sent {
        Ok(Some(delivered)) => {
            let detail = match &delivered {
                Delivered::Smtp(resp) => resp.clone(),
                Delivered::File(p) => p.display().to_string(),
            };
            // Written as an uncertain item, like a cut-off send: the run's report and
            // `uncertain_items` list it, and the operator resolves it (the server took it).
            ledger.mark_sent(&r.key, &detail).await.map_err(|e| {
                Failure::Fatal(format!(
                    "uncertain: the mail server accepted it ({detail}), but the run log could not record it ({e:#}); key `{}` \
                     stays claimed and is not resent unasked: check the mail server's log, then `cxflow resolve RUN {} --as \
                     sent|not-sent`",
                    r.key, input.item_key
                ))
            })?;
            let mut output = json!({"sent": true, "key": r.key, "to": to, "subject": r.subject});
            match &delivered {
                Delivered::Smtp(resp) => output["server"] = json!(resp),
                Delivered::File(p) => output["file"] = json!(p),
            }
            Ok(Outcome::Sent { key: r.key, delivered, output })
        }
        Ok(None) => gate.withheld.lock().unwrap().take().unwrap_or_else(|| Err(Failure::Retryable("not sent".into()))),
        Err(SendError::NotClaimed(m)) => Err(Failure::Retryable(format!("run log: {m}; not sent"))),
        Err(e) => {
            let keep_uncertain = matches!(e, SendError::Uncertain(_)) && c.uncertain == Uncertain::Skip;
            if claimed && !keep_uncertain {
                ledger.release(&r.key).await.map_err(db)?;
            }
            Err(match e {
                SendError::Transient(m) => Failure::Retryable(m),
                SendError::Permanent(m) => Failure::Fatal(m),
                SendError::Uncertain(m) if keep_uncertain => Failure::Fatal(format!(
                    "uncertain: {m}; key `{}` stays claimed and is not resent unasked: check the mail server's log, then \
                     `cxflow resolve RUN {} --as sent|not-sent`",
                    r.key, input.item_key
                )),
                SendError::Uncertain(m) => Failure::Retryable(m),
                SendError::NotClaimed(m) => Failure::Retryable(m),
            })
        }
    }
}

fn db(e: anyhow::Error) -> Failure {
    Failure::Retryable(format!("run log: {e:#}"))
}

/// What the ledger's answer means for this email; `None`: go on and send it.
fn decided(policy: Uncertain, key: &str, claim: LedgerClaim) -> Option<Result<Outcome, Failure>> {
    match claim {
        LedgerClaim::Fresh => None,
        LedgerClaim::Uncertain { .. } if policy == Uncertain::Resend => None,
        LedgerClaim::AlreadySent { run_id } => {
            Some(Ok(Outcome::Skipped { output: json!({"skipped": "already sent", "key": key, "by_run": run_id}), key: key.to_string() }))
        }
        LedgerClaim::InFlight { run_id } => Some(Ok(Outcome::Skipped {
            output: json!({"skipped": "in flight", "key": key, "by_run": run_id,
                "reason": format!("run {run_id} is sending it right now; it reports the outcome")}),
            key: key.to_string(),
        })),
        LedgerClaim::Uncertain { run_id } => Some(Err(Failure::Fatal(format!(
            "uncertain: run {run_id} stopped while sending `{key}`, so it may have been delivered; not sent again. \
             Check the mail server's log, then `cxflow resolve {run_id} ITEM_KEY --as sent` (or `--as not-sent` to send it \
             at the next resume), or set `uncertain: resend`"
        )))),
    }
}

/// The claim at handover, asked by the transport with the envelope accepted.
struct ClaimGate<'a, L> {
    ledger: &'a L,
    key: &'a str,
    item_key: &'a str,
    policy: Uncertain,
    claimed: AtomicBool,
    /// Why it was withheld, when it was.
    withheld: Mutex<Option<Result<Outcome, Failure>>>,
}

#[async_trait]
impl<L: Ledger> Gate for ClaimGate<'_, L> {
    async fn pass(&self) -> Result<bool, String> {
        let claim = self.ledger.claim(self.key, self.item_key).await.map_err(|e| format!("{e:#}"))?;
        let go = match claim {
            LedgerClaim::Uncertain { run_id } if self.policy == Uncertain::Resend => {
                let taken = self.ledger.reclaim(self.key).await.map_err(|e| format!("{e:#}"))?;
                if !taken {
                    // Another run took it over between our claim and now: it sends it.
                    *self.withheld.lock().unwrap() = decided(self.policy, self.key, LedgerClaim::InFlight { run_id });
                }
                taken
            }
            other => match decided(self.policy, self.key, other) {
                None => true,
                early => {
                    *self.withheld.lock().unwrap() = early;
                    false
                }
            },
        };
        self.claimed.store(go, Ordering::SeqCst);
        Ok(go)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[derive(Default)]
    struct MemLedger(Mutex<HashMap<String, &'static str>>, bool);

    #[async_trait]
    impl Ledger for MemLedger {
        async fn check(&self, key: &str) -> anyhow::Result<LedgerClaim> {
            Ok(match self.0.lock().unwrap().get(key) {
                Some(&"sent") => LedgerClaim::AlreadySent { run_id: 1 },
                Some(_) => LedgerClaim::Uncertain { run_id: 1 },
                None => LedgerClaim::Fresh,
            })
        }
        async fn claim(&self, key: &str, _: &str) -> anyhow::Result<LedgerClaim> {
            let c = self.check(key).await?;
            if c == LedgerClaim::Fresh {
                self.0.lock().unwrap().insert(key.into(), "sending");
            }
            Ok(c)
        }
        async fn reclaim(&self, _: &str) -> anyhow::Result<bool> {
            Ok(true)
        }
        async fn mark_sent(&self, key: &str, _: &str) -> anyhow::Result<()> {
            if self.1 {
                anyhow::bail!("the run log went away");
            }
            self.0.lock().unwrap().insert(key.into(), "sent");
            Ok(())
        }
        async fn release(&self, key: &str) -> anyhow::Result<()> {
            self.0.lock().unwrap().remove(key);
            Ok(())
        }
    }

    fn compiled(dir: &Path, extra: &str) -> Compiled {
        std::fs::write(dir.join("m.txt.hbs"), "Hi {{item.name}}").unwrap();
        let y = format!("to: \"{{{{item.name}}}} <{{{{item.email}}}}>\"\nsubject: Hi\ntemplate: m\n{extra}");
        let spec = serde_saphyr::from_str(&y).unwrap();
        Compiled::compile(&spec, dir, |p, m| panic!("{p}: {m}")).unwrap()
    }

    fn input<'a>(ctx: &'a Value, dir: &'a Path) -> ItemInput<'a> {
        ItemInput { ctx, item_key: "1", default_from: Some("s@x.org"), default_key: "wf/1", base_dir: dir, dry_run: false }
    }

    #[tokio::test]
    async fn sends_once_then_skips_and_refuses_injection_unclaimed() {
        let d = tempfile::tempdir().unwrap();
        let c = compiled(d.path(), "");
        let t = Transport::outbox(&d.path().join("outbox")).unwrap();
        let (rate, ledger) = (RateLimiter::new(None), MemLedger::default());
        let ctx = json!({"item": {"name": "A", "email": "a@x.org"}});
        let o = deliver(&c, &AttachmentFiles::for_step(&c), &t, &rate, &ledger, input(&ctx, d.path())).await.unwrap();
        assert!(matches!(o, Outcome::Sent { ref key, .. } if key == "wf/1"));
        let o = deliver(&c, &AttachmentFiles::for_step(&c), &t, &rate, &ledger, input(&ctx, d.path())).await.unwrap();
        assert!(matches!(o, Outcome::Skipped { ref output, .. } if output["skipped"] == "already sent"));
        assert_eq!(std::fs::read_dir(d.path().join("outbox")).unwrap().count(), 1);

        let bad = json!({"item": {"name": "A\r\nBcc: x@y.z", "email": "b@x.org"}});
        let mut i = input(&bad, d.path());
        i.default_key = "wf/2";
        let e = deliver(&c, &AttachmentFiles::for_step(&c), &t, &rate, &ledger, i).await.unwrap_err();
        assert!(matches!(e, Failure::Fatal(ref m) if m.contains("line break")), "{e:?}");
        assert!(!ledger.0.lock().unwrap().contains_key("wf/2"));
    }

    #[tokio::test]
    async fn uncertain_keys_follow_policy() {
        let d = tempfile::tempdir().unwrap();
        let t = Transport::outbox(&d.path().join("outbox")).unwrap();
        let (rate, ledger) = (RateLimiter::new(None), MemLedger::default());
        ledger.0.lock().unwrap().insert("wf/1".into(), "sending");
        let ctx = json!({"item": {"name": "A", "email": "a@x.org"}});
        let c = compiled(d.path(), "");
        let e = deliver(&c, &AttachmentFiles::for_step(&c), &t, &rate, &ledger, input(&ctx, d.path())).await.unwrap_err();
        assert!(matches!(e, Failure::Fatal(ref m) if m.starts_with("uncertain: run 1 stopped while sending `wf/1`")), "{e:?}");
        assert_eq!(std::fs::read_dir(d.path().join("outbox")).unwrap().count(), 0, "nothing sent");
        let c = compiled(d.path(), "uncertain: resend\n");
        let o = deliver(&c, &AttachmentFiles::for_step(&c), &t, &rate, &ledger, input(&ctx, d.path())).await.unwrap();
        assert!(matches!(o, Outcome::Sent { .. }));
        assert_eq!(ledger.0.lock().unwrap()["wf/1"], "sent");
    }

    #[tokio::test]
    async fn sent_but_not_recorded_is_uncertain_and_stays_claimed() {
        let d = tempfile::tempdir().unwrap();
        let t = Transport::outbox(&d.path().join("outbox")).unwrap();
        let (rate, ledger) = (RateLimiter::new(None), MemLedger(Default::default(), true));
        let ctx = json!({"item": {"name": "A", "email": "a@x.org"}});
        let c = compiled(d.path(), "");
        let e = deliver(&c, &AttachmentFiles::for_step(&c), &t, &rate, &ledger, input(&ctx, d.path())).await.unwrap_err();
        let Failure::Fatal(m) = e else { panic!("{e:?}") };
        assert!(m.starts_with("uncertain: the mail server accepted it ("), "{m}");
        assert!(m.contains("the run log could not record it (the run log went away)"), "{m}");
        assert!(m.contains("`cxflow resolve RUN 1 --as sent|not-sent`"), "{m}");
        assert_eq!(ledger.0.lock().unwrap()["wf/1"], "sending", "the claim stays");
        assert_eq!(std::fs::read_dir(d.path().join("outbox")).unwrap().count(), 1);
    }
}
