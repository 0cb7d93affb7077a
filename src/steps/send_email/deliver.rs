//! The email's side of the exactly-once protocol, written against a small `Ledger` trait so the state
//! machine is testable without a database (the step implements it over the engine's `Delivery`).
//!
//!   render + read attachments + build (any error: Fatal, nothing claimed, nothing sent)
//!   claim key ── already sent ──────────────▶ skip
//!            ├─ uncertain + `skip` ─────────▶ skip, reported as uncertain
//!            └─ fresh / uncertain + `resend` ▶ send ─ accepted ─▶ mark_sent
//!                                                  ├ 4xx / not handed over ─▶ release, Retryable
//!                                                  ├ 5xx ─────────────────▶ release, Fatal
//!                                                  └ dropped after the data ▶ `skip`: keep "sending", Fatal
//!                                                                             `resend`: release, Retryable

use std::path::Path;

use serde_json::{json, Value};

use super::attachments::AttachmentFiles;
use super::compiled::Compiled;
use super::message::build_with;
use super::pool::SendError;
use super::rate::RateLimiter;
use super::spec::Uncertain;
use super::transport::{Delivered, Transport};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerClaim {
    Fresh,
    AlreadySent,
    /// A previous attempt claimed the key and never confirmed: it may or may not have been sent.
    Uncertain,
}

#[allow(async_fn_in_trait)]
pub trait Ledger {
    /// Must be durable (committed) before returning Fresh: the email is sent right after.
    async fn claim(&self, key: &str, item_key: &str) -> anyhow::Result<LedgerClaim>;
    /// Take over an uncertain key for a deliberate resend (`uncertain: resend`).
    async fn reclaim(&self, key: &str) -> anyhow::Result<()>;
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
    let r = c.render(input.ctx, input.default_from, input.default_key, input.base_dir).map_err(Failure::Fatal)?;
    let bytes = files.load(&r.attachments).await.map_err(|e| Failure::Fatal(e.to_string()))?;
    let msg = build_with(&r, &bytes).map_err(|e| Failure::Fatal(e.to_string()))?;
    let to = r.to.join(", ");
    if input.dry_run {
        return Ok(Outcome::DryRun { output: json!({"dry_run": true, "key": r.key, "to": to, "subject": r.subject}) });
    }
    let db = |e: anyhow::Error| Failure::Retryable(format!("run log: {e:#}"));
    match ledger.claim(&r.key, input.item_key).await.map_err(db)? {
        LedgerClaim::AlreadySent => return Ok(Outcome::Skipped { output: json!({"skipped": "already sent", "key": r.key}), key: r.key }),
        LedgerClaim::Uncertain if c.uncertain == Uncertain::Skip => {
            return Ok(Outcome::Skipped {
                output: json!({"skipped": "uncertain", "key": r.key,
                    "reason": "an earlier attempt stopped while sending; it may have been delivered (set `uncertain: resend` to send anyway)"}),
                key: r.key,
            })
        }
        LedgerClaim::Uncertain => ledger.reclaim(&r.key).await.map_err(db)?,
        LedgerClaim::Fresh => {}
    }
    match transport.send(&msg, rate).await {
        Ok(delivered) => {
            let detail = match &delivered {
                Delivered::Smtp(resp) => resp.clone(),
                Delivered::File(p) => p.display().to_string(),
            };
            ledger
                .mark_sent(&r.key, &detail)
                .await
                .map_err(|e| Failure::Fatal(format!("sent, but could not record it ({e:#}); the key stays uncertain")))?;
            let mut output = json!({"sent": true, "key": r.key, "to": to, "subject": r.subject});
            match &delivered {
                Delivered::Smtp(resp) => output["server"] = json!(resp),
                Delivered::File(p) => output["file"] = json!(p),
            }
            Ok(Outcome::Sent { key: r.key, delivered, output })
        }
        Err(e) => {
            let keep_uncertain = matches!(e, SendError::Uncertain(_)) && c.uncertain == Uncertain::Skip;
            if !keep_uncertain {
                ledger.release(&r.key).await.map_err(db)?;
            }
            Err(match e {
                SendError::Transient(m) => Failure::Retryable(m),
                SendError::Permanent(m) => Failure::Fatal(m),
                SendError::Uncertain(m) if keep_uncertain => Failure::Fatal(format!("{m}; key `{}` left uncertain, not resent", r.key)),
                SendError::Uncertain(m) => Failure::Retryable(m),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[derive(Default)]
    struct MemLedger(Mutex<HashMap<String, &'static str>>);

    impl Ledger for MemLedger {
        async fn claim(&self, key: &str, _: &str) -> anyhow::Result<LedgerClaim> {
            let mut m = self.0.lock().unwrap();
            Ok(match m.get(key) {
                Some(&"sent") => LedgerClaim::AlreadySent,
                Some(_) => LedgerClaim::Uncertain,
                None => {
                    m.insert(key.into(), "sending");
                    LedgerClaim::Fresh
                }
            })
        }
        async fn reclaim(&self, _: &str) -> anyhow::Result<()> {
            Ok(())
        }
        async fn mark_sent(&self, key: &str, _: &str) -> anyhow::Result<()> {
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
        let spec = serde_yaml::from_str(&y).unwrap();
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
        let o = deliver(&c, &AttachmentFiles::for_step(&c), &t, &rate, &ledger, input(&ctx, d.path())).await.unwrap();
        assert!(matches!(o, Outcome::Skipped { ref output, .. } if output["skipped"] == "uncertain"));
        let c = compiled(d.path(), "uncertain: resend\n");
        let o = deliver(&c, &AttachmentFiles::for_step(&c), &t, &rate, &ledger, input(&ctx, d.path())).await.unwrap();
        assert!(matches!(o, Outcome::Sent { .. }));
        assert_eq!(ledger.0.lock().unwrap()["wf/1"], "sent");
    }
}
