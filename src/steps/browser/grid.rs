//! Selenium Grid: when `webdriver_url` is a Grid 4 (its `/status` lists `nodes` with `slots`),
//! a browser step opens no more sessions than the grid has Chrome slots, so its items wait for
//! a session of their own instead of queueing inside the grid until its new-session timeout.
//! A plain chromedriver's `/status` has no `nodes`, and one that fails or does not parse changes
//! nothing.

use std::time::Duration;

use serde_json::Value;

use crate::config::redact_url;

/// How long the `/status` question may take before the step goes on without an answer.
const STATUS_LIMIT: Duration = Duration::from_secs(10);

/// The Chrome (or Chromium) slots of a Selenium Grid 4, from its `/status` JSON; None when the
/// JSON is not a Grid's (a plain chromedriver's has no `nodes`). Busy slots count: they are
/// capacity, free again when their session ends. Nodes that are `DOWN` or `DRAINING` take no
/// new sessions and do not count.
pub fn chrome_slots(status: &Value) -> Option<usize> {
    let nodes = status.get("value")?.get("nodes")?.as_array()?;
    let slots = nodes
        .iter()
        .filter(|n| !matches!(n.get("availability").and_then(Value::as_str), Some("DOWN" | "DRAINING")))
        .filter_map(|n| n.get("slots")?.as_array())
        .flatten()
        .filter(|s| {
            let name = s.get("stereotype").and_then(|t| t.get("browserName")).and_then(Value::as_str).unwrap_or("");
            name.eq_ignore_ascii_case("chrome") || name.eq_ignore_ascii_case("chromium")
        })
        .count();
    Some(slots)
}

/// The sessions a step opens: its `sessions`, capped by the grid's slots when there is a grid.
/// Never 0: a grid whose Chrome nodes are all gone right now gets one session, which waits in
/// the grid's queue (or fails and retries like any session that cannot open).
pub fn session_cap(sessions: usize, slots: Option<usize>) -> usize {
    match slots {
        Some(slots) => sessions.min(slots).max(1),
        None => sessions,
    }
}

