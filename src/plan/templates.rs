//! The one template service: every Handlebars template of cxflow (inline strings of the workflow,
//! email bodies and partials, digests) is compiled and rendered here, so they all get the same
//! helpers, the same strict mode and the same message for a missing field.
//!
//! What differs is only how a value is escaped, and that follows from what the output is
//! (`Output`), chosen when the template is added: a template cannot be rendered as HTML in one
//! place and as a header in another by mistake. One instance per owner (the plan's inline
//! strings, each send_email step, each route step); they all behave the same.
//!
//! Rendered values never reach handlebars' own logging: its debug log prints helper parameters
//! (a secret given to `{{upper secrets.X}}`) and its `{{log}}` helper prints values, so the crate
//! is built with its `no_logging` feature (Cargo.toml).

mod deadline;
mod escape;
mod message;
#[cfg(test)]
mod proptests;
mod reads;
#[cfg(test)]
mod reads_tests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use handlebars::{Context, Handlebars};
use serde_json::Value;

pub use reads::Reads;

pub use deadline::with_deadline;
pub use escape::{escape_html, escape_markdown, is_stray_control, quote_data};

/// What a rendered template becomes; decides how the values in it are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Output {
    /// Paths, keys, argv, conditions, plain-text bodies: values as they are (`&` stays `&`).
    Text,
    /// HTML bodies: only `& < > " '` are escaped, so a URL in an `href` keeps its query string.
    Html,
    /// Markdown documents: what Markdown would interpret in a value is backslash-escaped.
    Markdown,
    /// One email header value (to, subject, ...): not escaped, but a line break is refused.
    Header,
}

/// A compiled template: its registered name (the YAML path or file it came from) and its output.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TemplateRef(pub String, pub Output);

#[derive(Debug)]
pub struct Templates {
    /// `Text` and `Header` templates: neither escapes.
    /// Each registry is made on the first template of its outputs: most workflows have none,
    /// and a registry with every helper is a few kilobytes, which a scheduler holding thousands
    /// of plans feels (25 MB of 180 for 10,000 workflows without templates).
    /// Boxed: a `Handlebars` is a few hundred bytes even empty, three in every plan.
    text: Option<Box<Handlebars<'static>>>,
    html: Option<Box<Handlebars<'static>>>,
    markdown: Option<Box<Handlebars<'static>>>,
    /// The steps each template reads, by registry (`Text` stands for `Header` too) and name;
    /// a template not in here reads them all.
    reads: HashMap<(Output, String), Reads>,
    /// Templates without `{{`, which render as their text, by registry and name: kept out of
    /// handlebars, so a workflow whose fields are all plain text (`read_csv: data/t.csv`) makes
    /// no registry (about 3.5 KB with its helpers, each of 10,000 scheduled workflows).
    literals: HashMap<(Output, String), String>,
}

/// A template failed to render for one item: a missing field, a helper error, a refused header.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

