//! `send_email` step: Handlebars templates → lettre message → SMTP (our own nodelay pool) or
//! `.eml` files in the outbox, delivered exactly once through the store's idempotency ledger.
//! See docs/email.md for the guarantee in plain words.

pub mod compiled;
pub mod deliver;
pub mod message;
pub mod pool;
pub mod rate;
// Moved to the settings, which parse `smtp_url` when a project opens; kept at this path for callers.
pub use crate::config::smtp_url;
pub mod spec;
pub mod templates;
pub mod transport;

use std::sync::Arc;

use anyhow::Context as _;

pub use self::spec::SendEmailSpec;
use self::compiled::Compiled;
use self::deliver::{deliver, Failure, ItemInput, Ledger, LedgerClaim, Outcome};
use self::pool::SmtpPool;
use self::rate::RateLimiter;
use self::transport::{Delivered, Transport};
use super::{Artifact, ItemEnv, ItemOutput, RunEnv, StepError};
use crate::plan::PlanCx;
use crate::store::{Claim, Store};

pub struct Planned {
    compiled: Arc<Compiled>,
}

impl std::fmt::Debug for Planned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "send_email(template {})", self.compiled.template_name)
    }
}

/// Compiles every template of the step and checks the variables they use; all problems are
/// reported at their own YAML position.
pub fn plan(spec: &SendEmailSpec, path: &str, cx: &mut PlanCx) -> Option<Planned> {
    let at = |rel: &str| format!("{path}{}", rel.strip_prefix("send_email").unwrap_or(rel));
    let mut inline: Vec<(String, &str)> = vec![];
    for (i, s) in spec.to.as_slice().iter().enumerate() {
        inline.push((at(&idx("send_email.to", i, spec.to.as_slice().len())), s));
    }
    for (field, v) in [("cc", &spec.cc), ("bcc", &spec.bcc)] {
        if let Some(v) = v {
            for (i, s) in v.as_slice().iter().enumerate() {
                inline.push((at(&idx(&format!("send_email.{field}"), i, v.as_slice().len())), s));
            }
        }
    }
    for (field, v) in [("reply_to", &spec.reply_to), ("from", &spec.from), ("idempotency_key", &spec.idempotency_key)] {
        if let Some(s) = v {
            inline.push((at(&format!("send_email.{field}")), s));
        }
    }
    inline.push((at("send_email.subject"), &spec.subject));
    for (i, s) in spec.attachments.iter().enumerate() {
        inline.push((at(&format!("send_email.attachments[{i}]")), s));
    }
    for (k, v) in &spec.headers {
        inline.push((at(&format!("send_email.headers.{k}")), v));
    }
    for (p, src) in &inline {
        cx.check_refs(p, src, crate::plan::helpers::NAMES);
    }
    let dir = cx.templates_dir();
    for ext in ["html", "txt"] {
        if let Ok(src) = std::fs::read_to_string(dir.join(format!("{}.{ext}.hbs", spec.template))) {
            cx.check_refs(&at("send_email.template"), &src, crate::plan::helpers::NAMES);
        }
    }
    let mut errs = vec![];
    let compiled = Compiled::compile(spec, &dir, |p, m| errs.push((at(p), m)));
    for (p, m) in errs {
        let help = p.ends_with(".template").then(|| {
            format!("templates live in `{}`: `<name>.html.hbs` and/or `<name>.txt.hbs`", dir.display())
        });
        cx.error(&p, m, help);
    }
    Some(Planned { compiled: Arc::new(compiled?) })
}

fn idx(base: &str, i: usize, len: usize) -> String {
    if len > 1 { format!("{base}[{i}]") } else { base.to_string() }
}

pub struct Runner {
    compiled: Arc<Compiled>,
    transport: Transport,
    rate: RateLimiter,
    default_from: String,
}

