//! Digest rendering: one HTML and one Markdown document per team from Handlebars templates, on
//! the one template service (`plan::templates`).
//!
//! Feedback text is untrusted, so the `.html.hbs` template renders as HTML (escaped) and the
//! `.md` file is rendered from `.txt.hbs` as Markdown (escaped); the same `.txt.hbs` also renders
//! as plain text (unescaped) for plain-text email bodies.

use handlebars::Context;
use serde_json::Value;

use crate::plan::templates::{is_stray_control, Output, TemplateRef, Templates};
use crate::plan::PlanCx;

/// Shipped templates, used when the project's templates folder has none of its own.
const BUILTIN_HTML: &str = include_str!("../../../templates/feedback_digest.html.hbs");
const BUILTIN_TEXT: &str = include_str!("../../../templates/feedback_digest.txt.hbs");
const DEFAULT_NAME: &str = "feedback_digest";
/// Roots a digest template may use.
const ROOTS: &[&str] = &["item", "run"];

pub struct DigestTemplates {
    t: Templates,
    html: TemplateRef,
    markdown: TemplateRef,
    text: TemplateRef,
}

impl std::fmt::Debug for DigestTemplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DigestTemplates")
    }
}

pub struct Rendered {
    pub html: String,
    pub markdown: String,
    pub text: String,
}

impl DigestTemplates {
    /// Loads `<name>.html.hbs` and `<name>.txt.hbs` from the templates folder (the built-in
    /// ones when the default name is not overridden there), reporting problems at `path`.
    pub fn load(cx: &mut PlanCx, name: &str, path: &str) -> Option<DigestTemplates> {
        let dir = cx.templates_dir();
        let mut read = |ext: &str, builtin: &'static str| -> Option<(String, String)> {
            let file = dir.join(format!("{name}.{ext}.hbs"));
            match std::fs::read_to_string(&file) {
                Ok(s) => Some((file.display().to_string(), s)),
                Err(_) if name == DEFAULT_NAME => Some((format!("built-in {name}.{ext}.hbs"), builtin.to_string())),
                Err(_) => {
                    cx.error(
                        path,
                        format!("template file `{}` does not exist", file.display()),
                        Some(format!("create it, or remove `template:` to use the built-in `{DEFAULT_NAME}`")),
                    );
                    None
                }
            }
        };
        let html = read("html", BUILTIN_HTML);
        let text = read("txt", BUILTIN_TEXT);
        let ((html_name, html), (text_name, text)) = (html?, text?);
        let mut ok = true;
        for (file, src) in [(&html_name, &html), (&text_name, &text)] {
            for r in crate::plan::refs::var_refs(src, &[]) {
                if r.call {
                    ok = false;
                    let (message, help) = crate::plan::refs::unknown_helper(&r.path);
                    cx.error(path, format!("{message} `{file}`"), Some(help));
                } else if !ROOTS.contains(&r.root()) {
                    ok = false;
                    cx.error(
                        path,
                        format!("unknown variable `{}` in template `{file}`", r.path),
                        Some("digest templates see `item` (the team's bucket) and `run` (id, workflow, step, as_of)".into()),
                    );
                }
            }
        }
        // Registered under their file names, so a render error names the file.
        let mut t = Templates::new();
        let mut add = |file: &str, src: &str, outputs: &[Output]| -> Option<Vec<TemplateRef>> {
            let added = outputs.iter().map(|&o| t.add_as(file, src, o)).collect::<Result<Vec<_>, _>>();
            added.map_err(|e| cx.error(path, format!("template `{file}` does not compile: {e}"), None)).ok()
        };
        let html = add(&html_name, &html, &[Output::Html]);
        let text = add(&text_name, &text, &[Output::Markdown, Output::Text]);
        let (mut html, mut text) = (html?, text?);
        let (text, markdown) = (text.pop()?, text.pop()?);
        ok.then_some(DigestTemplates { t, html: html.pop()?, markdown, text })
    }

    /// `ctx` is `{item, run}`.
    pub fn render(&self, ctx: &Value) -> Result<Rendered, String> {
        let c = Context::from(ctx.clone());
        let r = |t: &TemplateRef| self.t.render_in(t, &c).map_err(|e| e.0);
        Ok(Rendered { html: r(&self.html)?, markdown: r(&self.markdown)?, text: r(&self.text)? })
    }
}

/// File name for a team: lowercase letters, digits and `-`.
pub(super) fn slug(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        if c.is_alphanumeric() {
            s.extend(c.to_lowercase());
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    let s = s.trim_end_matches('-').to_string();
    if s.is_empty() {
        "team".into()
    } else {
        s
    }
}

fn clean(s: &str) -> Option<String> {
    s.chars().any(is_stray_control).then(|| s.chars().filter(|&c| !is_stray_control(c)).collect())
}

/// Removes control characters (NUL, ESC, DEL, C1 controls...) from every string and key of a
/// team's record, keeping tab and line ends. Feedback is untrusted: a NUL is invalid in HTML
/// and truncates text in some mail clients, ESC sequences act on a terminal that prints the
/// Markdown, and none of them is ever meant.
pub(super) fn strip_controls(v: &mut Value) {
    match v {
        Value::String(s) => {
            if let Some(c) = clean(s) {
                *s = c;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_controls),
        Value::Object(m) => strip_controls_map(m),
        _ => {}
    }
}

pub(super) fn strip_controls_map(m: &mut serde_json::Map<String, Value>) {
    if m.keys().any(|k| k.chars().any(is_stray_control)) {
        *m = std::mem::take(m).into_iter().map(|(k, v)| (clean(&k).unwrap_or(k), v)).collect();
    }
    m.values_mut().for_each(strip_controls);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_stripped_everywhere_but_line_ends_and_tabs_stay() {
        let mut v = serde_json::json!({"a\u{0}b": ["x\u{0}y\u{1b}[31mz\u{7f}\u{85}", "t\tn\nr\r"], "n": 1});
        strip_controls(&mut v);
        assert_eq!(v, serde_json::json!({"ab": ["xy[31mz", "t\tn\nr\r"], "n": 1}));
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Support quality"), "support-quality");
        assert_eq!(slug("  R&D / Ideas "), "r-d-ideas");
        assert_eq!(slug("!!!"), "team");
    }
}
