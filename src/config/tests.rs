use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// Settings from `yaml` as `cxflow.yaml` and `vars` as the environment, or every error rendered.
fn build(yaml: &str, vars: &[(&str, &str)]) -> Result<Config, String> {
    let src = config_file::parse(Path::new("cxflow.yaml"), yaml.to_string()).map_err(|d| d.to_string())?;
    let env = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
    Config::build(&src, env).map_err(|d| d.to_string())
}

fn error(yaml: &str, vars: &[(&str, &str)]) -> String {
    build(yaml, vars).unwrap_err()
}

#[test]
fn defaults_without_file_and_env_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let c = Config::load(dir.path(), |_| None).unwrap();
    assert_eq!(c.database_url, "sqlite://cxflow.sqlite");
    assert_eq!(c.shutdown_grace, Duration::from_secs(30));
    assert_eq!(c.smtp_from.to_string(), "cxflow <cxflow@localhost>");
    assert_eq!(c.prune_cron.source(), "17 3 * * *");
    let c = Config::load(dir.path(), |k| (k == "CXFLOW_SMTP_POOL_SIZE").then(|| "9".into())).unwrap();
    assert_eq!(c.smtp_pool_size, 9);
}

#[test]
fn typed_values_from_the_file() {
    let c = build(
        "smtp_url: smtps://bot:pw@mail.x.com?timeout=10s\nsmtp_from: Care <care@x.com>\nshutdown_grace: 1m 30s\nprune_cron: '@daily'\ndatabase_url: postgres://cx@db/runs\n",
        &[],
    )
    .unwrap();
    let smtp = c.smtp_url.unwrap();
    assert_eq!((smtp.host.as_str(), smtp.port, smtp.tls, smtp.timeout), ("mail.x.com", 465, Tls::Implicit, Duration::from_secs(10)));
    assert_eq!(smtp.password.as_deref(), Some("pw"));
    assert_eq!(c.smtp_from.email.to_string(), "care@x.com");
    assert_eq!(c.shutdown_grace, Duration::from_secs(90));
    assert_eq!(c.prune_cron.source(), "@daily");
    // Accepted here; the run log refuses it with its own message when it opens.
    assert_eq!(c.database_url, "postgres://cx@db/runs");
    assert!(build("smtp_url: ''\n", &[]).unwrap().smtp_url.is_none());
}

#[test]
fn wrong_type_in_file_points_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(FILE_NAME), "database_url: sqlite://x.db\nsmtp_pool_size: lots\n").unwrap();
    let e = Config::load(dir.path(), |_| None).unwrap_err().0.remove(0);
    assert_eq!((e.line, e.col), (2, 17), "{e}");
    assert_eq!(e.message, "invalid type: string \"lots\", expected a whole number in `smtp_pool_size`");
}

#[test]
fn env_values_of_text_keys_stay_text_and_bad_ones_name_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let env = |k: &str| match k {
        "CXFLOW_WORKFLOWS_DIR" => Some("2024".to_string()),
        "CXFLOW_CHROMIUM" => Some("true".to_string()),
        _ => None,
    };
    let c = Config::load(dir.path(), env).unwrap();
    assert_eq!(c.workflows_dir, PathBuf::from("2024"));
    assert_eq!(c.chromium, Some(PathBuf::from("true")));
    let e = Config::load(dir.path(), |k| (k == "CXFLOW_SMTP_POOL_SIZE").then(|| "abc".into())).unwrap_err().to_string();
    assert!(e.contains("CXFLOW_SMTP_POOL_SIZE"), "{e}");
    assert!(!e.contains(FILE_NAME), "{e}");
}

#[test]
fn unknown_key_in_file_is_positioned() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(FILE_NAME), "database_url: sqlite://x.db\nsmtp_ulr: smtp://a\n").unwrap();
    let e = Config::load(dir.path(), |_| None).unwrap_err().0.remove(0);
    assert_eq!((e.line, e.col, e.message.as_str()), (2, 1, "unknown field `smtp_ulr`"));
}

#[test]
fn an_empty_variable_unsets_the_key() {
    let c = build("smtp_pool_size: 2\nshutdown_grace: 5s\n", &[("CXFLOW_SMTP_POOL_SIZE", ""), ("CXFLOW_SHUTDOWN_GRACE", "2m")]).unwrap();
    assert_eq!((c.smtp_pool_size, c.shutdown_grace), (8, Duration::from_secs(120)));
}

