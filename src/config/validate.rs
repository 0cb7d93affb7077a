//! The one validation pass: the raw values of `cxflow.yaml` (with the `CXFLOW_*` overrides laid
//! over them) become typed settings, or every problem comes back at once, each at the line of
//! `cxflow.yaml` or the environment variable that set it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;

use super::limits::{self, MAX_POOL_SIZE, MAX_SHUTDOWN_GRACE};
use super::{env_diagnostic, Config, EnvOrigins, SmtpCa, SmtpSettings, Tls};
use crate::schedule::cron_expr::CronSchedule;
use crate::spec::config_file::{ConfigFile, ConfigSource};
use crate::spec::{mask, Diagnostic, Diagnostics};

/// What is wrong with one value, said without naming the key (the pass adds the key or variable).
struct Problem {
    message: String,
    help: Option<String>,
    /// The value may be a secret pasted where its name belongs: never quote it.
    hide_value: bool,
}

fn problem(message: impl Into<String>, help: &str) -> Problem {
    Problem { message: message.into(), help: Some(help.to_string()), hide_value: false }
}

struct Pass<'a> {
    file: &'a ConfigSource,
    env: &'a EnvOrigins,
    errors: Vec<Diagnostic>,
}

impl Pass<'_> {
    /// `check(raw)` when the key is set; None when it is unset or wrong (the error is kept).
    fn field<R: ?Sized, T>(&mut self, key: &str, raw: Option<&R>, check: impl FnOnce(&R) -> Result<T, Problem>) -> Option<T> {
        let p = match check(raw?) {
            Ok(v) => return Some(v),
            Err(p) => p,
        };
        let d = match self.env.get(key) {
            Some((var, value)) => {
                let shown = if p.hide_value { "***" } else { value.as_str() };
                env_diagnostic(var, shown, format!("`{var}`: {}", p.message), p.help)
            }
            None => {
                let mut d = self.file.diagnostic(key, format!("`{key}`: {}", p.message)).with_help(p.help);
                if p.hide_value {
                    d.source_line = d.source_line.map(|l| hide_after(&l, d.col));
                }
                mask::diagnostic(d)
            }
        };
        self.errors.push(d);
        None
    }
}

/// `line` with everything from the 1-based column `col` on replaced by `***`.
fn hide_after(line: &str, col: usize) -> String {
    let head: String = line.chars().take(col.saturating_sub(1)).collect();
    format!("{head}***")
}

