//! The words of template errors: one wording for each problem, wherever the template renders.

use handlebars::{RenderErrorReason, TemplateError, TemplateErrorReason};

/// The message for a field a template uses and the data does not have. `template` is the YAML
/// path or file the template came from, `at` its position in the template (may be empty).
pub(super) fn missing_field(field: &str, template: &str, at: &str) -> String {
    format!(
        "`{field}` is missing in `{template}`{at}: this record or context has no such field; fix the data, or, where a missing field `{field}` is normal, write `{{{{default {field} \"...\"}}}}`"
    )
}

/// One line saying what is wrong with a template's syntax.
pub(super) fn syntax(e: &TemplateError) -> String {
    match e.reason() {
        TemplateErrorReason::InvalidSyntax(_) => return "a `{{` is not closed by `}}`, or the expression inside is malformed".into(),
        TemplateErrorReason::MismatchingClosedHelper(open, close) => return format!("`{{{{#{open}}}}}` is closed by `{{{{/{close}}}}}`"),
        _ => {}
    }
    let s = e.reason().to_string();
    // Handlebars appends a multi-line excerpt; the first line says what is wrong.
    s.lines().next().unwrap_or(&s).trim().to_string()
}

/// A render failure of the template registered as `name`, in words for the operator.
pub(super) fn render(name: &str, e: &handlebars::RenderError) -> String {
    // A failure inside a partial names the partial.
    let template = e.template_name.as_deref().unwrap_or(name);
    let at = match (e.line_no, e.column_no) {
        (Some(l), Some(c)) => format!(" (line {l}, col {c})"),
        _ => String::new(),
    };
    match e.reason() {
        RenderErrorReason::MissingVariable(Some(path)) => missing_field(path, template, &at),
        RenderErrorReason::MissingVariable(None) => format!(
            "a field is missing in `{template}`{at}: this record or context has no such field; fix the data, or, where a missing field is normal, use the `default` helper"
        ),
        RenderErrorReason::HelperNotFound(name) => {
            let (message, help) = super::super::refs::unknown_helper(name);
            format!("{message} `{template}`{at}: {help}")
        }
        other => format!("cannot render `{template}`{at}: {other}"),
    }
}

/// A render that ran past the step's timeout.
pub(super) fn overran(name: &str, timeout: std::time::Duration) -> String {
    format!(
        "rendering `{name}` took longer than the step's timeout ({}): the template does too much for this record (an `#each` inside an `#each` over a long list?); make it do less, or raise the step's `timeout:`",
        humantime::format_duration(timeout)
    )
}