#[test]
fn bad_database_url() {
    assert_eq!(
        error("database_url: mysql://cx:pa55@db/runs\n", &[]),
        "error: `database_url`: `mysql://cx:***@db/runs` is not a SQLite or PostgreSQL URL\n  --> cxflow.yaml:1:15\n  |\n1 | database_url: mysql://cx:***@db/runs\n  |               ^\n  = help: write it like `sqlite://cxflow.sqlite` (a file in the project folder) or `postgres://user@host/database` (docs/postgres.md)\n"
    );
}

#[test]
fn empty_folder() {
    assert_eq!(
        error("workflows_dir: ''\n", &[]),
        "error: `workflows_dir`: the folder is empty\n  --> cxflow.yaml:1:16\n  |\n1 | workflows_dir: ''\n  |                ^\n  = help: give a folder (relative to the project folder), or remove the key for the default\n"
    );
}

#[test]
fn empty_program_path() {
    assert_eq!(
        error("chromium: ''\n", &[]),
        "error: `chromium`: the path is empty\n  --> cxflow.yaml:1:11\n  |\n1 | chromium: ''\n  |           ^\n  = help: give the program's path, or remove the key to find it on PATH\n"
    );
}

#[test]
fn bad_smtp_url_never_shows_its_password() {
    assert_eq!(
        error("smtp_url: smtp://bot:pa55word@mail.x.com?tls=maybe\n", &[]),
        "error: `smtp_url`: `tls=maybe` is not a TLS mode; use required, opportunistic or none\n  --> cxflow.yaml:1:11\n  |\n1 | smtp_url: smtp://bot:***@mail.x.com?tls=maybe\n  |           ^\n  = help: write it like `smtp://mail.example.com:587?tls=required` or `smtps://mail.example.com` (docs/email.md)\n"
    );
    assert_eq!(
        error("smtp_url: bot:pa55word@mail.x.com\n", &[]),
        "error: `smtp_url`: scheme `bot` is not supported; use smtp:// or smtps://\n  --> cxflow.yaml:1:11\n  |\n1 | smtp_url: bot:***@mail.x.com\n  |           ^\n  = help: write it like `smtp://mail.example.com:587?tls=required` or `smtps://mail.example.com` (docs/email.md)\n"
    );
}

#[test]
fn a_secret_pasted_for_its_name_is_not_quoted() {
    assert_eq!(
        error("smtp_password_secret: hunter2!\n", &[]),
        "error: `smtp_password_secret`: the value is not the name of an environment variable\n  --> cxflow.yaml:1:23\n  |\n1 | smtp_password_secret: ***\n  |                       ^\n  = help: give the name of the variable that holds the value (like `SMTP_PASSWORD`), not the value itself\n"
    );
    let e = error("", &[("CXFLOW_SMTP_USER_SECRET", "bot@x.com")]);
    assert!(!e.contains("bot@x.com"), "{e}");
}

#[test]
fn bad_smtp_from() {
    assert_eq!(
        error("smtp_from: care\n", &[]),
        "error: `smtp_from`: `care` is not a mailbox\n  --> cxflow.yaml:1:12\n  |\n1 | smtp_from: care\n  |            ^\n  = help: write it like `Customer Care <care@example.com>` or `care@example.com`\n"
    );
}

#[test]
fn rate_limit_must_be_positive() {
    assert_eq!(
        error("smtp_rate_limit: 0\n", &[]),
        "error: `smtp_rate_limit`: must be more than 0 messages per second, not `0`\n  --> cxflow.yaml:1:18\n  |\n1 | smtp_rate_limit: 0\n  |                  ^\n  = help: remove it for no limit, or give a rate like `5` or `0.5`\n"
    );
}

#[test]
fn pool_needs_a_connection() {
    assert_eq!(
        error("smtp_pool_size: 0\n", &[]),
        "error: `smtp_pool_size`: must be at least 1 connection, not `0`\n  --> cxflow.yaml:1:17\n  |\n1 | smtp_pool_size: 0\n  |                 ^\n  = help: remove it for the default of 8 connections\n"
    );
}

