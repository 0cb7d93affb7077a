//! The templates of a send_email step, on the one template service (`plan::templates`).
//!
//! Each part is compiled for what it becomes: the HTML part escapes data, the text part must not
//! (`&` has to arrive as `&`, not `&amp;`), and headers (to, subject, ...) are not escaped but
//! refuse a line break. All are strict, so a missing field is an item error naming the field
//! instead of an empty string in a customer's inbox.

use std::path::{Path, PathBuf};

use handlebars::Context;

use crate::plan::templates::{Output, TemplateRef, Templates};

/// Kept here for callers of the step's module; the rule lives in the template service.
pub use crate::plan::templates::escape_html;

#[derive(Debug, thiserror::Error)]
pub enum TemplateLoadError {
    #[error("template `{name}` not found: neither `{html}` nor `{text}` exists")]
    NotFound { name: String, html: PathBuf, text: PathBuf },
    #[error("template name `{0}` must be a plain name inside the templates folder (no `..`, no absolute path)")]
    BadName(String),
    #[error("cannot read `{path}`: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("syntax error in `{path}`: {msg}")]
    Syntax { path: PathBuf, msg: String },
}

/// Which parts a template has; a missing file means that part is left out of the email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub html: Option<String>,
    pub text: Option<String>,
}

pub struct EmailTemplates {
    t: Templates,
}

impl Default for EmailTemplates {
    fn default() -> Self {
        Self::new()
    }
}

impl EmailTemplates {
    pub fn reads(&self) -> crate::plan::templates::Reads {
        self.t.reads_of_all()
    }

    pub fn new() -> Self {
        EmailTemplates { t: Templates::new() }
    }

    /// Registers `partials/*.hbs` under their file stem (`{{> header}}`). A partial may be split
    /// by part: `header.html.hbs` goes to HTML only, `header.txt.hbs` to text only, and they win
    /// over a plain `header.hbs`.
    pub fn load_partials(&mut self, templates_dir: &Path) -> Result<usize, TemplateLoadError> {
        let dir = templates_dir.join("partials");
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(0) };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        // Plain `x.hbs` first so the part-specific files registered after it override it.
        files.sort_by_key(|p| {
            let n = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            (n.ends_with(".html.hbs") || n.ends_with(".txt.hbs"), n)
        });
        let mut count = 0;
        for path in files {
            let fname = path.file_name().unwrap().to_string_lossy().into_owned();
            let Some(stem) = fname.strip_suffix(".hbs") else { continue };
            let src = read(&path)?;
            // Headers render from the text registry, so a text partial is theirs too.
            let (name, outputs): (&str, &[Output]) = if let Some(n) = stem.strip_suffix(".html") {
                (n, &[Output::Html])
            } else if let Some(n) = stem.strip_suffix(".txt") {
                (n, &[Output::Text])
            } else {
                (stem, &[Output::Html, Output::Text])
            };
            self.t.add_partial(name, &src, outputs).map_err(|msg| TemplateLoadError::Syntax { path: path.clone(), msg })?;
            count += 1;
        }
        Ok(count)
    }

    /// Loads `<name>.html.hbs` and/or `<name>.txt.hbs`; at least one must exist.
    pub fn load_body(&mut self, templates_dir: &Path, name: &str) -> Result<Body, TemplateLoadError> {
        let p = Path::new(name);
        if name.is_empty() || p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            return Err(TemplateLoadError::BadName(name.into()));
        }
        let html_path = templates_dir.join(format!("{name}.html.hbs"));
        let text_path = templates_dir.join(format!("{name}.txt.hbs"));
        let mut body = Body { html: None, text: None };
        for (path, is_html) in [(&html_path, true), (&text_path, false)] {
            if !path.exists() {
                continue;
            }
            let src = read(path)?;
            let id = path.file_name().unwrap().to_string_lossy().into_owned();
            let output = if is_html { Output::Html } else { Output::Text };
            self.t.add_as(&id, &src, output).map_err(|msg| TemplateLoadError::Syntax { path: path.clone(), msg })?;
            if is_html {
                body.html = Some(id)
            } else {
                body.text = Some(id)
            }
        }
        if body.html.is_none() && body.text.is_none() {
            return Err(TemplateLoadError::NotFound { name: name.into(), html: html_path, text: text_path });
        }
        Ok(body)
    }

    /// Registers an inline template (a path, a key); rendered without escaping.
    pub fn add_inline(&mut self, id: &str, src: &str) -> Result<(), String> {
        self.add(id, src, Output::Text).map(|_| ())
    }

    /// Registers an inline template for `output` (`Header` for to, subject, ...).
    pub fn add(&mut self, id: &str, src: &str, output: Output) -> Result<TemplateRef, String> {
        self.t.add_as(id, src, output)
    }

    pub fn render(&self, t: &TemplateRef, ctx: &Context) -> Result<String, String> {
        self.t.render_in(t, ctx).map_err(|e| e.0)
    }

    pub fn render_text(&self, id: &str, ctx: &Context) -> Result<String, String> {
        self.render(&TemplateRef(id.to_string(), Output::Text), ctx)
    }

    pub fn render_html(&self, id: &str, ctx: &Context) -> Result<String, String> {
        self.render(&TemplateRef(id.to_string(), Output::Html), ctx)
    }
}

