//! A send_email spec with every template compiled once, and the per-item rendering into a
//! `Rendered` email. Independent of the engine so it can be unit-tested and benchmarked alone.

use std::path::{Path, PathBuf};

use handlebars::Context;
use serde_json::Value;

use super::message::Rendered;
use super::spec::{SendEmailSpec, Uncertain};
use super::templates::{Body, EmailTemplates};
use crate::plan::paths::PathRule;
use crate::plan::templates::{Output, Reads, TemplateRef};

pub struct Compiled {
    templates: EmailTemplates,
    body: Body,
    to: Vec<TemplateRef>,
    cc: Vec<TemplateRef>,
    bcc: Vec<TemplateRef>,
    reply_to: Option<TemplateRef>,
    from: Option<TemplateRef>,
    subject: TemplateRef,
    key: Option<TemplateRef>,
    attachments: Vec<TemplateRef>,
    /// Per `to`, `cc`, `bcc` entry: written without `{{`, so it may list several addresses.
    literal_to: Vec<bool>,
    literal_cc: Vec<bool>,
    literal_bcc: Vec<bool>,
    /// Address lists the workflow writes elsewhere (a routing team's), joined with `, `: a
    /// rendered field may hold several addresses only when it is exactly one of these.
    pub address_lists: Vec<String>,
    /// Per attachment: where its rendered path may point.
    attachment_rules: Vec<PathRule>,
    /// Per attachment: its path has no `{{`, so it is the same file for every item.
    literal_attachments: Vec<bool>,
    headers: Vec<(String, TemplateRef)>,
    pub uncertain: Uncertain,
    pub rate_limit: Option<f64>,
    pub template_name: String,
}

impl Compiled {
    /// The earlier steps its templates (headers, body, partials) read.
    pub fn reads(&self) -> Reads {
        self.templates.reads()
    }

    /// `compile_at` for a step at no particular place: templates are named `send_email.subject`.
    pub fn compile(spec: &SendEmailSpec, templates_dir: &Path, err: impl FnMut(&str, String)) -> Option<Compiled> {
        Self::compile_at(spec, templates_dir, "", err)
    }