pub(super) fn settings(
    raw: &ConfigFile,
    file: &ConfigSource,
    env: &EnvOrigins,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Diagnostics> {
    let d = Config::default();
    // Paths in the settings are relative to the project folder, where `cxflow.yaml` is.
    let project = file.path.parent().unwrap_or(Path::new(""));
    let mut p = Pass { file, env, errors: Vec::new() };
    let mut config = Config {
        database_url: p.field("database_url", raw.database_url.as_deref(), database_url).unwrap_or(d.database_url),
        workflows_dir: p.field("workflows_dir", raw.workflows_dir.as_deref(), folder).unwrap_or(d.workflows_dir),
        templates_dir: p.field("templates_dir", raw.templates_dir.as_deref(), folder).unwrap_or(d.templates_dir),
        outbox_dir: p.field("outbox_dir", raw.outbox_dir.as_deref(), folder).unwrap_or(d.outbox_dir),
        artifacts_dir: p.field("artifacts_dir", raw.artifacts_dir.as_deref(), folder).unwrap_or(d.artifacts_dir),
        smtp_url: p.field("smtp_url", raw.smtp_url.as_deref(), smtp_url).flatten(),
        smtp_user_secret: p.field("smtp_user_secret", raw.smtp_user_secret.as_deref(), secret_name),
        smtp_password_secret: p.field("smtp_password_secret", raw.smtp_password_secret.as_deref(), secret_name),
        smtp_ca_file: p.field("smtp_ca_file", raw.smtp_ca_file.as_deref(), |f| ca_file(project, f)),
        smtp_from: p.field("smtp_from", raw.smtp_from.as_deref(), mailbox).unwrap_or(d.smtp_from),
        smtp_rate_limit: p.field("smtp_rate_limit", raw.smtp_rate_limit.as_ref(), rate),
        smtp_pool_size: p.field("smtp_pool_size", raw.smtp_pool_size.as_ref(), pool_size).unwrap_or(d.smtp_pool_size),
        webdriver_url: p.field("webdriver_url", raw.webdriver_url.as_deref(), webdriver_url),
        chromedriver: p.field("chromedriver", raw.chromedriver.as_deref(), program),
        chromium: p.field("chromium", raw.chromium.as_deref(), program),
        shutdown_grace: p.field("shutdown_grace", raw.shutdown_grace.as_deref(), grace).unwrap_or(d.shutdown_grace),
        max_concurrent_runs: p.field("max_concurrent_runs", raw.max_concurrent_runs.as_ref(), max_runs),
        spread_items: raw.spread_items.unwrap_or(false),
        lease: p.field("lease", raw.lease.as_deref(), lease).unwrap_or(d.lease),
        retention_days: p.field("retention_days", raw.retention_days.as_ref(), retention_days),
        retention_runs: raw.retention_runs,
        prune_cron: p.field("prune_cron", raw.prune_cron.as_deref(), cron).unwrap_or(d.prune_cron),
        max_record_bytes: p.field("max_record_bytes", raw.max_record_bytes.as_ref(), record_bytes).unwrap_or(d.max_record_bytes),
        http_addr: p.field("http_addr", raw.http_addr.as_deref(), http_addr).unwrap_or(d.http_addr),
        users: Vec::new(),
        api_tokens: Vec::new(),
    };
    (config.users, config.api_tokens) = super::auth::check(
        raw.users.as_deref().unwrap_or_default(),
        raw.api_tokens.as_deref().unwrap_or_default(),
        file,
        vars,
        &mut p.errors,
    );
    if let Some(s) = &mut config.smtp_url {
        s.ca = config.smtp_ca_file.clone();
        let login = s.password.is_some() || config.smtp_password_secret.is_some();
        if s.tls == Tls::None && login && !s.is_loopback() {
            let host = s.host.clone();
            p.field("smtp_url", Some(&()), |_| Err::<(), _>(plain_login(&host)));
        }
    }
    if config.spread_items && !["postgres:", "postgresql:"].iter().any(|s| config.database_url.starts_with(s)) {
        p.field("spread_items", Some(&()), |_| {
            Err::<(), _>(problem(
                "items are spread over nodes only on a PostgreSQL run log",
                "set `database_url: postgres://…` (docs/scaling.md), or remove `spread_items`",
            ))
        });
    }
    if p.errors.is_empty() {
        return Ok(config);
    }
    // File order, then the environment's.
    p.errors.sort_by_key(|e| (e.file == Path::new("(environment)"), e.line, e.col));
    Err(Diagnostics(p.errors))
}

fn database_url(s: &str) -> Result<String, Problem> {
    if ["sqlite:", "postgres:", "postgresql:"].iter().any(|p| s.starts_with(p)) {
        return Ok(s.to_string());
    }
    Err(problem(
        format!("`{s}` is not a SQLite or PostgreSQL URL"),
        "write it like `sqlite://cxflow.sqlite` (a file in the project folder) or `postgres://user@host/database` (docs/postgres.md)",
    ))
}

fn folder(p: &Path) -> Result<PathBuf, Problem> {
    if p.as_os_str().is_empty() {
        return Err(problem("the folder is empty", "give a folder (relative to the project folder), or remove the key for the default"));
    }
    Ok(p.to_path_buf())
}

fn program(p: &Path) -> Result<PathBuf, Problem> {
    if p.as_os_str().is_empty() {
        return Err(problem("the path is empty", "give the program's path, or remove the key to find it on PATH"));
    }
    Ok(p.to_path_buf())
}

/// An empty `smtp_url` means none: the outbox.
fn smtp_url(s: &str) -> Result<Option<SmtpSettings>, Problem> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    SmtpSettings::parse(s)
        .map(Some)
        .map_err(|e| problem(e, "write it like `smtp://mail.example.com:587?tls=required` or `smtps://mail.example.com` (docs/email.md)"))
}

fn ca_file(project: &Path, f: &Path) -> Result<SmtpCa, Problem> {
    const HELP: &str = "give the PEM file of the CA that signed the mail server's certificate (relative to the project folder)";
    if f.as_os_str().is_empty() {
        return Err(problem("the path is empty", HELP));
    }
    SmtpCa::read(f, &project.join(f)).map_err(|e| problem(e, HELP))
}