fn read(path: &Path) -> Result<String, TemplateLoadError> {
    std::fs::read_to_string(path).map_err(|err| TemplateLoadError::Io { path: path.into(), err })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(v: serde_json::Value) -> Context {
        Context::from(v)
    }

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (p, s) in files {
            let path = d.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, s).unwrap();
        }
        d
    }

    #[test]
    fn html_escapes_minimal_text_not_at_all() {
        let d = dir_with(&[
            ("t.html.hbs", "<a href=\"https://x/?a={{item.a}}&b=2\">{{item.name}}</a>"),
            ("t.txt.hbs", "Hi {{item.name}}, ?a={{item.a}}"),
        ]);
        let mut t = EmailTemplates::new();
        let body = t.load_body(d.path(), "t").unwrap();
        let c = ctx(json!({"item": {"name": "Tom & Jerry <3 'x'", "a": "k=v"}}));
        let h = t.render_html(body.html.as_deref().unwrap(), &c).unwrap();
        assert_eq!(h, "<a href=\"https://x/?a=k=v&b=2\">Tom &amp; Jerry &lt;3 &#39;x&#39;</a>");
        let x = t.render_text(body.text.as_deref().unwrap(), &c).unwrap();
        assert_eq!(x, "Hi Tom & Jerry <3 'x', ?a=k=v");
    }

    #[test]
    fn missing_field_is_named() {
        let d = dir_with(&[("t.txt.hbs", "Hi {{item.name}}\n{{item.email}}")]);
        let mut t = EmailTemplates::new();
        let body = t.load_body(d.path(), "t").unwrap();
        assert!(body.html.is_none());
        let err = t.render_text("t.txt.hbs", &ctx(json!({"item": {"name": "A"}}))).unwrap_err();
        assert!(err.contains("missing field `item.email`"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn helpers_work_and_stay_escaped() {
        let mut t = EmailTemplates::new();
        t.add_inline("a", "{{upper item.n}} {{default item.nick \"there\"}} {{pluralize item.c \"ticket\"}} {{pluralise 1 \"person\" \"people\"}} {{date item.d \"%d %B %Y\"}}").unwrap();
        let c = ctx(json!({"item": {"n": "ab&c", "c": 3, "d": "2024-03-05T10:00:00Z"}}));
        assert_eq!(t.render_text("a", &c).unwrap(), "AB&C there tickets person 05 March 2024");
        // Missing field given to a helper is still an error (strict), except through `default`.
        t.add_inline("b", "{{upper item.zz}}").unwrap();
        assert!(t.render_text("b", &c).unwrap_err().contains("`item.zz`"));
        t.add_inline("c", "{{date item.d \"%Q\"}}").unwrap();
        assert!(t.render_text("c", &c).is_err());
        let d = dir_with(&[("h.html.hbs", "{{upper item.n}}")]);
        t.load_body(d.path(), "h").unwrap();
        assert_eq!(t.render_html("h.html.hbs", &c).unwrap(), "AB&amp;C");
    }

    #[test]
    fn partials_by_part() {
        let d = dir_with(&[
            ("partials/header.hbs", "plain"),
            ("partials/header.html.hbs", "<h1>{{item.co}}</h1>"),
            ("partials/footer.hbs", "-- {{item.co}}"),
            ("m.html.hbs", "{{> header}}|{{> footer}}"),
            ("m.txt.hbs", "{{> header}}|{{> footer}}"),
        ]);
        let mut t = EmailTemplates::new();
        assert_eq!(t.load_partials(d.path()).unwrap(), 3);
        t.load_body(d.path(), "m").unwrap();
        let c = ctx(json!({"item": {"co": "A&B"}}));
        assert_eq!(t.render_html("m.html.hbs", &c).unwrap(), "<h1>A&amp;B</h1>|-- A&amp;B");
        assert_eq!(t.render_text("m.txt.hbs", &c).unwrap(), "plain|-- A&B");
    }

    #[test]
    fn bad_names_and_missing_templates() {
        let d = dir_with(&[("x.txt.hbs", "{{#if}}")]);
        let mut t = EmailTemplates::new();
        assert!(matches!(t.load_body(d.path(), "../etc"), Err(TemplateLoadError::BadName(_))));
        assert!(matches!(t.load_body(d.path(), "nope"), Err(TemplateLoadError::NotFound { .. })));
        assert!(matches!(t.load_body(d.path(), "x"), Err(TemplateLoadError::Syntax { .. })));
    }
}
