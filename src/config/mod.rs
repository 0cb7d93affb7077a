//! Project settings: `cxflow.yaml` in the project folder, each key overridable by the
//! environment variable `CXFLOW_<KEY>`, and embedded defaults so nothing is required.
//!
//! Read the way workflows are: `spec::config_file` is the file as written (strict serde, positions
//! kept), the environment is laid over it here, and `validate` is the one pass that turns the raw
//! strings into the typed `Config` every layer uses, reporting all problems at once at the line
//! (or the variable) that set them. Built once when a project opens, so `cxflow validate` and
//! `cxflow serve` refuse a bad value before anything runs.

pub mod auth;
pub mod limits;
mod redact;
pub mod smtp_ca;
pub mod smtp_url;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;

pub use self::auth::{ApiToken, Role, User};
pub(crate) use self::redact::redact_url;
pub use self::smtp_ca::SmtpCa;
pub use self::smtp_url::{SmtpSettings, Tls};
use crate::schedule::cron_expr::CronSchedule;
use crate::spec::config_file::{self, ConfigSource};
use crate::spec::{mask, Diagnostic, Diagnostics};

/// Typed settings. Unset keys hold their defaults; relative paths are relative to the project
/// folder (`path` resolves them).
#[derive(Debug, Clone)]
pub struct Config {
    /// The run log URL as written: `sqlite:...` (a file), or `postgres:`/`postgresql:` (a
    /// PostgreSQL database that exists; its tables are created when the run log opens).
    pub database_url: String,
    pub workflows_dir: PathBuf,
    pub templates_dir: PathBuf,
    /// Where emails go as .eml files when no `smtp_url` is set.
    pub outbox_dir: PathBuf,
    /// Where steps keep files they produce (screenshots, page HTML, digests), one folder per run.
    pub artifacts_dir: PathBuf,
    /// The SMTP server, parsed; None sends to `outbox_dir`. The login named by the `*_secret`
    /// keys is filled in when a step opens, from the environment.
    pub smtp_url: Option<SmtpSettings>,
    /// Name of the secret (environment variable) that holds the SMTP user, if the server needs login.
    pub smtp_user_secret: Option<String>,
    /// Name of the secret (environment variable) that holds the SMTP password.
    pub smtp_password_secret: Option<String>,
    /// A private CA for the SMTP server's certificate, read when the settings are built. Also in
    /// `smtp_url`'s settings (`SmtpSettings::ca`), so every sender trusts it.
    pub smtp_ca_file: Option<SmtpCa>,
    /// Default sender of emails and failure notices.
    pub smtp_from: Mailbox,
    /// Messages per second at most (more than 0); None means no limit.
    pub smtp_rate_limit: Option<f64>,
    /// SMTP connections, at least 1.
    pub smtp_pool_size: usize,
    /// A WebDriver server (http:// or https://) to use instead of starting chromedriver.
    pub webdriver_url: Option<String>,
    /// chromedriver binary (default: found on PATH).
    pub chromedriver: Option<PathBuf>,
    /// Chromium binary (default: chromedriver's choice).
    pub chromium: Option<PathBuf>,
    /// How long items in flight may take to finish after Ctrl-C or SIGTERM.
    pub shutdown_grace: Duration,
    /// `cxflow serve`: most runs at once over all workflows, at least 1 (None: no limit).
    pub max_concurrent_runs: Option<usize>,
    /// Items of per-item steps are shared with every node on the (PostgreSQL) run log.
    pub spread_items: bool,
    /// How long a process holds what it claimed after its last heartbeat.
    pub lease: Duration,
    /// Retention for every workflow (a workflow's `schedule.retention` overrides it): runs older
    /// than this many days are deleted by the nightly prune and `cxflow prune`.
    pub retention_days: Option<u32>,
    /// Retention: keep at most this many runs per workflow.
    pub retention_runs: Option<u32>,
    /// When `cxflow serve` prunes (UTC).
    pub prune_cron: CronSchedule,
    /// Largest record the record readers accept, in bytes, at least 1024.
    pub max_record_bytes: usize,
    /// Where the dashboard, the API and /metrics listen; None: `off`, no listener.
    pub http_addr: Option<std::net::SocketAddr>,
    /// People who log in to the dashboard.
    pub users: Vec<User>,
    /// Tokens for scripts, webhooks and Prometheus (only their hashes).
    pub api_tokens: Vec<ApiToken>,
}

