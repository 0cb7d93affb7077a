//! `on_failure:` notifications: a webhook POST (and, where configured, an email) when a
//! scheduled run fails or ends partial.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What a notification says about a run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FailureNotice {
    pub workflow: String,
    pub run_id: Option<i64>,
    /// `failed` or `partial`.
    pub status: String,
    pub fire_time: DateTime<Utc>,
    pub message: String,
    /// Host the scheduler runs on, so a person knows where to look.
    pub host: String,
}

impl FailureNotice {
    pub fn subject(&self) -> String {
        format!("cxflow: workflow `{}` {} (run {})", self.workflow, self.status, self.run_id.map_or("-".into(), |r| r.to_string()))
    }

    pub fn body(&self) -> String {
        format!(
            "Workflow: {}\nRun: {}\nStatus: {}\nScheduled for: {}\nHost: {}\n\n{}\n\nInspect with: cxflow runs show {}\n",
            self.workflow,
            self.run_id.map_or("-".into(), |r| r.to_string()),
            self.status,
            self.fire_time.to_rfc3339(),
            self.host,
            self.message,
            self.run_id.map_or("<run id>".into(), |r| r.to_string()),
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("webhook `{url}` answered {status}")]
    Status { url: String, status: u16 },
    #[error("webhook `{url}` failed: {message}")]
    Send { url: String, message: String },
}

/// POSTs the notice as JSON. Retries twice on connection errors and 5xx (the receiver may be
/// restarting); a 4xx means the request itself is wrong and is not retried.
pub async fn post_webhook(client: &reqwest::Client, url: &str, notice: &FailureNotice) -> Result<(), AlertError> {
    let mut last = None;
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
        }
        match client.post(url).timeout(Duration::from_secs(10)).json(notice).send().await {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) if resp.status().is_client_error() => {
                return Err(AlertError::Status { url: url.to_string(), status: resp.status().as_u16() })
            }
            Ok(resp) => last = Some(AlertError::Status { url: url.to_string(), status: resp.status().as_u16() }),
            Err(e) => last = Some(AlertError::Send { url: url.to_string(), message: e.to_string() }),
        }
    }
    Err(last.expect("at least one attempt"))
}

/// Emails the notice to `to` through the send_email step's transport: the SMTP server of
/// `smtp_url` (with `smtp_user_secret`/`smtp_password_secret`), or, with no `smtp_url`, an .eml
/// file in the outbox folder. Returns where it went.
pub async fn send_email(
    config: &crate::config::Config,
    project: &std::path::Path,
    to: &[String],
    notice: &FailureNotice,
) -> anyhow::Result<String> {
    use crate::steps::send_email::{
        pool::SmtpPool,
        rate::RateLimiter,
        transport::{Transport, Ungated},
    };
    use anyhow::Context as _;
    let transport = match &config.smtp_url {
        Some(settings) => {
            let mut settings = settings.clone();
            let secret =
                |name: &String| std::env::var(name).with_context(|| format!("secret `{name}` (named by smtp_*_secret) is not set"));
            if let Some(n) = &config.smtp_user_secret {
                settings.user = Some(secret(n)?);
            }
            if let Some(n) = &config.smtp_password_secret {
                settings.password = Some(secret(n)?);
            }
            Transport::Smtp(SmtpPool::new(settings, 1))
        }
        None => Transport::outbox(&config.path(project, &config.outbox_dir)).context("cannot create the outbox folder")?,
    };
    let mut builder = lettre::Message::builder().from(config.smtp_from.clone()).subject(notice.subject());
    for addr in to {
        builder = builder.to(addr.parse().with_context(|| format!("`{addr}` is not an address"))?);
    }
    let msg = builder.body(notice.body()).context("cannot build the notification email")?;
    let sent = transport.send(&msg, &RateLimiter::new(None), &Ungated).await;
    transport.close().await;
    let sent = sent.map_err(|e| anyhow::anyhow!("{}: {e}", transport.describe()))?;
    Ok(format!("{sent:?}"))
}

pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown host".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn webhook_posts_json_and_retries_5xx() {
        let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let calls = Arc::new(Mutex::new(0u32));
        let (g, c) = (got.clone(), calls.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(v): axum::Json<serde_json::Value>| {
                let (g, c) = (g.clone(), c.clone());
                async move {
                    let n = {
                        let mut n = c.lock().unwrap();
                        *n += 1;
                        *n
                    };
                    if n == 1 {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    g.lock().unwrap().push(v);
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let notice = FailureNotice {
            workflow: "nightly".into(),
            run_id: Some(42),
            status: "failed".into(),
            fire_time: Utc::now(),
            message: "step `send` failed".into(),
            host: "h".into(),
        };
        let client = reqwest::Client::new();
        post_webhook(&client, &format!("http://{addr}/hook"), &notice).await.unwrap();
        assert_eq!(*calls.lock().unwrap(), 2);
        let v = got.lock().unwrap()[0].clone();
        assert_eq!(v["workflow"], "nightly");
        assert_eq!(v["run_id"], 42);
        assert_eq!(v["status"], "failed");
        let err = post_webhook(&client, &format!("http://{addr}/missing"), &notice).await.unwrap_err();
        assert!(err.to_string().contains("404"), "{err}");
        assert!(notice.subject().contains("`nightly` failed (run 42)"));
    }

    #[tokio::test]
    async fn email_goes_to_the_outbox_without_smtp() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::Config::default();
        let notice = FailureNotice {
            workflow: "nightly".into(),
            run_id: Some(7),
            status: "partial".into(),
            fire_time: Utc::now(),
            message: "3 item(s) failed".into(),
            host: "h".into(),
        };
        send_email(&config, dir.path(), &["ops@example.com".into()], &notice).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path().join("outbox")).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(files.len(), 1);
        let eml = std::fs::read_to_string(&files[0]).unwrap();
        assert!(eml.contains("To: ops@example.com"), "{eml}");
        assert!(eml.contains("Subject: cxflow: workflow `nightly` partial (run 7)"), "{eml}");
        assert!(eml.contains("3 item(s) failed"), "{eml}");
    }
}
