//! Selectors as written in workflows: CSS by default, XPath when prefixed `xpath=` or starting
//! with `/` or `(`, link text when prefixed `link=`.

use std::fmt;

use fantoccini::Locator;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    Css,
    XPath,
    LinkText,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub how: How,
    pub expr: String,
    /// As written, for error messages.
    pub raw: String,
}

impl Selector {
    pub fn parse(raw: &str) -> Selector {
        let raw_t = raw.trim();
        let (how, expr) = if let Some(x) = raw_t.strip_prefix("xpath=") {
            (How::XPath, x)
        } else if let Some(x) = raw_t.strip_prefix("link=") {
            (How::LinkText, x)
        } else if let Some(x) = raw_t.strip_prefix("css=") {
            (How::Css, x)
        } else if raw_t.starts_with('/') || raw_t.starts_with("(/") || raw_t.starts_with("./") {
            (How::XPath, raw_t)
        } else {
            (How::Css, raw_t)
        };
        Selector { how, expr: expr.to_string(), raw: raw.to_string() }
    }

    pub fn locator(&self) -> Locator<'_> {
        match self.how {
            How::Css => Locator::Css(&self.expr),
            How::XPath => Locator::XPath(&self.expr),
            How::LinkText => Locator::LinkText(&self.expr),
        }
    }

    /// `[kind, expression]` for the page-side helper script, which knows CSS and XPath only;
    /// link text becomes the XPath a link with that exact text matches.
    pub fn js(&self) -> serde_json::Value {
        match self.how {
            How::Css => serde_json::json!(["css", self.expr]),
            How::XPath => serde_json::json!(["xpath", self.expr]),
            How::LinkText => {
                let lit = xpath_literal(&self.expr);
                serde_json::json!(["xpath", format!("//a[normalize-space(.)={lit}]")])
            }
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// An XPath string literal for any text (XPath 1.0 has no escapes; quotes need `concat`).
fn xpath_literal(s: &str) -> String {
    if !s.contains('\'') {
        format!("'{s}'")
    } else if !s.contains('"') {
        format!("\"{s}\"")
    } else {
        let parts: Vec<String> = s.split('\'').map(|p| format!("'{p}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(Selector::parse("#a").how, How::Css);
        assert_eq!(Selector::parse("//div[@id='a']").how, How::XPath);
        assert_eq!(Selector::parse("(//a)[2]").how, How::XPath);
        let l = Selector::parse("link=Sign out");
        assert_eq!((l.how, l.expr.as_str()), (How::LinkText, "Sign out"));
        assert_eq!(Selector::parse("xpath=//b").expr, "//b");
    }

    #[test]
    fn literal_with_both_quotes() {
        assert_eq!(xpath_literal("it's \"x\""), "concat('it', \"'\", 's \"x\"')");
    }
}
