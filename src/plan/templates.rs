//! The Handlebars registry of one plan: every inline template string of the workflow, compiled once.
//! Strict mode: a reference to a missing field is an error, never an empty string.

use handlebars::Handlebars;
use serde_json::Value;

/// A compiled template, by its registered name (the YAML path it came from).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TemplateRef(pub String);

#[derive(Debug)]
pub struct Templates {
    hb: Handlebars<'static>,
}

/// A template failed to render for one item: a missing field, a helper error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    pub fn new() -> Templates {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        // Inline strings are subjects, addresses, paths and keys: never HTML.
        hb.register_escape_fn(handlebars::no_escape);
        super::helpers::register(&mut hb);
        Templates { hb }
    }

    /// Compile `src` under `name`; the error text is handlebars' own description of the syntax error.
    pub fn add(&mut self, name: &str, src: &str) -> Result<TemplateRef, String> {
        self.hb.register_template_string(name, src).map_err(|e| syntax_message(&e))?;
        Ok(TemplateRef(name.to_string()))
    }

    pub fn render(&self, t: &TemplateRef, ctx: &Value) -> Result<String, RenderError> {
        self.hb.render(&t.0, ctx).map_err(|e| RenderError(render_message(&e)))
    }

    /// Render and read the result as a condition.
    pub fn truthy(&self, t: &TemplateRef, ctx: &Value) -> Result<bool, RenderError> {
        Ok(is_truthy(&self.render(t, ctx)?))
    }
}

/// `""`, `false`, `0` and `no` (any case, surrounding space ignored) are false; anything else true.
pub fn is_truthy(s: &str) -> bool {
    !matches!(s.trim().to_ascii_lowercase().as_str(), "" | "false" | "0" | "no")
}

fn syntax_message(e: &handlebars::TemplateError) -> String {
    use handlebars::TemplateErrorReason as R;
    match e.reason() {
        R::InvalidSyntax(_) => return "a `{{` is not closed by `}}`, or the expression inside is malformed".into(),
        R::MismatchingClosedHelper(open, close) => return format!("`{{{{#{open}}}}}` is closed by `{{{{/{close}}}}}`"),
        _ => {}
    }
    let s = e.reason().to_string();
    // Handlebars appends a multi-line excerpt; the first line says what is wrong.
    s.lines().next().unwrap_or(&s).trim().to_string()
}

fn render_message(e: &handlebars::RenderError) -> String {
    use handlebars::RenderErrorReason as R;
    match e.reason() {
        R::MissingVariable(Some(path)) => {
            format!("`{path}` is missing: this record or context has no such field")
        }
        R::MissingVariable(None) => "a variable is missing".to_string(),
        _ => e.reason().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strict_mode_names_the_missing_field() {
        let mut t = Templates::new();
        let r = t.add("s", "Hi {{item.name}}").unwrap();
        assert_eq!(t.render(&r, &json!({"item": {"name": "Ann & Bo"}})).unwrap(), "Hi Ann & Bo");
        let e = t.render(&r, &json!({"item": {}})).unwrap_err();
        assert!(e.0.contains("`item.name` is missing"), "{}", e.0);
    }

    #[test]
    fn conditions() {
        let mut t = Templates::new();
        let r = t.add("c", "{{eq item.status 'spam'}}").unwrap();
        assert!(t.truthy(&r, &json!({"item": {"status": "spam"}})).unwrap());
        assert!(!t.truthy(&r, &json!({"item": {"status": "ok"}})).unwrap());
        assert!(!is_truthy(" No "));
    }

    #[test]
    fn syntax_error_is_one_line() {
        let mut t = Templates::new();
        let e = t.add("s", "Hi {{item.name").unwrap_err();
        assert!(!e.contains('\n'), "{e}");
    }
}
