//! YAML shape of a `send_email` step. Plain serde; every semantic check happens in `plan`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SendEmailSpec {
    /// Recipient(s), Handlebars-templated: `"{{item.name}} <{{item.email}}>"`.
    pub to: OneOrMany,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cc: Option<OneOrMany>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bcc: Option<OneOrMany>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Sender; defaults to the `smtp_from` configuration key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub subject: String,
    /// Name of the template pair `templates/<name>.html.hbs` / `templates/<name>.txt.hbs`.
    pub template: String,
    /// Ledger key that makes delivery exactly-once; default `<workflow>/<item key>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Files to attach; paths are templated and relative to the project folder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<String>,
    /// Extra headers (`X-Campaign: follow-up`); values are templated.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// What to do with a key a crashed run left in "sending": we cannot know if the server got it.
    #[serde(default)]
    pub uncertain: Uncertain,
    /// Messages per second over the whole step; overrides `smtp_rate_limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn as_slice(&self) -> &[String] {
        match self {
            OneOrMany::One(s) => std::slice::from_ref(s),
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Uncertain {
    /// Never risk a duplicate: fail the item as uncertain and do not send until a person
    /// decides (`cxflow resolve`).
    #[default]
    Skip,
    /// Never risk a missing email: send again.
    Resend,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_issue_example() {
        let y = r#"
to: "{{item.name}} <{{item.email}}>"
subject: "How did we do on ticket {{item.ticket_id}}?"
template: follow_up
idempotency_key: "follow-up/{{item.ticket_id}}"
attachments: []
"#;
        let s: SendEmailSpec = serde_saphyr::from_str(y).unwrap();
        assert_eq!(s.to.as_slice().len(), 1);
        assert_eq!(s.uncertain, Uncertain::Skip);
        assert!(s.attachments.is_empty());
    }

    #[test]
    fn rejects_unknown_fields_and_lists_work() {
        let bad = "to: a@b.c\nsubject: s\ntemplate: t\nsubjet: x\n";
        assert!(serde_saphyr::from_str::<SendEmailSpec>(bad).is_err());
        let ok = "to: [a@b.c, d@e.f]\ncc: x@y.z\nsubject: s\ntemplate: t\nuncertain: resend\nheaders: {X-A: b}\n";
        let s: SendEmailSpec = serde_saphyr::from_str(ok).unwrap();
        assert_eq!(s.to.as_slice().len(), 2);
        assert_eq!(s.uncertain, Uncertain::Resend);
    }
}
