//! `send_email` step: Handlebars templates → lettre message → SMTP (our own nodelay pool) or
//! `.eml` files in the outbox, delivered exactly once through the store's idempotency ledger.
//! See docs/email.md for the guarantee in plain words.

pub mod attachments;
pub mod compiled;
pub mod deliver;
pub mod message;
pub mod pool;
pub mod rate;
mod session;
// Moved to the settings, which parse `smtp_url` when a project opens; kept at this path for callers.
pub use crate::config::smtp_url;
pub mod templates;
pub mod transport;

use std::sync::Arc;

use anyhow::Context as _;
use async_trait::async_trait;

use self::attachments::AttachmentFiles;
use self::compiled::Compiled;
use self::deliver::{deliver, Failure, ItemInput, Ledger, LedgerClaim, Outcome};
use self::pool::SmtpPool;
use self::rate::RateLimiter;
use self::transport::{Delivered, Transport};
use super::{Artifact, Failed, ItemCx, ItemOutput, StepCx, StepError};
use crate::engine::{Claim, Delivery, ItemRunner, ItemStep};
use crate::plan::templates::Reads;
use crate::plan::PlanCx;
pub use crate::spec::kinds::send_email as spec;
pub use crate::spec::kinds::send_email::SendEmailSpec;

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
pub(crate) fn plan(raw: &crate::spec::Node, path: &str, cx: &mut PlanCx) -> Option<Box<dyn ItemStep>> {
    let spec: SendEmailSpec = cx.spec(raw, path)?;
    let spec = &spec;
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
    if let Some(k) = &spec.idempotency_key {
        // The ledger stores the key as it renders.
        cx.forbid_secrets(&at("send_email.idempotency_key"), k, "an idempotency key");
    }
    let dir = cx.templates_dir();
    for ext in ["html", "txt"] {
        if let Ok(src) = std::fs::read_to_string(dir.join(format!("{}.{ext}.hbs", spec.template))) {
            cx.check_refs(&at("send_email.template"), &src, crate::plan::helpers::NAMES);
        }
    }
    let mut errs = vec![];
    // `path` is the kind's own path (`steps[1].send_email`) and the template names already start
    // with `send_email.`: the step's path alone, or a render error names `send_email.send_email.`.
    let step_path = path.strip_suffix(".send_email").unwrap_or(path);
    let compiled = Compiled::compile_at(spec, &dir, step_path, |p, m| errs.push((at(p), m)));
    for (p, m) in errs {
        let help =
            p.ends_with(".template").then(|| format!("templates live in `{}`: `<name>.html.hbs` and/or `<name>.txt.hbs`", dir.display()));
        cx.error(&p, m, help);
    }
    let mut compiled = compiled?;
    compiled.address_lists = cx.address_lists().to_vec();
    Some(Box::new(Planned { compiled: Arc::new(compiled) }))
}

fn idx(base: &str, i: usize, len: usize) -> String {
    if len > 1 {
        format!("{base}[{i}]")
    } else {
        base.to_string()
    }
}

struct Runner {
    compiled: Arc<Compiled>,
    files: AttachmentFiles,
    transport: Transport,
    rate: RateLimiter,
    default_from: String,
}

#[async_trait]
impl ItemStep for Planned {
    fn own_reads(&self) -> Reads {
        self.compiled.reads()
    }

    async fn open(&self, cx: &StepCx<'_>) -> anyhow::Result<Box<dyn ItemRunner>> {
        Ok(Box::new(open(self, cx).await?))
    }
}

/// Picks the transport (SMTP from `smtp_url` / CXFLOW_SMTP_URL, else the outbox folder) and, for
/// SMTP, opens one connection now so a wrong host or password stops the run before any item.
async fn open(p: &Planned, cx: &StepCx<'_>) -> anyhow::Result<Runner> {
    let run = cx.run;
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
        files: AttachmentFiles::for_step(&p.compiled),
        compiled: p.compiled.clone(),
        transport,
        default_from: cfg.smtp_from.to_string(),
    })
}

#[async_trait]
impl ItemRunner for Runner {
    async fn run_item(&self, env: &ItemCx<'_>) -> Result<ItemOutput, Failed> {
        let run = env.run;
        let ledger = env.delivery();
        let default_key = format!("{}/{}", run.workflow, env.key);
        let input = ItemInput {
            ctx: env.ctx,
            item_key: env.key,
            default_from: Some(&self.default_from),
            default_key: &default_key,
            base_dir: &run.project,
            dry_run: run.dry_run,
        };
        match deliver(&self.compiled, &self.files, &self.transport, &self.rate, &ledger, input).await {
            Ok(Outcome::Sent { delivered, output, .. }) => {
                let mut out = ItemOutput::new(run.secrets.redact_value(&output));
                if let Delivered::File(path) = delivered {
                    out.artifacts.push(Artifact::new("eml", path));
                }
                Ok(out)
            }
            Ok(Outcome::Skipped { output, .. }) => Ok(ItemOutput::skipped(run.secrets.redact_value(&output))),
            Ok(Outcome::DryRun { output }) => Ok(ItemOutput::new(run.secrets.redact_value(&output))),
            Err(Failure::Retryable(m)) => Err(StepError::Retryable(run.secrets.redact(&m)).into()),
            Err(Failure::Fatal(m)) => Err(StepError::Fatal(run.secrets.redact(&m)).into()),
        }
    }

    async fn close(self: Box<Self>) {
        self.transport.close().await;
    }
}

/// The email's state machine (deliver.rs) over the engine's delivery capability.
#[async_trait]
impl Ledger for Delivery<'_> {
    async fn check(&self, key: &str) -> anyhow::Result<LedgerClaim> {
        Ok(ledger_claim(Delivery::check(self, key).await?))
    }
    async fn claim(&self, key: &str, _item_key: &str) -> anyhow::Result<LedgerClaim> {
        Ok(ledger_claim(Delivery::claim(self, key).await?))
    }
    async fn reclaim(&self, key: &str) -> anyhow::Result<bool> {
        Delivery::reclaim(self, key).await
    }
    async fn mark_sent(&self, key: &str, detail: &str) -> anyhow::Result<()> {
        self.confirm(key, Some(detail)).await
    }
    async fn release(&self, key: &str) -> anyhow::Result<()> {
        Delivery::release(self, key).await
    }
}

fn ledger_claim(c: Claim) -> LedgerClaim {
    match c {
        Claim::Fresh => LedgerClaim::Fresh,
        Claim::AlreadySent { run_id } => LedgerClaim::AlreadySent { run_id },
        Claim::Uncertain { run_id } => LedgerClaim::Uncertain { run_id },
        Claim::InFlight { run_id } => LedgerClaim::InFlight { run_id },
    }
}
