//! A send_email spec with every template compiled once, and the per-item rendering into a
//! `Rendered` email. Independent of the engine so it can be unit-tested and benchmarked alone.

use std::path::{Path, PathBuf};

use handlebars::Context;
use serde_json::Value;

use super::message::Rendered;
use super::spec::{SendEmailSpec, Uncertain};
use super::templates::{Body, EmailTemplates};

pub struct Compiled {
    templates: EmailTemplates,
    body: Body,
    to: Vec<String>,
    cc: Vec<String>,
    bcc: Vec<String>,
    reply_to: Option<String>,
    from: Option<String>,
    subject: String,
    key: Option<String>,
    attachments: Vec<String>,
    headers: Vec<(String, String)>,
    pub uncertain: Uncertain,
    pub rate_limit: Option<f64>,
    pub template_name: String,
}

impl Compiled {
    /// Compiles everything; each problem is reported through `err(field_path, message)` with a
    /// path relative to the step (`send_email.subject`, `send_email.to[1]`) and all are reported,
    /// not just the first. Returns None if anything failed.
    pub fn compile(
        spec: &SendEmailSpec,
        templates_dir: &Path,
        mut err: impl FnMut(&str, String),
    ) -> Option<Compiled> {
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
        let mut inline = |path: String, src: &str, ok: &mut bool| -> String {
            if let Err(e) = t.add_inline(&path, src) {
                err(&path, format!("bad template `{src}`: {e}"));
                *ok = false;
            }
            path
        };
        let list = |name: &str, v: Option<&super::spec::OneOrMany>, inline: &mut dyn FnMut(String, &str) -> String| {
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
        let mut f = |p: String, s: &str| inline(p, s, &mut ok2);
        let to = list("to", Some(&spec.to), &mut f);
        let cc = list("cc", spec.cc.as_ref(), &mut f);
        let bcc = list("bcc", spec.bcc.as_ref(), &mut f);
        let reply_to = spec.reply_to.as_deref().map(|s| f("send_email.reply_to".into(), s));
        let from = spec.from.as_deref().map(|s| f("send_email.from".into(), s));
        let subject = f("send_email.subject".into(), &spec.subject);
        let key = spec.idempotency_key.as_deref().map(|s| f("send_email.idempotency_key".into(), s));
        let attachments = spec
            .attachments
            .iter()
            .enumerate()
            .map(|(i, s)| f(format!("send_email.attachments[{i}]"), s))
            .collect();
        let headers = spec
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), f(format!("send_email.headers.{k}"), v)))
            .collect();
        if !ok || !ok2 || spec.rate_limit.is_some_and(|r| r <= 0.0 || !r.is_finite()) {
            if spec.rate_limit.is_some_and(|r| r <= 0.0 || !r.is_finite()) {
                err("send_email.rate_limit", "`rate_limit` must be a positive number of messages per second".into());
            }
            return None;
        }
        Some(Compiled {
            templates: t,
            body: body?,
            to,
            cc,
            bcc,
            reply_to,
            from,
            subject,
            key,
            attachments,
            headers,
            uncertain: spec.uncertain,
            rate_limit: spec.rate_limit,
            template_name: spec.template.clone(),
        })
    }

    pub fn has_from(&self) -> bool {
        self.from.is_some()
    }

    /// Renders one item. `default_key` is `<workflow>/<item key>`, used without
    /// `idempotency_key`; relative attachment paths resolve against `base_dir`.
    pub fn render(
        &self,
        ctx: &Value,
        default_from: Option<&str>,
        default_key: &str,
        base_dir: &Path,
    ) -> Result<Rendered, String> {
        let c = Context::from(ctx.clone());
        let text = |id: &String| self.templates.render_text(id, &c);
        let all = |ids: &[String]| ids.iter().map(text).collect::<Result<Vec<_>, _>>();
        let from = match (&self.from, default_from) {
            (Some(id), _) => text(id)?,
            (None, Some(f)) => f.to_string(),
            (None, None) => {
                return Err("no sender: set `from` in the step or `smtp_from` in cxflow.yaml".into())
            }
        };
        let key = match &self.key {
            Some(id) => text(id)?,
            None => default_key.to_string(),
        };
        if key.trim().is_empty() {
            return Err("`idempotency_key` rendered empty; it must identify the email".into());
        }
        let attachments = self
            .attachments
            .iter()
            .map(|id| {
                let p = PathBuf::from(text(id)?);
                Ok(if p.is_absolute() { p } else { base_dir.join(p) })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Rendered {
            from,
            to: all(&self.to)?,
            cc: all(&self.cc)?,
            bcc: all(&self.bcc)?,
            reply_to: self.reply_to.as_ref().map(text).transpose()?,
            subject: text(&self.subject)?,
            headers: self
                .headers
                .iter()
                .map(|(k, id)| Ok((k.clone(), text(id)?)))
                .collect::<Result<_, String>>()?,
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
        let spec: SendEmailSpec = serde_yaml::from_str(
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
        let r = c.render(&ctx, Some("s@x.org"), "wf/7", d.path()).unwrap();
        assert_eq!(r.to, ["Ann & Bo <a@x.org>"]);
        assert_eq!(r.subject, "How did we do on ticket 7?");
        assert_eq!(r.key, "follow-up/7");
        assert_eq!(r.html.as_deref(), Some("<p>Hi Ann &amp; Bo</p>"));
        assert_eq!(r.headers, [("X-Ticket".to_string(), "7".to_string())]);
        let e = c.render(&json!({"item": {"name": "A", "ticket_id": 1}}), Some("s@x.org"), "k", d.path()).unwrap_err();
        assert!(e.contains("`item.email`"), "{e}");
    }

    #[test]
    fn reports_every_problem_with_its_path() {
        let d = tempfile::tempdir().unwrap();
        let spec: SendEmailSpec =
            serde_yaml::from_str("to: ['{{item.a', ok@x.org]\nsubject: '{{#if}}'\ntemplate: missing\nrate_limit: 0\n").unwrap();
        let mut errs = vec![];
        assert!(Compiled::compile(&spec, d.path(), |p, m| errs.push(format!("{p}: {m}"))).is_none());
        let all = errs.join("\n");
        for p in ["send_email.to[0]", "send_email.subject", "send_email.template", "send_email.rate_limit"] {
            assert!(all.contains(p), "{p} missing in\n{all}");
        }
    }
}
