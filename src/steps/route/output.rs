//! Turns each team's bucket into the step's output record (what `for_each` iterates over),
//! renders its digest files and posts its webhook; each delivery is recorded as an artifact.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::{json, Map, Value};

use super::bucket::{num, round1, round2, Bucket, Limits};
use super::chart::bar_chart;
use super::compile::CompiledTeam;
use super::digest::{slug, strip_controls_map};
use super::plan::Planned;
use super::rules::ChartKind;
use super::webhook;
use crate::engine::log::PreviousDigest;
use crate::engine::{Artifact, BatchCx, Claim};
use crate::steps::RunEnv;

pub(super) struct TeamRecord {
    pub name: String,
    pub webhook: Option<String>,
    pub follow_redirects: bool,
    pub json: Map<String, Value>,
}

impl TeamRecord {
    pub(super) fn new(team: &CompiledTeam, b: &Bucket, lim: &Limits, previous: Option<PreviousDigest>, chart: ChartKind) -> Self {
        let mut m = Map::new();
        m.insert(
            "team".into(),
            json!({
                "name": team.name,
                // Joined, so `to: "{{item.team.email}}"` addresses every recipient.
                "email": team.emails.join(", "),
                "emails": team.emails,
                "priority": team.priority,
                "has_webhook": team.webhook.is_some(),
            }),
        );
        m.extend(b.stats_json(lim));
        let diff = |now: Option<f64>, before: Option<f64>, round: fn(f64) -> f64| match (now, before) {
            (Some(a), Some(b)) => num(round(a - b)),
            _ => Value::Null,
        };
        let (prev, change) = match &previous {
            Some(p) => (
                json!({"run_id": p.run_id, "count": p.count, "avg_rating": p.avg_rating.map(|x| num(round2(x))), "csat": p.csat.map(|x| num(round1(x))), "at": p.created_at}),
                json!({
                    "count": b.count as i64 - p.count as i64,
                    "avg_rating": diff(b.avg_rating(), p.avg_rating, round2),
                    "csat": diff(b.csat(), p.csat, round1),
                }),
            ),
            None => (Value::Null, json!({"count": null, "avg_rating": null, "csat": null})),
        };
        m.insert("previous".into(), prev);
        m.insert("change".into(), change);
        let svg = match chart {
            ChartKind::Channel => {
                let (mut bars, rest) = b.by_channel.top(usize::MAX);
                if rest > 0 {
                    bars.push(("other".into(), rest));
                }
                bar_chart("Feedback by channel", &bars)
            }
            ChartKind::Rating => {
                let bars: Vec<(String, u64)> = (1..=5).map(|r| (format!("{r} ★"), b.by_rating[r])).collect();
                bar_chart("Feedback by rating", &bars)
            }
        };
        m.insert("chart_svg".into(), Value::String(svg));
        strip_controls_map(&mut m);
        TeamRecord { name: team.name.clone(), webhook: team.webhook.clone(), follow_redirects: team.follow_redirects, json: m }
    }
}