/// Picks the transport (SMTP from `smtp_url` / CXFLOW_SMTP_URL, else the outbox folder) and, for
/// SMTP, opens one connection now so a wrong host or password stops the run before any item.
pub async fn open(p: &Planned, run: &RunEnv) -> anyhow::Result<Runner> {
    let cfg = &run.config;
    let transport = match &cfg.smtp_url {
        Some(settings) => {
            let mut settings = settings.clone();
            let env = |name: &String| {
                std::env::var(name).with_context(|| format!("secret `{name}` (named by smtp_*_secret) is not set in the environment"))
            };
            if let Some(n) = &cfg.smtp_user_secret {
                settings.user = Some(env(n)?);
            }
            if let Some(n) = &cfg.smtp_password_secret {
                settings.password = Some(env(n)?);
            }
            Transport::Smtp(SmtpPool::new(settings, cfg.smtp_pool_size))
        }
        None => {
            let dir = cfg.path(&run.project, &cfg.outbox_dir);
            Transport::outbox(&dir).with_context(|| format!("cannot create the outbox folder `{}`", dir.display()))?
        }
    };
    if !run.dry_run {
        transport
            .check()
            .await
            .map_err(|e| anyhow::anyhow!("send_email: {}: {}", transport.describe(), run.secrets.redact(&e.to_string())))?;
    }
    Ok(Runner {
        rate: RateLimiter::new(p.compiled.rate_limit.or(cfg.smtp_rate_limit)),
        compiled: p.compiled.clone(),
        transport,
        default_from: cfg.smtp_from.to_string(),
    })
}

impl Runner {
    pub async fn run_item(&self, env: &ItemEnv<'_>) -> Result<ItemOutput, StepError> {
        let run = env.run;
        let ledger = StoreLedger { store: &run.store, workflow: &run.workflow, run_id: run.run_id, step_id: env.step_id, item_key: env.key };
        let default_key = format!("{}/{}", run.workflow, env.key);
        let input = ItemInput {
            ctx: env.ctx,
            item_key: env.key,
            default_from: Some(&self.default_from),
            default_key: &default_key,
            base_dir: &run.project,
            dry_run: run.dry_run,
        };
        match deliver(&self.compiled, &self.transport, &self.rate, &ledger, input).await {
            Ok(Outcome::Sent { delivered, output, .. }) => {
                let mut out = ItemOutput::new(run.secrets.redact_value(&output));
                if let Delivered::File(path) = delivered {
                    out.artifacts.push(Artifact { kind: "eml".into(), path });
                }
                Ok(out)
            }
            Ok(Outcome::Skipped { output, .. }) => Ok(ItemOutput::skipped(run.secrets.redact_value(&output))),
            Ok(Outcome::DryRun { output }) => {
                Ok(ItemOutput::new(run.secrets.redact_value(&output)))
            }
            Err(Failure::Retryable(m)) => Err(StepError::Retryable(run.secrets.redact(&m))),
            Err(Failure::Fatal(m)) => Err(StepError::Fatal(run.secrets.redact(&m))),
        }
    }

    pub async fn close(self) {
        self.transport.close().await;
    }
}

struct StoreLedger<'a> {
    store: &'a Store,
    workflow: &'a str,
    run_id: i64,
    step_id: &'a str,
    item_key: &'a str,
}

impl Ledger for StoreLedger<'_> {
    async fn claim(&self, key: &str, _item_key: &str) -> anyhow::Result<LedgerClaim> {
        Ok(match self.store.claim_key(key, self.workflow, self.run_id, self.step_id, self.item_key).await? {
            Claim::Fresh => LedgerClaim::Fresh,
            Claim::AlreadySent { .. } => LedgerClaim::AlreadySent,
            Claim::Uncertain { .. } => LedgerClaim::Uncertain,
        })
    }
    async fn reclaim(&self, key: &str) -> anyhow::Result<()> {
        Ok(self.store.reclaim_key(key, self.run_id).await?)
    }
    async fn mark_sent(&self, key: &str, detail: &str) -> anyhow::Result<()> {
        Ok(self.store.mark_sent(key, Some(detail)).await?)
    }
    async fn release(&self, key: &str) -> anyhow::Result<()> {
        Ok(self.store.release_key(key).await?)
    }
}