#[test]
fn bad_webdriver_url() {
    assert_eq!(
        error("webdriver_url: localhost:4444\n", &[]),
        "error: `webdriver_url`: `localhost:4444` is not an http:// or https:// URL\n  --> cxflow.yaml:1:16\n  |\n1 | webdriver_url: localhost:4444\n  |                ^\n  = help: write it like `http://127.0.0.1:4444`\n"
    );
}

#[test]
fn bad_shutdown_grace() {
    assert_eq!(
        error("shutdown_grace: soon\n", &[]),
        "error: `shutdown_grace`: `soon` is not a duration (expected number at 0)\n  --> cxflow.yaml:1:17\n  |\n1 | shutdown_grace: soon\n  |                 ^\n  = help: write it like `30s`, `5m` or `1h 30m`\n"
    );
}

#[test]
fn max_concurrent_runs_must_allow_a_run() {
    assert_eq!(
        error("max_concurrent_runs: 0\n", &[]),
        "error: `max_concurrent_runs`: must be at least 1, not `0`\n  --> cxflow.yaml:1:22\n  |\n1 | max_concurrent_runs: 0\n  |                      ^\n  = help: remove it for no limit\n"
    );
}

#[test]
fn bad_prune_cron() {
    assert_eq!(
        error("prune_cron: 17 3 * *\n", &[]),
        "error: `prune_cron`: cron expression `17 3 * *` has 4 fields\n  --> cxflow.yaml:1:13\n  |\n1 | prune_cron: 17 3 * *\n  |             ^\n  = help: use 5 fields `minute hour day-of-month month day-of-week` (e.g. `30 2 * * *`), 6 fields with seconds first, 7 fields with a year last, or one of @hourly @daily @weekly @monthly @yearly\n"
    );
}

#[test]
fn all_errors_at_once_in_file_order_then_the_environment() {
    let e = error("smtp_pool_size: 0\nshutdown_grace: soon\n", &[("CXFLOW_MAX_CONCURRENT_RUNS", "0"), ("CXFLOW_SMTP_FROM", "nobody")]);
    let heads: Vec<&str> = e.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(
        heads,
        [
            "error: `smtp_pool_size`: must be at least 1 connection, not `0`",
            "error: `shutdown_grace`: `soon` is not a duration (expected number at 0)",
            "error: `CXFLOW_SMTP_FROM`: `nobody` is not a mailbox",
            "error: `CXFLOW_MAX_CONCURRENT_RUNS`: must be at least 1, not `0`",
        ]
    );
}

#[test]
fn bad_variable_names_itself() {
    assert_eq!(
        error("shutdown_grace: 5s\n", &[("CXFLOW_SHUTDOWN_GRACE", "soon")]),
        "error: `CXFLOW_SHUTDOWN_GRACE`: `soon` is not a duration (expected number at 0)\n  --> (environment):1:23\n  |\n1 | CXFLOW_SHUTDOWN_GRACE=soon\n  |                       ^\n  = help: write it like `30s`, `5m` or `1h 30m`, or unset CXFLOW_SHUTDOWN_GRACE\n"
    );
}

#[test]
fn variable_of_the_wrong_type_names_itself() {
    assert_eq!(
        error("", &[("CXFLOW_SMTP_POOL_SIZE", "abc")]),
        "error: invalid type: string \"abc\", expected a whole number in `CXFLOW_SMTP_POOL_SIZE`\n  --> (environment):1:23\n  |\n1 | CXFLOW_SMTP_POOL_SIZE=abc\n  |                       ^\n  = help: fix or unset the environment variable CXFLOW_SMTP_POOL_SIZE\n"
    );
}

#[test]
fn variable_smtp_url_never_shows_its_password() {
    assert_eq!(
        error("", &[("CXFLOW_SMTP_URL", "smtp://bot:pa55word@mail.x.com?pool=2")]),
        "error: `CXFLOW_SMTP_URL`: unknown option `pool`; known: tls, timeout\n  --> (environment):1:17\n  |\n1 | CXFLOW_SMTP_URL=smtp://bot:***@mail.x.com?pool=2\n  |                 ^\n  = help: write it like `smtp://mail.example.com:587?tls=required` or `smtps://mail.example.com` (docs/email.md), or unset CXFLOW_SMTP_URL\n"
    );
}