    /// Compiles everything; each problem is reported through `err(field_path, message)` with a
    /// path relative to the step (`send_email.subject`, `send_email.to[1]`) and all are reported,
    /// not just the first. Returns None if anything failed. `step_path` (`steps[2]`) prefixes
    /// the names the inline templates are registered under, so a render error names the YAML
    /// path of the template.
    pub fn compile_at(spec: &SendEmailSpec, templates_dir: &Path, step_path: &str, mut err: impl FnMut(&str, String)) -> Option<Compiled> {
        let mut t = EmailTemplates::new();
        let mut ok = true;
        if spec.to.as_slice().is_empty() {
            err("send_email.to", "`to` is an empty list; give at least one recipient".into());
            ok = false;
        }
        if let Err(e) = t.load_partials(templates_dir) {
            err("send_email.template", e.to_string());
            ok = false;
        }
        let body = match t.load_body(templates_dir, &spec.template) {
            Ok(b) => Some(b),
            Err(e) => {
                err("send_email.template", e.to_string());
                None
            }
        };
        let prefix = if step_path.is_empty() { String::new() } else { format!("{step_path}.") };
        let mut inline = |path: String, src: &str, output: Output, ok: &mut bool| -> TemplateRef {
            match t.add(&format!("{prefix}{path}"), src, output) {
                Ok(r) => r,
                Err(e) => {
                    err(&path, format!("bad template `{src}`: {e}"));
                    *ok = false;
                    TemplateRef(path, output)
                }
            }
        };
        let list = |name: &str, v: Option<&super::spec::OneOrMany>, inline: &mut dyn FnMut(String, &str) -> TemplateRef| {
            let items = v.map(|v| v.as_slice()).unwrap_or(&[]);
            let many = items.len() > 1 || matches!(v, Some(super::spec::OneOrMany::Many(_)));
            items
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let p = if many { format!("send_email.{name}[{i}]") } else { format!("send_email.{name}") };
                    inline(p, s)
                })
                .collect::<Vec<_>>()
        };
        let mut ok2 = true;
        // Everything that becomes a header refuses a line break; the key and paths are text.
        let mut h = |p: String, s: &str| inline(p, s, Output::Header, &mut ok2);
        let to = list("to", Some(&spec.to), &mut h);
        let cc = list("cc", spec.cc.as_ref(), &mut h);
        let bcc = list("bcc", spec.bcc.as_ref(), &mut h);
        let reply_to = spec.reply_to.as_deref().map(|s| h("send_email.reply_to".into(), s));
        let from = spec.from.as_deref().map(|s| h("send_email.from".into(), s));
        let subject = h("send_email.subject".into(), &spec.subject);
        let headers = spec.headers.iter().map(|(k, v)| (k.clone(), h(format!("send_email.headers.{k}"), v))).collect();
        let mut f = |p: String, s: &str| inline(p, s, Output::Text, &mut ok2);
        let key = spec.idempotency_key.as_deref().map(|s| f("send_email.idempotency_key".into(), s));
        let attachments = spec.attachments.iter().enumerate().map(|(i, s)| f(format!("send_email.attachments[{i}]"), s)).collect();
        let literal = |v: Option<&super::spec::OneOrMany>| v.map_or(vec![], |v| v.as_slice().iter().map(|s| !s.contains("{{")).collect());
        let (literal_to, literal_cc, literal_bcc) = (literal(Some(&spec.to)), literal(spec.cc.as_ref()), literal(spec.bcc.as_ref()));
        let literal_attachments = spec.attachments.iter().map(|s| !s.contains("{{")).collect();
        let attachment_rules = spec.attachments.iter().map(|s| PathRule::of(s)).collect();
        let rate_problem = spec.rate_limit.and_then(crate::config::limits::rate_problem);
        if let Some(m) = &rate_problem {
            err("send_email.rate_limit", format!("`rate_limit` {m}"));
        }
        if !ok || !ok2 || rate_problem.is_some() {
            return None;
        }
        Some(Compiled {
            templates: t,
            body: body?,
            to,
            cc,
            bcc,
            literal_to,
            literal_cc,
            literal_bcc,
            address_lists: Vec::new(),
            reply_to,
            from,
            subject,
            key,
            attachments,
            attachment_rules,
            literal_attachments,
            headers,
            uncertain: spec.uncertain,
            rate_limit: spec.rate_limit,
            template_name: spec.template.clone(),
        })
    }

    pub fn has_from(&self) -> bool {
        self.from.is_some()
    }

    /// Per attachment, in order: true when its path is literal (the same file for every item).
    pub fn literal_attachments(&self) -> &[bool] {
        &self.literal_attachments
    }

    /// Renders one item. `default_key` is `<workflow>/<item key>`, used without
    /// `idempotency_key`; relative attachment paths resolve against `base_dir`, and a rendered
    /// one that leaves it is refused naming `item_key`.
    pub fn render(
        &self,
        ctx: &Value,
        default_from: Option<&str>,
        default_key: &str,
        base_dir: &Path,
        item_key: &str,
    ) -> Result<Rendered, String> {
        // One context for every template of the item: handlebars would copy `ctx` for each.
        let c = Context::from(ctx.clone());
        let one = |t: &TemplateRef| self.templates.render(t, &c);
        let from = match (&self.from, default_from) {
            (Some(t), _) => one(t)?,
            (None, Some(f)) => f.to_string(),
            (None, None) => return Err("no sender: set `from` in the step or `smtp_from` in cxflow.yaml".into()),
        };
        let key = match &self.key {
            Some(t) => one(t)?,
            None => default_key.to_string(),
        };
        if key.trim().is_empty() {
            return Err("`idempotency_key` rendered empty; it must identify the email".into());
        }
        let attachments = self
            .attachments
            .iter()
            .zip(&self.attachment_rules)
            .enumerate()
            .map(|(i, (t, rule))| {
                rule.apply(base_dir, &one(t)?).map_err(|e| format!("item `{item_key}`: refusing `send_email.attachments[{i}]`: {e}"))
            })
            .collect::<Result<Vec<PathBuf>, String>>()?;
        // A record's `ann@x.org, evil@y.test` would add a recipient: only a list the workflow wrote
        // may hold several addresses. (`message::mailboxes` splits what passes here.)
        let addresses = |field: &str, ts: &[TemplateRef], literal: &[bool]| {
            ts.iter()
                .zip(literal)
                .map(|(t, &lit)| {
                    let v = one(t)?;
                    let listed = lit || self.address_lists.iter().any(|l| l == v.trim());
                    if !listed && !v.contains('<') && v.contains(',') {
                        return Err(format!(
                            "item `{item_key}`: `{field}` rendered `{v}`, more than one address; an address rendered from a template must \
                             be exactly one mailbox: to send to several, list them in the workflow (`{field}: [a@example.org, \"{{{{item.email}}}}\"]`)"
                        ));
                    }
                    Ok(v)
                })
                .collect::<Result<Vec<_>, String>>()
        };
        Ok(Rendered {
            from,
            to: addresses("to", &self.to, &self.literal_to)?,
            cc: addresses("cc", &self.cc, &self.literal_cc)?,
            bcc: addresses("bcc", &self.bcc, &self.literal_bcc)?,
            reply_to: self.reply_to.as_ref().map(one).transpose()?,
            subject: one(&self.subject)?,
            headers: self.headers.iter().map(|(k, t)| Ok((k.clone(), one(t)?))).collect::<Result<_, String>>()?,
            html: self.body.html.as_ref().map(|id| self.templates.render_html(id, &c)).transpose()?,
            text: self.body.text.as_ref().map(|id| self.templates.render_text(id, &c)).transpose()?,
            attachments,
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compiles_and_renders_issue_example() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("follow_up.html.hbs"), "<p>Hi {{item.name}}</p>").unwrap();
        std::fs::write(d.path().join("follow_up.txt.hbs"), "Hi {{item.name}}").unwrap();
        let spec: SendEmailSpec = serde_saphyr::from_str(
            r#"
to: "{{item.name}} <{{item.email}}>"
subject: "How did we do on ticket {{item.ticket_id}}?"
template: follow_up
idempotency_key: "follow-up/{{item.ticket_id}}"
headers: {X-Ticket: "{{item.ticket_id}}"}
"#,
        )
        .unwrap();
        let c = Compiled::compile(&spec, d.path(), |p, m| panic!("{p}: {m}")).unwrap();
        let ctx = json!({"item": {"name": "Ann & Bo", "email": "a@x.org", "ticket_id": 7}});
        let r = c.render(&ctx, Some("s@x.org"), "wf/7", d.path(), "7").unwrap();
        assert_eq!(r.to, ["Ann & Bo <a@x.org>"]);
        assert_eq!(r.subject, "How did we do on ticket 7?");
        assert_eq!(r.key, "follow-up/7");
        assert_eq!(r.html.as_deref(), Some("<p>Hi Ann &amp; Bo</p>"));
        assert_eq!(r.headers, [("X-Ticket".to_string(), "7".to_string())]);
        let e = c.render(&json!({"item": {"name": "A", "ticket_id": 1}}), Some("s@x.org"), "k", d.path(), "1").unwrap_err();
        assert!(e.contains("`item.email`"), "{e}");
    }

    /// What an email's templates read decides what each item's context holds of earlier steps.
    #[test]
    fn reads_the_steps_its_headers_and_body_name() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.txt.hbs"), "Report: {{steps.report.output.path}}").unwrap();
        std::fs::write(d.path().join("b.txt.hbs"), "{{> footer}}").unwrap();
        std::fs::create_dir(d.path().join("partials")).unwrap();
        std::fs::write(d.path().join("partials/footer.hbs"), "{{steps.other.output.count}}").unwrap();
        let spec = |template: &str| -> SendEmailSpec {
            serde_saphyr::from_str(&format!(
                "to: \"{{{{item.email}}}}\"\nsubject: \"{{{{steps.fetch.output.count}}}} new\"\ntemplate: {template}\n"
            ))
            .unwrap()
        };
        let c = Compiled::compile(&spec("a"), d.path(), |p, m| panic!("{p}: {m}")).unwrap();
        assert_eq!(c.reads(), Reads::Steps(["fetch".to_string(), "report".to_string()].into()));
        // A partial's text is not looked into: a body using one may read any step.
        let c = Compiled::compile(&spec("b"), d.path(), |p, m| panic!("{p}: {m}")).unwrap();
        assert_eq!(c.reads(), Reads::All);
    }

    #[test]
    fn reports_every_problem_with_its_path() {
        let d = tempfile::tempdir().unwrap();
        let spec: SendEmailSpec =
            serde_saphyr::from_str("to: ['{{item.a', ok@x.org]\nsubject: '{{#if}}'\ntemplate: missing\nrate_limit: 0\n").unwrap();
        let mut errs = vec![];
        assert!(Compiled::compile(&spec, d.path(), |p, m| errs.push(format!("{p}: {m}"))).is_none());
        let all = errs.join("\n");
        for p in ["send_email.to[0]", "send_email.subject", "send_email.template", "send_email.rate_limit"] {
            assert!(all.contains(p), "{p} missing in\n{all}");
        }
    }
}
