//! Optional POST of a team's bucket to its Slack/Teams-style incoming webhook.

use std::time::Duration;

use serde_json::{json, Value};

const ATTEMPTS: u32 = 3;

/// The body: `text` is what Slack and Teams show; `bucket` carries the figures for custom
/// receivers. Untrusted feedback text only appears inside JSON strings.
pub(super) fn payload(bucket: &Value) -> Value {
    let team = bucket["team"]["name"].as_str().unwrap_or("team");
    let mut text = format!("*{team}*: {} new pieces of feedback", bucket["count"]);
    if let Some(avg) = bucket["avg_rating"].as_f64() {
        text.push_str(&format!(", average rating {avg}"));
    }
    if let Some(csat) = bucket["csat"].as_f64() {
        text.push_str(&format!(", CSAT {csat}%"));
    }
    let urgent = bucket["urgent_count"].as_u64().unwrap_or(0);
    if urgent > 0 {
        text.push_str(&format!(", {urgent} urgent"));
    }
    let mut slim = bucket.clone();
    if let Some(m) = slim.as_object_mut() {
        // Rendered documents are for email and files; receivers get the data.
        for k in ["html", "text", "chart_svg", "files"] {
            m.remove(k);
        }
        if let Some(t) = m.get_mut("team").and_then(Value::as_object_mut) {
            t.remove("webhook");
        }
    }
    json!({"text": text, "team": team, "bucket": slim})
}

/// POSTs `body`; retries connection errors, 429 and 5xx with a short backoff.
/// Ok(status) for 2xx; Err((definitely_not_delivered, message)) otherwise.
pub(super) async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Result<u16, (bool, String)> {
    let mut last = (true, String::new());
    for attempt in 1..=ATTEMPTS {
        match client.post(url).json(body).timeout(Duration::from_secs(15)).send().await {
            Ok(r) if r.status().is_success() => return Ok(r.status().as_u16()),
            Ok(r) => {
                let s = r.status();
                last = (true, format!("the webhook answered HTTP {}", s.as_u16()));
                if s.is_redirection() {
                    // Not the Location: it may carry another receiver's token.
                    last.1.push_str(
                        ", a redirect, which is not followed: put the URL it points to in the rule file, \
                         or set `webhook_follow_redirects: true` on the team",
                    );
                }
                if !(s.is_server_error() || s.as_u16() == 429) {
                    break;
                }
            }
            // A timeout may have been delivered; a refused connection was not.
            Err(e) => last = (!e.is_timeout(), format!("cannot reach the webhook: {}", e.without_url())),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(300 * u64::from(attempt))).await;
        }
    }
    Err(last)
}
