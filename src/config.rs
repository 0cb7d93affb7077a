//! Project configuration: `cxflow.yaml` in the project folder, each key overridable by the
//! environment variable `CXFLOW_<KEY>`, and embedded defaults so nothing is required.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::spec::Diagnostic;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The run log. SQLite, created if missing.
    pub database_url: String,
    pub workflows_dir: PathBuf,
    pub templates_dir: PathBuf,
    /// Where emails go as .eml files when no `smtp_url` is set.
    pub outbox_dir: PathBuf,
    /// Where steps keep files they produce (screenshots, page HTML, digests), one folder per run.
    pub artifacts_dir: PathBuf,
    /// `smtp://host:port`, `smtps://host:port`; `?tls=required|opportunistic` for STARTTLS.
    pub smtp_url: Option<String>,
    /// Name of the secret (environment variable) that holds the SMTP user, if the server needs login.
    pub smtp_user_secret: Option<String>,
    /// Name of the secret (environment variable) that holds the SMTP password.
    pub smtp_password_secret: Option<String>,
    pub smtp_from: String,
    /// Messages per second at most; unset means no limit.
    pub smtp_rate_limit: Option<f64>,
    pub smtp_pool_size: usize,
    /// A WebDriver server to use instead of starting chromedriver (e.g. a Selenium Grid).
    pub webdriver_url: Option<String>,
    /// chromedriver binary (default: found on PATH).
    pub chromedriver: Option<PathBuf>,
    /// Chromium binary (default: chromedriver's choice).
    pub chromium: Option<PathBuf>,
    /// How long items in flight may take to finish after Ctrl-C or SIGTERM.
    pub shutdown_grace: String,
    /// `cxflow serve`: most runs at once over all workflows (unset: no limit).
    pub max_concurrent_runs: Option<usize>,
    /// Retention for every workflow (a workflow's `schedule.retention` overrides it): runs older
    /// than this many days are deleted by the nightly prune and `cxflow prune`.
    pub retention_days: Option<u32>,
    /// Retention: keep at most this many runs per workflow.
    pub retention_runs: Option<u32>,
    /// When `cxflow serve` prunes (cron, UTC).
    pub prune_cron: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "sqlite://cxflow.sqlite".into(),
            workflows_dir: "workflows".into(),
            templates_dir: "templates".into(),
            outbox_dir: "outbox".into(),
            artifacts_dir: "artifacts".into(),
            smtp_url: None,
            smtp_user_secret: None,
            smtp_password_secret: None,
            smtp_from: "cxflow <cxflow@localhost>".into(),
            smtp_rate_limit: None,
            smtp_pool_size: 4,
            webdriver_url: None,
            chromedriver: None,
            chromium: None,
            shutdown_grace: "30s".into(),
            max_concurrent_runs: None,
            retention_days: None,
            retention_runs: None,
            prune_cron: "17 3 * * *".into(),
        }
    }
}

pub const FILE_NAME: &str = "cxflow.yaml";