#[test]
fn max_record_bytes_has_a_default_a_floor_and_an_override() {
    assert_eq!(build("", &[]).unwrap().max_record_bytes, 1 << 20);
    assert_eq!(build("max_record_bytes: 4096\n", &[]).unwrap().max_record_bytes, 4096);
    assert_eq!(build("", &[("CXFLOW_MAX_RECORD_BYTES", "2048")]).unwrap().max_record_bytes, 2048);
    let e = error("max_record_bytes: 10\n", &[]);
    assert!(e.contains("`max_record_bytes`: must be at least 1024 bytes, not `10`") && e.contains("cxflow.yaml:1:19"), "{e}");
}

#[test]
fn http_addr_defaults_to_loopback_takes_off_and_names_a_bad_value() {
    assert_eq!(build("", &[]).unwrap().http_addr, Some(std::net::SocketAddr::from(([127, 0, 0, 1], 8080))));
    assert_eq!(build("http_addr: off\n", &[]).unwrap().http_addr, None);
    assert_eq!(build("", &[("CXFLOW_HTTP_ADDR", "127.0.0.1:0")]).unwrap().http_addr, Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))));
    assert_eq!(
        error("http_addr: localhost:80\n", &[]),
        "error: `http_addr`: `localhost:80` is not an address and port\n  --> cxflow.yaml:1:12\n  |\n1 | http_addr: localhost:80\n  |            ^\n  = help: write it like `127.0.0.1:8080` (an IP address, not a host name), or `off` for no dashboard\n"
    );
}

/// A self-signed CA certificate: its PEM, and its DER.
fn ca_pem() -> (String, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&key).unwrap();
    (ca.pem(), ca.der().to_vec())
}

#[test]
fn smtp_ca_file_is_read_from_the_project_folder_and_given_to_smtp_url() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, der) = ca_pem();
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    std::fs::write(dir.path().join("certs/ca.pem"), pem).unwrap();
    std::fs::write(dir.path().join(FILE_NAME), "smtp_url: smtps://mail.x.com\nsmtp_ca_file: certs/ca.pem\n").unwrap();
    let c = Config::load(dir.path(), |_| None).unwrap();
    let want = SmtpCa { path: "certs/ca.pem".into(), certs: vec![der] };
    assert_eq!(c.smtp_ca_file.as_ref(), Some(&want));
    // Every sender of `smtp_url` (the step, the scheduler's alerts) trusts it.
    assert_eq!(c.smtp_url.unwrap().ca, Some(want));
    let c = Config::load(dir.path(), |k| (k == "CXFLOW_SMTP_URL").then(|| "smtp://mail.y.com?tls=required".into())).unwrap();
    assert_eq!(c.smtp_url.unwrap().ca.map(|ca| ca.path), Some("certs/ca.pem".into()));
}

#[test]
fn a_ca_file_that_cannot_be_used_is_reported_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.pem"), "# the CA goes here\n").unwrap();
    std::fs::write(dir.path().join("junk.pem"), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
    let load = |yaml: &str| {
        std::fs::write(dir.path().join(FILE_NAME), yaml).unwrap();
        Config::load(dir.path(), |_| None).unwrap_err().0.remove(0)
    };
    let e = load("smtp_ca_file: nowhere.pem\n");
    assert_eq!((e.line, e.col), (1, 15));
    assert!(e.message.starts_with("`smtp_ca_file`: cannot read `nowhere.pem` ("), "{}", e.message);
    assert_eq!(
        e.help.as_deref(),
        Some("give the PEM file of the CA that signed the mail server's certificate (relative to the project folder)")
    );
    let e = load("smtp_ca_file: empty.pem\n");
    assert_eq!(e.message, "`smtp_ca_file`: `empty.pem` holds no certificate (no `-----BEGIN CERTIFICATE-----` block)");
    let e = load("smtp_ca_file: junk.pem\n");
    assert!(e.message.starts_with("`smtp_ca_file`: `junk.pem` holds a certificate that cannot be trusted as a CA ("), "{}", e.message);
    assert_eq!(load("smtp_ca_file: ''\n").message, "`smtp_ca_file`: the path is empty");
}

