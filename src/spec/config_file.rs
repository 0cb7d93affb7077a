//! `cxflow.yaml` as written: plain serde types with positions kept, read like a workflow file.
//! Every key is optional (unset means the default). `crate::config` lays the `CXFLOW_<KEY>`
//! environment over it and turns it into typed settings in one validation pass.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{mask, Diagnostic, Diagnostics, Positions};

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The run log: `sqlite://cxflow.sqlite` (a file in the project folder, created if missing), or
    /// `postgres://user@host/database` (an existing PostgreSQL database).
    pub database_url: Option<String>,
    pub workflows_dir: Option<PathBuf>,
    pub templates_dir: Option<PathBuf>,
    /// Where emails go as .eml files when no `smtp_url` is set.
    pub outbox_dir: Option<PathBuf>,
    /// Where steps keep files they produce (screenshots, page HTML, digests), one folder per run.
    pub artifacts_dir: Option<PathBuf>,
    /// `smtp://host:port`, `smtps://host:port`; `?tls=required|opportunistic|none`, `timeout=30s`.
    pub smtp_url: Option<String>,
    /// Name of the secret (environment variable) that holds the SMTP user, if the server needs login.
    pub smtp_user_secret: Option<String>,
    /// Name of the secret (environment variable) that holds the SMTP password.
    pub smtp_password_secret: Option<String>,
    /// PEM file of a private CA the SMTP server's certificate may chain to (relative to the
    /// project folder), trusted besides the public roots.
    pub smtp_ca_file: Option<PathBuf>,
    /// Default sender: `Name <address>` or a bare address.
    pub smtp_from: Option<String>,
    /// Messages per second at most; unset means no limit.
    pub smtp_rate_limit: Option<f64>,
    /// SMTP connections kept open (default 4).
    pub smtp_pool_size: Option<usize>,
    /// A WebDriver server to use instead of starting chromedriver (e.g. a Selenium Grid).
    pub webdriver_url: Option<String>,
    /// chromedriver binary (default: found on PATH).
    pub chromedriver: Option<PathBuf>,
    /// Chromium binary (default: chromedriver's choice).
    pub chromium: Option<PathBuf>,
    /// How long items in flight may take to finish after Ctrl-C or SIGTERM (default `30s`).
    pub shutdown_grace: Option<String>,
    /// `cxflow serve`: most runs at once over all workflows (unset: no limit).
    pub max_concurrent_runs: Option<usize>,
    /// Spread the items of per-item steps over every node on the run log (`cxflow serve`,
    /// `cxflow worker`); PostgreSQL only (docs/scaling.md). Default false.
    pub spread_items: Option<bool>,
    /// How long a process counts as alive after its last heartbeat, and holds the runs, items
    /// and deliveries it claimed (default `30s`, from `5s` to `10m`; docs/scaling.md).
    pub lease: Option<String>,
    /// Retention for every workflow (a workflow's `schedule.retention` overrides it): runs older
    /// than this many days are deleted by the nightly prune and `cxflow prune`.
    pub retention_days: Option<u32>,
    /// Retention: keep at most this many runs per workflow.
    pub retention_runs: Option<u32>,
    /// When `cxflow serve` prunes (cron, UTC; default `17 3 * * *`).
    pub prune_cron: Option<String>,
    /// Largest record `read_csv`, `read_json` and `route` read, in bytes (default 1048576, 1 MiB):
    /// a larger one fails that item and is never held in memory.
    pub max_record_bytes: Option<usize>,
    /// Where `cxflow serve` and `cxflow ui` serve the dashboard, the API and /metrics:
    /// `host:port` (default `127.0.0.1:8080`; port 0 picks a free one), or `off`.
    pub http_addr: Option<String>,
    /// People who log in to the dashboard, each with a role and an argon2 password hash printed
    /// by `cxflow hash-password` (docs/dashboard.md, "Who may do what").
    pub users: Option<Vec<UserEntry>>,
    /// Tokens for scripts, webhooks and Prometheus (`Authorization: Bearer ...`); each token's
    /// value comes from the environment variable `env`.
    pub api_tokens: Option<Vec<TokenEntry>>,
}

/// One entry of `users:`.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
    /// `$argon2id$v=19$...`, as printed by `cxflow hash-password`.
    pub password_hash: String,
}

/// One entry of `api_tokens:`.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
    /// The environment variable that holds the token (at least 24 characters).
    pub env: String,
}

/// `cxflow.yaml` read and deserialized, with what is needed to point into it.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    /// The path as shown in errors (`cxflow.yaml` when the project is the current folder).
    pub path: PathBuf,
    pub source: String,
    pub file: ConfigFile,
    pub positions: Positions,
}

impl ConfigSource {
    /// No file: every key unset.
    pub fn empty(path: &Path) -> ConfigSource {
        ConfigSource { path: path.to_path_buf(), source: String::new(), file: ConfigFile::default(), positions: Positions::default() }
    }

    /// A diagnostic pointing at the value of `key`, with the source line (passwords masked).
    pub fn diagnostic(&self, key: &str, message: impl Into<String>) -> Diagnostic {
        let (line, col) = self.positions.value(key);
        mask::diagnostic(Diagnostic::new(&self.path, line, col, message).with_source(&self.source))
    }
}