impl Config {
    /// Load `cxflow.yaml` from `project` (if present) and apply `CXFLOW_*` overrides from `env`.
    pub fn load(project: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Config, Diagnostic> {
        let file = project.join(FILE_NAME);
        let help = Some(format!("fix `{}`", file.display()));
        let mut map = match std::fs::read_to_string(&file) {
            Ok(src) if !src.trim().is_empty() => {
                // Typed from the text, not from a Value: only the text knows the line of a wrong type.
                if let Err(e) = serde_yaml::from_str::<Config>(&src) {
                    return Err(yaml_error(&file, &src, &e).with_help(help));
                }
                serde_yaml::from_str::<serde_yaml::Mapping>(&src).map_err(|e| yaml_error(&file, &src, &e))?
            }
            _ => serde_yaml::Mapping::new(),
        };
        let schema = serde_json::to_value(schemars::schema_for!(Config)).expect("schema serializes");
        let known = serde_json::to_value(Config::default()).expect("config serializes");
        for key in known.as_object().expect("config is a map").keys() {
            let var = format!("CXFLOW_{}", key.to_uppercase());
            if let Some(v) = env(&var) {
                // An empty value unsets the key. Text keys take the value as written (a folder
                // named `2024` stays a string); others parse as a YAML scalar so numbers stay numbers.
                let value = if v.is_empty() {
                    serde_yaml::Value::Null
                } else if takes_text(&schema, key) {
                    serde_yaml::Value::String(v.clone())
                } else {
                    serde_yaml::from_str(&v).unwrap_or(serde_yaml::Value::String(v.clone()))
                };
                // Checked on its own, so that the error names the variable, not a line of cxflow.yaml.
                let mut one = serde_yaml::Mapping::new();
                one.insert(serde_yaml::Value::String(key.clone()), value.clone());
                if let Err(e) = serde_yaml::from_value::<Config>(serde_yaml::Value::Mapping(one)) {
                    let src = format!("{var}={v}");
                    let msg = e.to_string();
                    let msg = msg.split(" at line ").next().unwrap_or(&msg);
                    let at = Path::new("(environment)");
                    return Err(Diagnostic::new(at, 1, var.len() + 2, format!("invalid configuration: {var}: {msg}"))
                        .with_source(&src)
                        .with_help(Some(format!("fix or unset the environment variable {var}"))));
                }
                map.insert(serde_yaml::Value::String(key.clone()), value);
            }
        }
        let src = serde_yaml::to_string(&map).unwrap_or_default();
        serde_yaml::from_value::<Config>(serde_yaml::Value::Mapping(map)).map_err(|e| {
            let mut d = yaml_error(&file, &src, &e);
            d.help = Some(format!("fix `{}` or the matching CXFLOW_* environment variable", file.display()));
            d
        })
    }

    /// Resolve a configured path against the project folder.
    pub fn path(&self, project: &Path, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            project.join(p)
        }
    }
}

/// Does the configuration key `key` hold text (a URL, a path, a name), per the JSON Schema?
fn takes_text(schema: &serde_json::Value, key: &str) -> bool {
    match &schema["properties"][key]["type"] {
        serde_json::Value::String(t) => t == "string",
        serde_json::Value::Array(ts) => ts.iter().any(|t| t == "string"),
        _ => false,
    }
}

fn yaml_error(file: &Path, src: &str, e: &serde_yaml::Error) -> Diagnostic {
    let (line, col) = e.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
    let msg = e.to_string();
    let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
    Diagnostic::new(file, line, col, format!("invalid configuration: {msg}")).with_source(src)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_file_and_env_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::load(dir.path(), |_| None).unwrap();
        assert_eq!(c.database_url, "sqlite://cxflow.sqlite");
        let c = Config::load(dir.path(), |k| (k == "CXFLOW_SMTP_POOL_SIZE").then(|| "9".into())).unwrap();
        assert_eq!(c.smtp_pool_size, 9);
    }

    #[test]
    fn wrong_type_in_file_points_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "database_url: sqlite://x.db\nsmtp_pool_size: lots\n").unwrap();
        let e = Config::load(dir.path(), |_| None).unwrap_err();
        assert_eq!((e.line, e.col), (2, 17), "{e}");
        assert!(e.message.contains("smtp_pool_size") || e.message.contains("\"lots\""), "{}", e.message);
    }

    #[test]
    fn env_values_of_text_keys_stay_text_and_bad_ones_name_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let env = |k: &str| match k {
            "CXFLOW_WORKFLOWS_DIR" => Some("2024".to_string()),
            "CXFLOW_SMTP_FROM" => Some("true".to_string()),
            _ => None,
        };
        let c = Config::load(dir.path(), env).unwrap();
        assert_eq!(c.workflows_dir, PathBuf::from("2024"));
        assert_eq!(c.smtp_from, "true");
        let e = Config::load(dir.path(), |k| (k == "CXFLOW_SMTP_POOL_SIZE").then(|| "abc".into())).unwrap_err();
        assert!(e.message.contains("CXFLOW_SMTP_POOL_SIZE"), "{e}");
        assert!(!e.to_string().contains(FILE_NAME), "{e}");
    }

    #[test]
    fn unknown_key_in_file_is_positioned() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "database_url: sqlite://x.db\nsmtp_ulr: smtp://a\n").unwrap();
        let e = Config::load(dir.path(), |_| None).unwrap_err();
        assert!(e.message.contains("unknown field `smtp_ulr`"), "{}", e.message);
    }
}