impl Config {
    /// Whether anyone must log in: then the dashboard may listen beyond loopback.
    pub fn auth_configured(&self) -> bool {
        !self.users.is_empty() || !self.api_tokens.is_empty()
    }
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
            smtp_ca_file: None,
            smtp_from: "cxflow <cxflow@localhost>".parse().expect("the default sender is a mailbox"),
            smtp_rate_limit: None,
            // Each email holds its connection while its claim is synced (docs/email.md): 8 keeps
            // a loopback or LAN server as busy as 4 did before claims moved to the handover.
            smtp_pool_size: 8,
            webdriver_url: None,
            chromedriver: None,
            chromium: None,
            shutdown_grace: Duration::from_secs(30),
            max_concurrent_runs: None,
            spread_items: false,
            lease: Duration::from_secs(30),
            retention_days: None,
            retention_runs: None,
            prune_cron: CronSchedule::parse("17 3 * * *").expect("the default prune time is a cron expression"),
            // Far above any real feedback row or export line, far below what hurts a small server.
            max_record_bytes: 1 << 20,
            http_addr: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 8080))),
            users: Vec::new(),
            api_tokens: Vec::new(),
        }
    }
}

pub const FILE_NAME: &str = "cxflow.yaml";

/// Where a value given in the environment came from: the variable and its text.
pub(crate) type EnvOrigins = HashMap<String, (String, String)>;

impl Config {
    /// Load `cxflow.yaml` from `project` (if present), apply `CXFLOW_*` overrides from `env`, and
    /// validate everything. Errors point at `cxflow.yaml:LINE:COL` or name the variable.
    pub fn load(project: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Config, Diagnostics> {
        // Shown as the user would type it: `cxflow.yaml` when the project is the current folder.
        let path = if project == Path::new(".") { PathBuf::from(FILE_NAME) } else { project.join(FILE_NAME) };
        let src = match std::fs::read_to_string(&path) {
            Ok(src) => config_file::parse(&path, src)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ConfigSource::empty(&path),
            Err(e) => {
                return Err(Diagnostics(vec![Diagnostic::new(&path, 1, 1, format!("cannot read the configuration file: {e}"))
                    .with_help(Some(format!("make `{}` readable, or remove it to use the defaults", path.display())))]))
            }
        };
        Config::build(&src, env)
    }

    /// Settings from `cxflow.yaml` already read (`src`) and the `CXFLOW_*` variables of `env`.
    pub(crate) fn build(src: &ConfigSource, env: impl Fn(&str) -> Option<String>) -> Result<Config, Diagnostics> {
        let mut raw = src.file.clone();
        let mut from_env = EnvOrigins::new();
        let mut errors = Vec::new();
        for (key, _) in config_file::keys() {
            let var = format!("CXFLOW_{}", key.to_uppercase());
            let Some(value) = env(&var) else { continue };
            match config_file::apply_override(&mut raw, &key, &value) {
                Ok(()) if value.is_empty() => {
                    from_env.remove(&key);
                }
                Ok(()) => {
                    from_env.insert(key, (var, value));
                }
                Err(msg) => errors.push(env_diagnostic(&var, &value, format!("{msg} in `{var}`"), None)),
            }
        }
        if !errors.is_empty() {
            return Err(Diagnostics(errors));
        }
        validate::settings(&raw, src, &from_env, &env)
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

/// An error about the value `value` of the environment variable `var`: the pseudo-file
/// `(environment)` with `VAR=value` as its source line, and a help that says how to undo it.
pub(crate) fn env_diagnostic(var: &str, value: &str, message: String, help: Option<String>) -> Diagnostic {
    let help = match help {
        Some(h) => format!("{h}, or unset {var}"),
        None => format!("fix or unset the environment variable {var}"),
    };
    let d =
        Diagnostic::new(Path::new("(environment)"), 1, var.len() + 2, message).with_source(&format!("{var}={value}")).with_help(Some(help));
    mask::diagnostic(d)
}
