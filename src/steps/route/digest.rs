//! Digest rendering: one HTML and one Markdown document per team from Handlebars templates.
//!
//! The plan's shared registry never escapes (its templates are subjects, paths, keys), but
//! feedback text is untrusted, so digests get registries of their own: HTML-escaping for the
//! `.html.hbs` template and Markdown-escaping for the `.md` file rendered from `.txt.hbs`.
//! A raw (unescaped) text rendering is also produced for plain-text email bodies.

use handlebars::{handlebars_helper, Handlebars};
use serde_json::Value;

use crate::plan::PlanCx;

/// Shipped templates, used when the project's templates folder has none of its own.
const BUILTIN_HTML: &str = include_str!("../../../templates/feedback_digest.html.hbs");
const BUILTIN_TEXT: &str = include_str!("../../../templates/feedback_digest.txt.hbs");
const DEFAULT_NAME: &str = "feedback_digest";
/// Roots a digest template may use.
const ROOTS: &[&str] = &["item", "run"];

pub struct DigestTemplates {
    html: Handlebars<'static>,
    markdown: Handlebars<'static>,
    text: Handlebars<'static>,
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
                    cx.error(path, format!("template file `{}` does not exist", file.display()), Some(format!("create it, or remove `template:` to use the built-in `{DEFAULT_NAME}`")));
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
                if !ROOTS.contains(&r.root()) && !HELPERS.contains(&r.root()) {
                    ok = false;
                    cx.error(path, format!("unknown variable `{}` in template `{file}`", r.path), Some("digest templates see `item` (the team's bucket) and `run` (id, workflow, step, as_of)".into()));
                }
            }
        }
        let t = DigestTemplates {
            html: registry(handlebars::html_escape),
            markdown: registry(markdown_escape),
            text: registry(handlebars::no_escape),
        };
        let mut t = t;
        for (reg, file, src) in [(&mut t.html, &html_name, &html), (&mut t.markdown, &text_name, &text), (&mut t.text, &text_name, &text)] {
            if let Err(e) = reg.register_template_string("digest", src) {
                ok = false;
                let reason = e.reason().to_string();
                cx.error(path, format!("template `{file}` does not compile: {}", reason.lines().next().unwrap_or("")), None);
            }
        }
        ok.then_some(t)
    }

    /// `ctx` is `{item, run}`.
    pub fn render(&self, ctx: &Value) -> Result<Rendered, String> {
        let r = |h: &Handlebars<'static>| h.render("digest", ctx).map_err(|e| e.reason().to_string());
        Ok(Rendered { html: r(&self.html)?, markdown: r(&self.markdown)?, text: r(&self.text)? })
    }
}

const HELPERS: &[&str] = &["change", "inc"];

fn registry(escape: fn(&str) -> String) -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(escape);
    handlebars_helper!(change: |x: Json, unit: str| change_phrase(x.as_f64(), unit));
    handlebars_helper!(inc: |x: u64| x + 1);
    hb.register_helper("change", Box::new(change));
    hb.register_helper("inc", Box::new(inc));
    hb
}

/// ` (+0.3 since the previous digest)`; empty when there is nothing to compare with.
fn change_phrase(x: Option<f64>, unit: &str) -> String {
    match x {
        None => String::new(),
        Some(0.0) => " (no change since the previous digest)".into(),
        Some(x) => {
            let sign = if x > 0.0 { "+" } else { "" };
            format!(" ({sign}{}{unit} since the previous digest)", trim_float(x))
        }
    }
}

fn trim_float(x: f64) -> String {
    let s = format!("{:.2}", x);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Backslash-escapes what Markdown (and HTML inside Markdown) would interpret, so feedback
/// shows as the literal text the customer wrote.
pub fn markdown_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            // Emphasis, code, links, tables and inline HTML; the rest only matters at a line
            // start, and newlines are folded below.
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '<' | '>' => {
                o.push('\\');
                o.push(c);
            }
            // A newline inside a value would break out of the list item it is rendered in.
            '\n' | '\r' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// File name for a team: lowercase letters, digits and `-`.
pub fn slug(name: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_escaping_neutralizes_markup() {
        assert_eq!(markdown_escape("<script>*x*</script>"), "\\<script\\>\\*x\\*\\</script\\>");
        assert_eq!(markdown_escape("[a](http://x)\nnext & more"), "\\[a\\](http://x) next & more");
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Support quality"), "support-quality");
        assert_eq!(slug("  R&D / Ideas "), "r-d-ideas");
        assert_eq!(slug("!!!"), "team");
    }

    #[test]
    fn change_phrases() {
        assert_eq!(change_phrase(Some(0.25), ""), " (+0.25 since the previous digest)");
        assert_eq!(change_phrase(Some(-5.0), " pts"), " (-5 pts since the previous digest)");
        assert_eq!(change_phrase(Some(0.0), ""), " (no change since the previous digest)");
        assert_eq!(change_phrase(None, ""), "");
    }

    #[test]
    fn signed_numbers() {
        assert_eq!(trim_float(0.5), "0.5");
        assert_eq!(trim_float(-1.25), "-1.25");
        assert_eq!(trim_float(3.0), "3");
    }
}
