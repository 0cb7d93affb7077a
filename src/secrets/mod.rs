//! Secret values named by a workflow and read from the environment. They are handed to
//! templates but must never be written anywhere a person or a file can read them.

mod forms;
mod global;

use std::sync::OnceLock;

use regex::Regex;
use serde_json::{Map, Value};

pub use global::{redact_everywhere, redacting_stderr, RedactingStderr, Registered};

#[derive(Debug, Default, Clone)]
pub struct Secrets {
    values: Map<String, Value>,
    /// Secret values that are not the workflow's (the SMTP login named in cxflow.yaml): masked
    /// like the others, but not offered to templates.
    masked_only: Vec<String>,
    /// Every value in every form `forms` knows, built on first use (and again after a change).
    matcher: OnceLock<Option<Regex>>,
}

#[derive(Debug, thiserror::Error)]
#[error("secret `{0}` is not set in the environment; export {0}=... before running (the value is never logged)")]
pub struct MissingSecret(pub String);

impl Secrets {
    /// Read every named secret from `env`; a name that is not set is an error.
    pub fn from_env(names: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Secrets, MissingSecret> {
        let mut values = Map::new();
        for name in names {
            let v = env(name).ok_or_else(|| MissingSecret(name.clone()))?;
            values.insert(name.clone(), Value::String(v));
        }
        Ok(Secrets { values, ..Default::default() })
    }

    /// Also mask the values of the environment variables named by the configuration's
    /// `*_secret` keys, which steps read themselves, and a password written into `smtp_url` or
    /// `webdriver_url`.
    pub fn mask_config_secrets(&mut self, config: &crate::config::Config, env: impl Fn(&str) -> Option<String>) {
        for name in [&config.smtp_user_secret, &config.smtp_password_secret].into_iter().flatten() {
            if let Some(v) = env(name) {
                self.masked_only.push(v);
            }
        }
        if let Some(pw) = config.smtp_url.as_ref().and_then(|s| s.password.clone()) {
            self.masked_only.push(pw);
        }
        // A password in `webdriver_url` (a grid behind basic auth): the HTTP client's debug
        // log shows the URL's authority as written, percent-encoded.
        if let Some(u) = config.webdriver_url.as_deref().and_then(|u| url::Url::parse(u).ok()) {
            if let Some(pw) = u.password().filter(|pw| !pw.is_empty()) {
                let decoded = percent_decode(pw);
                if decoded != pw {
                    self.masked_only.push(decoded);
                }
                self.masked_only.push(pw.to_string());
            }
        }
        self.matcher = OnceLock::new();
    }

    /// The workflow's own secrets, by name: what it declared, and so what a program it runs may see.
    pub(crate) fn declared(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
    }

    pub fn as_value(&self) -> Value {
        Value::Object(self.values.clone())
    }

    /// `text` with every secret value, in any of the forms `forms` lists (encoded, escaped,
    /// case-changed), replaced by `***`. Every output goes through here: run log rows, messages,
    /// artifacts, and (through `global`) the process's stderr.
    pub fn redact(&self, text: &str) -> String {
        match self.matcher() {
            Some(re) => re.replace_all(text, "***").into_owned(),
            None => text.to_string(),
        }
    }

    /// Whether `text` holds a secret, in any form `redact` masks.
    pub fn reveals(&self, text: &str) -> bool {
        self.matcher().is_some_and(|re| re.is_match(text))
    }

    fn matcher(&self) -> Option<&Regex> {
        self.matcher
            .get_or_init(|| {
                let values = self.values.values().filter_map(Value::as_str).chain(self.masked_only.iter().map(String::as_str));
                forms::matcher(values)
            })
            .as_ref()
    }

    /// A JSON value with every string passed through `redact`.
    pub fn redact_value(&self, v: &Value) -> Value {
        if self.values.is_empty() && self.masked_only.is_empty() {
            return v.clone();
        }
        match v {
            Value::String(s) => Value::String(self.redact(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.redact_value(x)).collect()),
            Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), self.redact_value(x))).collect()),
            other => other.clone(),
        }
    }
}

/// `%XX` escapes of a URL part as the bytes they stand for.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_values_everywhere() {
        let s = Secrets::from_env(&["PW".into()], |_| Some("hunter22".into())).unwrap();
        assert_eq!(s.redact("login failed for pw hunter22!"), "login failed for pw ***!");
        let v = serde_json::json!({"a": ["x hunter22"]});
        assert_eq!(s.redact_value(&v), serde_json::json!({"a": ["x ***"]}));
    }

    #[test]
    fn config_named_secrets_are_masked_but_not_in_templates() {
        let mut s = Secrets::from_env(&[], |_| None).unwrap();
        let config = crate::config::Config { smtp_password_secret: Some("SMTP_PW".into()), ..Default::default() };
        s.mask_config_secrets(&config, |k| (k == "SMTP_PW").then(|| "mail-pass-1".into()));
        assert_eq!(s.redact("535 auth failed for mail-pass-1"), "535 auth failed for ***");
        assert_eq!(s.as_value(), serde_json::json!({}));
        let smtp_url = crate::config::SmtpSettings::parse("smtp://bot:url-pass-2@mail.x.com").ok();
        let config = crate::config::Config { smtp_url, ..Default::default() };
        s.mask_config_secrets(&config, |_| None);
        assert_eq!(s.redact("login url-pass-2 refused"), "login *** refused");
        let config = crate::config::Config { webdriver_url: Some("http://bot:gr%21d-pass-3@grid:4444".into()), ..Default::default() };
        s.mask_config_secrets(&config, |_| None);
        assert_eq!(s.redact("pool for bot:gr%21d-pass-3@grid:4444"), "pool for bot:***@grid:4444");
        assert_eq!(s.redact("gr!d-pass-3"), "***");
    }

    #[test]
    fn missing_secret_names_it_without_value() {
        let e = Secrets::from_env(&["PW".into()], |_| None).unwrap_err();
        assert!(e.to_string().starts_with("secret `PW` is not set"));
    }
}