/// `{webdriver_url}/status` (the URL's user and password, if any, go as basic auth), as Chrome
/// slots of a grid; None when it is not a grid or did not answer (logged at debug).
pub async fn probe(webdriver_url: &str) -> Option<usize> {
    let shown = redact_url(webdriver_url);
    let url = format!("{}/status", webdriver_url.trim_end_matches('/'));
    let asked = async {
        let client = reqwest::Client::builder().timeout(STATUS_LIMIT).build().map_err(|e| e.to_string())?;
        let resp = client.get(&url).send().await.map_err(|e| e.without_url().to_string())?;
        let resp = resp.error_for_status().map_err(|e| e.without_url().to_string())?;
        resp.json::<Value>().await.map_err(|e| e.without_url().to_string())
    };
    match asked.await {
        Ok(status) => {
            let slots = chrome_slots(&status);
            if slots.is_none() {
                tracing::debug!("{shown}/status is not a Selenium Grid's (no `nodes`): sessions are not capped");
            }
            slots
        }
        Err(e) => {
            tracing::debug!("cannot read {shown}/status ({e}): sessions are not capped");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn slot(host: &str, n: u32, browser: &str, busy: bool) -> Value {
        let stereotype = json!({
            "browserName": browser,
            "browserVersion": "124.0",
            "platformName": "linux",
            "se:noVncPort": 7900,
            "se:vncEnabled": true
        });
        let session = busy.then(|| {
            json!({
                "capabilities": { "browserName": browser, "browserVersion": "124.0.6367.60", "se:cdpEnabled": true },
                "sessionId": "4f1d0a3c2b6e4bb0a5d1f1c6a9e0f0aa",
                "start": "2024-05-02T01:12:09.554Z",
                "stereotype": stereotype,
                "uri": "http://172.18.0.3:5555"
            })
        });
        json!({
            "id": { "hostId": host, "id": format!("{host}-slot-{n}") },
            "lastStarted": if busy { "2024-05-02T01:12:09.554Z" } else { "1970-01-01T00:00:00Z" },
            "session": session,
            "stereotype": stereotype
        })
    }

    fn node(host: &str, availability: &str, slots: Vec<Value>) -> Value {
        json!({
            "availability": availability,
            "externalUri": format!("http://{host}:5555"),
            "heartbeatPeriod": 60000,
            "id": host,
            "maxSessions": slots.len(),
            "osInfo": { "arch": "amd64", "name": "Linux", "version": "6.1.0-18-amd64" },
            "sessionTimeout": 300000,
            "slots": slots,
            "uri": format!("http://{host}:5555"),
            "version": "4.20.0 (revision 866c76ca80)"
        })
    }

    /// A Grid 4 hub's `/status`: a node with 4 Chrome slots (one busy), a node with 2 Chrome
    /// slots and a Firefox slot.
    fn grid() -> Value {
        let a = "d1c2a0e6-5c55-4a55-9d8e-0f8b9f0b0a01";
        let b = "7f3e9c41-2b8d-4f7a-8e57-3c1d2a9b6e02";
        json!({
            "value": {
                "ready": true,
                "message": "Selenium Grid ready.",
                "nodes": [
                    node(a, "UP", vec![slot(a, 1, "chrome", true), slot(a, 2, "chrome", false), slot(a, 3, "chrome", false), slot(a, 4, "chrome", false)]),
                    node(b, "UP", vec![slot(b, 1, "chrome", false), slot(b, 2, "chrome", false), slot(b, 3, "firefox", false)]),
                ]
            }
        })
    }

    #[test]
    fn a_grid_counts_its_chrome_slots_busy_ones_too() {
        assert_eq!(chrome_slots(&grid()), Some(6));
        assert_eq!(session_cap(8, chrome_slots(&grid())), 6);
        assert_eq!(session_cap(2, chrome_slots(&grid())), 2);
    }

    #[test]
    fn chromium_counts_and_other_browsers_do_not() {
        let h = "n";
        let s = json!({ "value": { "ready": true, "nodes": [node(h, "UP", vec![
            slot(h, 1, "chromium", false), slot(h, 2, "MicrosoftEdge", false), slot(h, 3, "firefox", true)
        ])] } });
        assert_eq!(chrome_slots(&s), Some(1));
    }

    #[test]
    fn nodes_that_take_no_sessions_do_not_count() {
        let mut s = grid();
        s["value"]["nodes"][0]["availability"] = json!("DOWN");
        assert_eq!(chrome_slots(&s), Some(2));
        s["value"]["nodes"][1]["availability"] = json!("DRAINING");
        assert_eq!(chrome_slots(&s), Some(0));
        assert_eq!(session_cap(4, chrome_slots(&s)), 1, "never 0 sessions");
    }

    #[test]
    fn a_grid_without_nodes_yet_has_no_slots() {
        let s = json!({ "value": { "ready": false, "message": "Selenium Grid not ready.", "nodes": [] } });
        assert_eq!(chrome_slots(&s), Some(0));
    }

    #[test]
    fn a_plain_chromedriver_changes_nothing() {
        let s = json!({ "value": {
            "build": { "version": "124.0.6367.60 (a6b0f1d7c8e2e8f7b0c3f1e6a3d5c7b9e1f0a2c4-refs/branch-heads/6367@{#1023})" },
            "message": "ChromeDriver ready for new sessions.",
            "os": { "arch": "x86_64", "name": "Linux", "version": "6.1.0-18-amd64" },
            "ready": true
        } });
        assert_eq!(chrome_slots(&s), None);
        assert_eq!(session_cap(3, chrome_slots(&s)), 3);
        assert_eq!(chrome_slots(&json!("not an object")), None);
        assert_eq!(chrome_slots(&json!({ "value": { "nodes": "many" } })), None);
    }
}