/// Renders and writes each team's digest, posts webhooks, records artifacts; returns the
/// output records.
pub(super) async fn deliver(
    p: &Planned,
    cx: &BatchCx<'_>,
    teams: Vec<TeamRecord>,
    run_ctx: &Value,
) -> anyhow::Result<(Vec<Value>, Vec<Artifact>)> {
    let env = cx.run;
    let mut artifacts = Vec::new();
    let dir = p.out_dir.clone().unwrap_or_else(|| env.artifacts_dir.join(&p.step_id));
    tokio::fs::create_dir_all(&dir).await.with_context(|| format!("cannot create the digest folder `{}`", dir.display()))?;
    // A redirect would re-POST the bucket to wherever it points (307/308 keep the body): only
    // for teams whose rule file asks for it.
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let following = reqwest::Client::builder().redirect(reqwest::redirect::Policy::limited(5)).build()?;
    let mut used = std::collections::HashSet::new();
    let mut out = Vec::new();
    for mut t in teams {
        let mut name = slug(&t.name);
        // Two team names may slug alike ("R&D", "R-D"); files must not overwrite each other.
        let base = name.clone();
        let mut n = 2;
        while !used.insert(name.clone()) {
            name = format!("{base}-{n}");
            n += 1;
        }
        let ctx = json!({"item": Value::Object(t.json.clone()), "run": run_ctx});
        let r = p.templates.render(&ctx).map_err(|e| anyhow::anyhow!("cannot render the digest of team `{}`: {e}", t.name))?;
        let html = dir.join(format!("{name}.html"));
        let md = dir.join(format!("{name}.md"));
        write(&html, &r.html).await?;
        write(&md, &r.markdown).await?;
        if !env.dry_run {
            for path in [&html, &md] {
                artifacts.push(Artifact::new("digest", path.clone()).for_item(&t.name));
            }
        }
        t.json.insert("files".into(), json!({"html": html.display().to_string(), "md": md.display().to_string()}));
        t.json.insert("html".into(), Value::String(r.html));
        t.json.insert("text".into(), Value::String(r.text));
        let hook = match (&t.webhook, p.digest.webhooks, env.dry_run) {
            (Some(url), true, false) => {
                let file = dir.join(format!("{name}.webhook.json"));
                let client = if t.follow_redirects { &following } else { &client };
                let (hook, posted) = post_webhook(p, cx, client, &t, url, &file).await?;
                if posted {
                    artifacts.push(Artifact::new("webhook", file).for_item(&t.name));
                }
                hook
            }
            (Some(_), true, true) => json!({"status": "dry_run"}),
            _ => Value::Null,
        };
        t.json.insert("webhook".into(), hook);
        out.push(Value::Object(t.json));
    }
    Ok((out, artifacts))
}

async fn write(path: &PathBuf, text: &str) -> anyhow::Result<()> {
    tokio::fs::write(path, text).await.with_context(|| format!("cannot write `{}`", path.display()))
}

/// One POST per team and run, guarded by the exactly-once ledger so a resumed run does not post
/// the same digest twice. A failed POST is reported in the output, not fatal: email and files
/// still go out.
/// Returns the webhook's output, and whether the payload file was written (an artifact).
async fn post_webhook(
    p: &Planned,
    cx: &BatchCx<'_>,
    client: &reqwest::Client,
    t: &TeamRecord,
    url: &str,
    file: &PathBuf,
) -> anyhow::Result<(Value, bool)> {
    let env = cx.run;
    let url = match resolve_secret(url, env) {
        Some(u) => u,
        None => return Ok((json!({"status": "failed", "error": format!("the webhook `{url}` names a secret that is not set")}), false)),
    };
    let key = format!("route-webhook:{}:{}:{}:{}", env.workflow, p.step_id, env.run_id, t.name);
    let delivery = cx.delivery(&t.name);
    match delivery.claim(&key).await? {
        Claim::Fresh => {}
        Claim::AlreadySent { run_id } => return Ok((json!({"status": "already_sent", "run_id": run_id}), false)),
        Claim::Uncertain { run_id } => {
            let out = json!({"status": "uncertain", "run_id": run_id, "error": "an earlier attempt was cut off; not posting again"});
            return Ok((out, false));
        }
        Claim::InFlight { run_id } => {
            let out = json!({"status": "in_flight", "run_id": run_id, "error": format!("run {run_id} is posting it right now")});
            return Ok((out, false));
        }
    }
    let body = webhook::payload(&Value::Object(t.json.clone()));
    write(file, &serde_json::to_string_pretty(&body)?).await?;
    let out = match webhook::post(client, &url, &body).await {
        Ok(status) => {
            delivery.confirm(&key, Some(&format!("HTTP {status}"))).await?;
            json!({"status": "sent", "http_status": status})
        }
        Err((not_delivered, msg)) => {
            if not_delivered {
                delivery.release(&key).await?;
            } else {
                delivery.uncertain(&key).await?;
            }
            let msg = env.secrets.redact(&msg);
            tracing::warn!(step = %p.step_id, team = %t.name, "webhook failed: {msg}");
            json!({"status": "failed", "error": msg})
        }
    };
    Ok((out, true))
}

/// `{{secrets.NAME}}` as a whole webhook value reads that secret, so tokens in webhook URLs
/// can stay out of rule files.
fn resolve_secret(url: &str, env: &RunEnv) -> Option<String> {
    let inner = url.trim().strip_prefix("{{").and_then(|s| s.strip_suffix("}}"));
    match inner.map(str::trim).and_then(|s| s.strip_prefix("secrets.")) {
        Some(name) => env.secrets.as_value().get(name).and_then(Value::as_str).map(str::to_string),
        None => Some(url.to_string()),
    }
}