#[test]
fn a_login_over_tls_none_is_refused_unless_the_server_is_this_machine() {
    assert_eq!(
        error("smtp_url: smtp://bot:pa55word@mail.x.com:25?tls=none\n", &[]),
        "error: `smtp_url`: `tls=none` with a login would send the SMTP password unencrypted to `mail.x.com`\n  --> cxflow.yaml:1:11\n  |\n1 | smtp_url: smtp://bot:***@mail.x.com:25?tls=none\n  |           ^\n  = help: use `tls=required` (STARTTLS) or `smtps://`; `tls=none` with a login is accepted only for a server on this machine (127.0.0.1, localhost)\n"
    );
    let e = error("smtp_password_secret: SMTP_PASSWORD\n", &[("CXFLOW_SMTP_URL", "smtp://mail.x.com?tls=none")]);
    assert!(e.starts_with("error: `CXFLOW_SMTP_URL`: `tls=none` with a login would send"), "{e}");
    for ok in ["smtp://127.0.0.1:2525?tls=none", "smtp://localhost:2525?tls=none", "smtp://[::1]:2525?tls=none", "smtp://mail.x.com"] {
        assert!(build(&format!("smtp_url: {ok}\nsmtp_password_secret: P\n"), &[]).is_ok(), "{ok}");
    }
    assert!(build("smtp_url: smtp://mail.x.com?tls=none\n", &[]).is_ok(), "no login, nothing to protect");
}

#[test]
fn numbers_beyond_their_bounds_are_errors_at_their_line_not_panics_later() {
    let e = error(
        "smtp_rate_limit: 1e-20\nretention_days: 4000000000\nsmtp_pool_size: 18446744073709551615\nshutdown_grace: 1000000000y\n",
        &[],
    );
    assert!(e.starts_with("error: `smtp_rate_limit`: `0.00000000000000000001` messages per second is less than the slowest rate cxflow takes, 0.0001 (one message every 10000s)\n  --> cxflow.yaml:1:18\n"), "{e}");
    assert!(e.contains("error: `retention_days`: `4000000000` days is more than the longest retention, 36500 days (100 years)\n  --> cxflow.yaml:2:17\n"), "{e}");
    assert!(e.contains("error: `smtp_pool_size`: `18446744073709551615` connections is more than 1000\n  --> cxflow.yaml:3:17\n"), "{e}");
    assert!(
        e.contains("error: `shutdown_grace`: `1000000000y` is longer than the longest grace period, 24h\n  --> cxflow.yaml:4:17\n"),
        "{e}"
    );
    let c = build("smtp_rate_limit: 0.0001\nretention_days: 36500\nsmtp_pool_size: 1000\nshutdown_grace: 24h\n", &[]).unwrap();
    assert_eq!((c.smtp_rate_limit, c.retention_days, c.smtp_pool_size), (Some(0.0001), Some(36500), 1000));
}

#[test]
fn overrides_beyond_their_bounds_name_the_variable() {
    let e = error("", &[("CXFLOW_SMTP_RATE_LIMIT", "1e-20"), ("CXFLOW_RETENTION_DAYS", "4000000000")]);
    assert!(e.contains("error: `CXFLOW_SMTP_RATE_LIMIT`: `0.00000000000000000001` messages per second is less than"), "{e}");
    assert!(e.contains("error: `CXFLOW_RETENTION_DAYS`: `4000000000` days is more than the longest retention"), "{e}");
}

#[test]
fn lease_is_a_duration_within_bounds() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cxflow.yaml"), "lease: 2m\n").unwrap();
    assert_eq!(Config::load(dir.path(), |_| None).unwrap().lease, std::time::Duration::from_secs(120));
    assert_eq!(Config::default().lease, std::time::Duration::from_secs(30));
    assert_eq!(
        error("lease: 1s\n", &[]),
        "error: `lease`: `1s` is outside 5s to 10m\n  --> cxflow.yaml:1:8\n  |\n1 | lease: 1s\n  |        ^\n  = help: leave it out for 30s; docs/scaling.md, \"Sizing the lease\", says how to choose\n"
    );
}

#[test]
fn spread_items_needs_postgresql() {
    assert_eq!(
        error("spread_items: true\n", &[]),
        "error: `spread_items`: items are spread over nodes only on a PostgreSQL run log\n  --> cxflow.yaml:1:15\n  |\n1 | spread_items: true\n  |               ^\n  = help: set `database_url: postgres://…` (docs/scaling.md), or remove `spread_items`\n"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cxflow.yaml"), "spread_items: true\n").unwrap();
    let c = Config::load(dir.path(), |k| (k == "CXFLOW_DATABASE_URL").then(|| "postgres://cx@127.0.0.1/x".into())).unwrap();
    assert!(c.spread_items);
}