/// Every output's registry is the same but for its escape function: strict, with the one helper set.
fn registry(escape: fn(&str) -> String) -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    super::helpers::register(&mut hb);
    hb.register_escape_fn(escape);
    hb
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    pub fn new() -> Templates {
        Templates { text: None, html: None, markdown: None, reads: HashMap::new(), literals: HashMap::new() }
    }

    fn registry(&self, output: Output) -> Option<&Handlebars<'static>> {
        match output {
            Output::Text | Output::Header => self.text.as_deref(),
            Output::Html => self.html.as_deref(),
            Output::Markdown => self.markdown.as_deref(),
        }
    }

    fn registry_mut(&mut self, output: Output) -> &mut Handlebars<'static> {
        match output {
            Output::Text | Output::Header => self.text.get_or_insert_with(|| Box::new(registry(handlebars::no_escape))),
            Output::Html => self.html.get_or_insert_with(|| Box::new(registry(escape_html))),
            Output::Markdown => self.markdown.get_or_insert_with(|| Box::new(registry(escape_markdown))),
        }
    }

    /// Compile `src` under `name` as plain text; see `add_as`.
    pub fn add(&mut self, name: &str, src: &str) -> Result<TemplateRef, String> {
        self.add_as(name, src, Output::Text)
    }

    /// Compile `src` under `name` (the YAML path or file name, shown in render errors) for
    /// `output`; the error is one line saying what is wrong with the syntax. A name is added once
    /// per owner; the one exception is a source added as both `Markdown` and `Text` (a digest's
    /// `.txt.hbs`), which live in different registries (`Text` and `Header` share one).
    pub fn add_as(&mut self, name: &str, src: &str, output: Output) -> Result<TemplateRef, String> {
        let key = (registry_of(output), name.to_string());
        // Handlebars reads nothing but `{{...}}` (its escapes and whitespace control included):
        // a text without one renders as itself, in every output.
        if !src.contains("{{") && !self.registry(output).is_some_and(|hb| hb.has_template(name)) {
            self.reads.remove(&key);
            self.literals.insert(key, src.to_string());
            return Ok(TemplateRef(name.to_string(), output));
        }
        self.literals.remove(&key);
        let hb = self.registry_mut(output);
        hb.register_template_string(name, src).map_err(|e| message::syntax(&e))?;
        let reads = hb.get_template(name).map_or(Reads::All, reads::reads);
        self.reads.insert((registry_of(output), name.to_string()), reads);
        Ok(TemplateRef(name.to_string(), output))
    }

    /// Register a partial (`{{> name}}`) for the templates of each of `outputs`; a later one under
    /// the same name replaces it for those outputs.
    pub fn add_partial(&mut self, name: &str, src: &str, outputs: &[Output]) -> Result<(), String> {
        for &o in outputs {
            // Text and Header share a registry: register there once.
            if o == Output::Header && outputs.contains(&Output::Text) {
                continue;
            }
            self.registry_mut(o).register_partial(name, src).map_err(|e| message::syntax(&e))?;
        }
        Ok(())
    }

    /// Render `t` in `ctx`, which it reads and does not keep: of `ctx.steps` only the steps the
    /// template names are copied for handlebars (`reads.rs`), not every earlier step's output.
    pub fn render(&self, t: &TemplateRef, ctx: &Value) -> Result<String, RenderError> {
        if let Some(text) = self.literal(t) {
            return plain(t, text);
        }
        let narrowed = self.reads.get(&(registry_of(t.1), t.0.clone())).and_then(|r| r.narrow(ctx));
        let ctx = match narrowed {
            Some(v) => Context::from(v),
            None => Context::wraps(ctx).map_err(|e| RenderError(message::render(&t.0, &e)))?,
        };
        self.render_compiled(t, &ctx)
    }

    /// The text of `t` when it has no `{{`. Looked up only when the set has such texts: the key
    /// is a copy of the name, and most renders are of compiled templates.
    fn literal(&self, t: &TemplateRef) -> Option<&str> {
        if self.literals.is_empty() {
            return None;
        }
        self.literals.get(&(registry_of(t.1), t.0.clone())).map(String::as_str)
    }

    /// The steps `t` reads (`Reads::All` for a template this set never compiled).
    pub fn reads_of(&self, t: &TemplateRef) -> Reads {
        match self.literal(t) {
            Some(_) => Reads::none(),
            None => self.reads.get(&(registry_of(t.1), t.0.clone())).cloned().unwrap_or(Reads::All),
        }
    }

    /// The steps any template of this set reads.
    pub fn reads_of_all(&self) -> Reads {
        let mut all = Reads::none();
        self.reads.values().for_each(|r| all.add(r));
        all
    }

    /// Like `render`, for a context built once (`Context::from(value)`) and used by several
    /// templates of the same item: handlebars would otherwise copy the whole value for each.
    pub fn render_in(&self, t: &TemplateRef, ctx: &Context) -> Result<String, RenderError> {
        match self.literal(t) {
            Some(text) => plain(t, text),
            None => self.render_compiled(t, ctx),
        }
    }

    fn render_compiled(&self, t: &TemplateRef, ctx: &Context) -> Result<String, RenderError> {
        let Some(hb) = self.registry(t.1) else {
            return Err(RenderError(format!("template `{}` was never compiled", t.0)));
        };
        let out = deadline::bounded(|w| hb.render_with_context_to_write(&t.0, ctx, w)).map_err(|e| match e {
            Ok(e) => RenderError(message::render(&t.0, &e)),
            Err(deadline::Overran(timeout)) => RenderError(message::overran(&t.0, timeout)),
        })?;
        one_line_if_header(t, &out)?;
        Ok(out)
    }

    /// Render and read the result as a condition.
    pub fn truthy(&self, t: &TemplateRef, ctx: &Value) -> Result<bool, RenderError> {
        Ok(is_truthy(&self.render(t, ctx)?))
    }
}

/// A text without `{{`, as handlebars would render it: itself, a header still on one line.
fn plain(t: &TemplateRef, text: &str) -> Result<String, RenderError> {
    one_line_if_header(t, text)?;
    Ok(text.to_string())
}

/// A header's rendered value must stay on one line.
fn one_line_if_header(t: &TemplateRef, rendered: &str) -> Result<(), RenderError> {
    match t.1 {
        Output::Header => escape::one_line(&t.0, rendered).map_err(RenderError),
        _ => Ok(()),
    }
}

/// `Text` and `Header` share a registry, so a name means the same template in both.
fn registry_of(output: Output) -> Output {
    match output {
        Output::Header => Output::Text,
        o => o,
    }
}

/// `""`, `false`, `0` and `no` (any case, surrounding space ignored) are false; anything else true.
pub fn is_truthy(s: &str) -> bool {
    !matches!(s.trim().to_ascii_lowercase().as_str(), "" | "false" | "0" | "no")
}