/// Deserialize `source`, the text of `cxflow.yaml` read from `path`. Unknown keys, repeated keys,
/// wrong types and YAML syntax errors come back positioned, with URL passwords masked.
pub fn parse(path: &Path, source: String) -> Result<ConfigSource, Diagnostics> {
    let source = super::document::strip_bom(source);
    // An empty file (or only comments) is no configuration, not a YAML error.
    if source.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
        return Ok(ConfigSource { source, ..ConfigSource::empty(path) });
    }
    match super::document::read::<ConfigFile>(path, &source) {
        Ok(doc) => Ok(ConfigSource { path: path.to_path_buf(), source, file: doc.value, positions: doc.positions }),
        Err(ds) => Err(Diagnostics(ds.0.into_iter().map(mask::diagnostic).collect())),
    }
}

/// Every key of `cxflow.yaml`, sorted, with whether it holds text (a URL, a path, a name).
pub fn keys() -> Vec<(String, bool)> {
    let schema = serde_json::to_value(schemars::schema_for!(ConfigFile)).expect("a JSON schema always serializes");
    let props = schema["properties"].as_object().cloned().unwrap_or_default();
    props
        .into_iter()
        .map(|(k, p)| {
            let text = match &p["type"] {
                serde_json::Value::String(t) => t == "string",
                serde_json::Value::Array(ts) => ts.iter().any(|t| t == "string"),
                _ => false,
            };
            (k, text)
        })
        .collect()
}

/// Lays `text`, the value of an environment variable, over `key` of `file`. An empty value unsets
/// the key. Text keys take the value as written (a folder named `2024` stays a string); others
/// parse as a YAML scalar so numbers stay numbers. The error is serde's, about this value alone.
pub fn apply_override(file: &mut ConfigFile, key: &str, text: &str) -> Result<(), String> {
    use serde_json::Value;
    let takes_text = keys().into_iter().any(|(k, t)| k == key && t);
    let value = if text.is_empty() {
        Value::Null
    } else if takes_text {
        Value::String(text.to_string())
    } else {
        serde_saphyr::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.to_string()))
    };
    let clean = |e: serde_json::Error| {
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg);
        super::serde_error::readable_expected(msg.strip_prefix(&format!("{key}: ")).unwrap_or(msg)).0
    };
    // Checked on its own first, so the error is about this value and not about the whole file.
    let one = serde_json::json!({ key: value.clone() });
    serde_json::from_value::<ConfigFile>(one).map_err(clean)?;
    let mut all = match serde_json::to_value(&*file) {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    all.insert(key.to_string(), value);
    *file = serde_json::from_value(Value::Object(all)).map_err(clean)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_error(src: &str) -> String {
        parse(Path::new("cxflow.yaml"), src.to_string()).unwrap_err().0[0].to_string()
    }

    #[test]
    fn reads_keys_and_tolerates_an_empty_file() {
        let c = parse(Path::new("cxflow.yaml"), "# nothing yet\n".into()).unwrap();
        assert_eq!(c.file, ConfigFile::default());
        let c = parse(Path::new("cxflow.yaml"), "smtp_pool_size: 2\nprune_cron: '@daily'\n".into()).unwrap();
        assert_eq!((c.file.smtp_pool_size, c.file.prune_cron.as_deref()), (Some(2), Some("@daily")));
        assert_eq!(c.positions.value("prune_cron"), (2, 13));
    }

    #[test]
    fn unknown_key_is_positioned_with_a_suggestion() {
        assert_eq!(
            first_error("database_url: sqlite://x.db\nsmtp_ulr: smtp://a\n"),
            "error: unknown field `smtp_ulr`\n  --> cxflow.yaml:2:1\n  |\n2 | smtp_ulr: smtp://a\n  | ^\n  = help: did you mean `smtp_url`?"
        );
    }

    #[test]
    fn wrong_type_is_positioned() {
        assert_eq!(
            first_error("database_url: sqlite://x.db\nsmtp_pool_size: lots\n"),
            "error: invalid type: string \"lots\", expected a whole number in `smtp_pool_size`\n  --> cxflow.yaml:2:17\n  |\n2 | smtp_pool_size: lots\n  |                 ^\n  = help: write digits without quotes, like `4`"
        );
    }

    #[test]
    fn a_wrong_type_never_shows_a_url_password() {
        let e = first_error("smtp_url: [smtp://bot:pa55word@mail.x.com]\n");
        assert!(!e.contains("pa55word"), "{e}");
        assert!(e.contains("2 | smtp_url: [smtp://bot:***@mail.x.com]") || e.contains("1 | smtp_url: [smtp://bot:***@mail.x.com]"), "{e}");
        let e = first_error("smtp_pool_size: smtp://bot:pa55word@mail.x.com\n");
        assert!(!e.contains("pa55word"), "{e}");
    }

    #[test]
    fn repeated_key_is_reported_where_it_repeats() {
        assert_eq!(
            first_error("smtp_pool_size: 2\nsmtp_pool_size: 3\n"),
            "error: duplicate key `smtp_pool_size` (first on line 1)\n  --> cxflow.yaml:2:1\n  |\n2 | smtp_pool_size: 3\n  | ^\n  = help: keep one of them: a key can appear only once in a mapping"
        );
    }

    #[test]
    fn overrides_keep_text_text_and_numbers_numbers() {
        let mut f = ConfigFile { smtp_pool_size: Some(2), ..Default::default() };
        apply_override(&mut f, "workflows_dir", "2024").unwrap();
        apply_override(&mut f, "smtp_rate_limit", "0.5").unwrap();
        assert_eq!((f.workflows_dir.clone(), f.smtp_rate_limit, f.smtp_pool_size), (Some(PathBuf::from("2024")), Some(0.5), Some(2)));
        apply_override(&mut f, "smtp_pool_size", "").unwrap();
        assert_eq!(f.smtp_pool_size, None);
        assert_eq!(apply_override(&mut f, "smtp_pool_size", "abc").unwrap_err(), "invalid type: string \"abc\", expected a whole number");
    }
}