/// A login over `tls=none` puts the password on the wire in clear: only this machine may see it.
fn plain_login(host: &str) -> Problem {
    problem(
        format!("`tls=none` with a login would send the SMTP password unencrypted to `{host}`"),
        "use `tls=required` (STARTTLS) or `smtps://`; `tls=none` with a login is accepted only for a server on this machine (127.0.0.1, localhost)",
    )
}

fn secret_name(s: &str) -> Result<String, Problem> {
    let mut chars = s.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        return Ok(s.to_string());
    }
    Err(Problem {
        message: "the value is not the name of an environment variable".into(),
        help: Some("give the name of the variable that holds the value (like `SMTP_PASSWORD`), not the value itself".into()),
        hide_value: true,
    })
}

fn mailbox(s: &str) -> Result<Mailbox, Problem> {
    // lettre's reason ("Invalid input") adds nothing to the example in the help.
    s.trim()
        .parse()
        .map_err(|_| problem(format!("`{s}` is not a mailbox"), "write it like `Customer Care <care@example.com>` or `care@example.com`"))
}

fn rate(r: &f64) -> Result<f64, Problem> {
    match limits::rate_problem(*r) {
        None => Ok(*r),
        Some(m) => Err(problem(m, "remove it for no limit, or give a rate like `5` or `0.5`")),
    }
}

fn pool_size(n: &usize) -> Result<usize, Problem> {
    if *n > MAX_POOL_SIZE {
        return Err(problem(format!("`{n}` connections is more than {MAX_POOL_SIZE}"), "remove it for the default of 8 connections"));
    }
    if *n >= 1 {
        return Ok(*n);
    }
    Err(problem("must be at least 1 connection, not `0`", "remove it for the default of 8 connections"))
}

fn retention_days(n: &u32) -> Result<u32, Problem> {
    match limits::retention_days_problem(*n) {
        None => Ok(*n),
        Some(m) => Err(problem(m, "give the days to keep runs, like `90`, or remove it to keep them all")),
    }
}

fn grace(s: &str) -> Result<Duration, Problem> {
    let d = duration(s)?;
    if d > MAX_SHUTDOWN_GRACE {
        return Err(problem(format!("`{s}` is longer than the longest grace period, 24h"), "write it like `30s` or `5m`"));
    }
    Ok(d)
}

/// Shorter, a busy machine's missed heartbeats lose claims of a process that lives; longer, a
/// dead node's work waits that long.
fn lease(s: &str) -> Result<Duration, Problem> {
    let d = duration(s)?;
    if !(Duration::from_secs(5)..=Duration::from_secs(600)).contains(&d) {
        return Err(problem(
            format!("`{s}` is outside 5s to 10m"),
            "leave it out for 30s; docs/scaling.md, \"Sizing the lease\", says how to choose",
        ));
    }
    Ok(d)
}

fn webdriver_url(s: &str) -> Result<String, Problem> {
    match url::Url::parse(s.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(s.trim().to_string()),
        _ => Err(problem(format!("`{s}` is not an http:// or https:// URL"), "write it like `http://127.0.0.1:4444`")),
    }
}

fn duration(s: &str) -> Result<Duration, Problem> {
    humantime::parse_duration(s.trim())
        .map_err(|e| problem(format!("`{s}` is not a duration ({e})"), "write it like `30s`, `5m` or `1h 30m`"))
}

fn max_runs(n: &usize) -> Result<usize, Problem> {
    if *n >= 1 {
        return Ok(*n);
    }
    Err(problem("must be at least 1, not `0`", "remove it for no limit"))
}

fn record_bytes(n: &usize) -> Result<usize, Problem> {
    if *n >= 1024 {
        return Ok(*n);
    }
    Err(problem(format!("must be at least 1024 bytes, not `{n}`"), "remove it for the default of 1048576 (1 MiB)"))
}

fn http_addr(s: &str) -> Result<Option<std::net::SocketAddr>, Problem> {
    let s = s.trim();
    if s == "off" {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| {
        problem(
            format!("`{s}` is not an address and port"),
            "write it like `127.0.0.1:8080` (an IP address, not a host name), or `off` for no dashboard",
        )
    })
}

fn cron(s: &str) -> Result<CronSchedule, Problem> {
    CronSchedule::parse(s).map_err(|e| Problem { message: e.message, help: e.help, hide_value: false })
}
