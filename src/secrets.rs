//! Secret values named by a workflow and read from the environment. They are handed to
//! templates but must never be written anywhere a person or a file can read them.

use serde_json::{Map, Value};

#[derive(Debug, Default, Clone)]
pub struct Secrets {
    values: Map<String, Value>,
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
        Ok(Secrets { values })
    }

    /// Placeholder values, for validating and dry-running without the real secrets.
    pub fn placeholders(names: &[String]) -> Secrets {
        let values = names.iter().map(|n| (n.clone(), Value::String(format!("<secret {n}>")))).collect();
        Secrets { values }
    }

    pub fn as_value(&self) -> Value {
        Value::Object(self.values.clone())
    }

    /// `text` with every secret value replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in self.values.values() {
            if let Value::String(s) = v {
                // Very short values would mask ordinary text everywhere; they are weak secrets anyway.
                if s.len() >= 3 && out.contains(s.as_str()) {
                    out = out.replace(s.as_str(), "***");
                }
            }
        }
        out
    }

    /// A JSON value with every string passed through `redact`.
    pub fn redact_value(&self, v: &Value) -> Value {
        if self.values.is_empty() {
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
    fn missing_secret_names_it_without_value() {
        let e = Secrets::from_env(&["PW".into()], |_| None).unwrap_err();
        assert!(e.to_string().starts_with("secret `PW` is not set"));
    }
}
