//! What the page says around the `submit` click, the exactly-once point of a browser item.
//!
//! Before the click (nothing claimed yet): would the browser block it? A form with a `required`
//! field left empty is never sent: the browser shows a bubble and stays put, so clicking would
//! only leave a claimed key behind that looks uncertain. After the click: did the portal accept
//! the record, refuse it (`rejected_if`), or send the browser to its login page? A refusal and a
//! login page are definite (the record is not on the portal), so the claim can be released.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use super::action::{Rejected, WaitTarget};
use super::exec::{ActError, Page, POLL};
use super::selector::Selector;

/// Why the browser will not send the form `sel` submits: the first invalid field and the
/// browser's own message for it. `None`: it sends it (valid, `novalidate`, or no form).
pub(super) async fn blocked(page: &Page<'_>, sel: &Selector) -> Result<Option<String>, ActError> {
    let el = page.find(sel, page.wait).await?;
    let el = serde_json::to_value(&el).map_err(|e| ActError::Page(e.to_string()))?;
    let v = page.cmd(page.client.execute(VALIDITY_JS, vec![el])).await?;
    Ok(match v {
        Value::Array(a) => {
            let field = a.first().and_then(Value::as_str).unwrap_or("a field");
            let msg = a.get(1).and_then(Value::as_str).unwrap_or("invalid");
            Some(format!("`{field}`: {msg}"))
        }
        _ => None,
    })
}

/// How a submission ended, as far as the page shows within the bound.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Settled {
    /// The portal refused it; the text of the element that says so.
    Refused(String),
    /// The portal answered with its login page: the session had expired, the post was refused.
    LoggedOut,
    /// The success signal showed, or a new page loaded without a refusal.
    Accepted,
    /// Nothing decisive within the bound; the actions after `submit` decide.
    Unknown,
}

/// What the page looks like around the click: `rejected_if`, the success signal (the
/// `wait_for` right after `submit`) and the login page, in one round trip.
pub(super) struct Watch<'a> {
    pub rejected: &'a Rejected,
    pub success: Option<&'a WaitTarget>,
    pub logged_out: Option<&'a WaitTarget>,
    /// Set on the page's window before the click: a window without it is a new document.
    pub mark: String,
}

#[derive(Deserialize)]
struct Probe {
    fresh: bool,
    ready: bool,
    refused: Option<String>,
    success: bool,
    login: bool,
}

impl Watch<'_> {
    fn args(&self, set: bool) -> Vec<Value> {
        let r = json!([self.rejected.sel.js(), self.rejected.text]);
        vec![json!(set), json!(self.mark), r, target(self.success), target(self.logged_out)]
    }

    async fn probe(&self, page: &Page<'_>, set: bool) -> Result<Probe, ActError> {
        let v = page.cmd(page.client.execute(PROBE_JS, self.args(set))).await?;
        serde_json::from_value(v).map_err(|e| ActError::Page(format!("unexpected answer from the page: {e}")))
    }

    /// Marks the page before the click; true when a refusal is already shown (a message left
    /// from earlier on the same page, which then only counts on a new page).
    pub(super) async fn before(&self, page: &Page<'_>) -> Result<bool, ActError> {
        Ok(self.probe(page, true).await?.refused.is_some())
    }

    /// Polls the page after the click until it is decisive or `bound` has passed. A success
    /// signal wins over a refusal: releasing a record that was in fact sent would let a resume
    /// send it twice, while the opposite mistake only leaves it uncertain.
    pub(super) async fn after(&self, page: &Page<'_>, shown_before: bool, bound: Duration) -> Result<Settled, ActError> {
        let deadline = Instant::now() + bound;
        loop {
            match self.probe(page, false).await {
                Ok(p) if p.success => return Ok(Settled::Accepted),
                Ok(Probe { refused: Some(t), fresh, .. }) if fresh || !shown_before => return Ok(Settled::Refused(t)),
                Ok(p) if p.fresh && p.ready && p.login => return Ok(Settled::LoggedOut),
                Ok(p) if p.fresh && p.ready && self.success.is_none() => return Ok(Settled::Accepted),
                Ok(_) => {}
                // A script that ran while the old document went away: look again.
                Err(ActError::Page(_)) => {}
                Err(e) => return Err(e),
            }
            if Instant::now() >= deadline {
                return Ok(Settled::Unknown);
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

fn target(t: Option<&WaitTarget>) -> Value {
    match t {
        Some(WaitTarget::Selector(s)) => json!(["sel", s.js()]),
        Some(WaitTarget::Text(t)) => json!(["text", t]),
        Some(WaitTarget::Url(u)) => json!(["url", u]),
        None => Value::Null,
    }
}

/// The first invalid field of the form the element submits, as `[label, validationMessage]`,
/// or null. Only a real submit control is checked: a `type=button` whose script submits
/// bypasses the browser's validation, and so must this check.
const VALIDITY_JS: &str = r#"
const el = arguments[0];
const submits = (el instanceof HTMLButtonElement && el.type === 'submit')
  || (el instanceof HTMLInputElement && (el.type === 'submit' || el.type === 'image'));
const form = el.form;
if (!submits || !form || form.noValidate || el.formNoValidate || form.checkValidity()) return null;
const bad = Array.from(form.elements).find(e => e.willValidate && !e.validity.valid);
if (!bad) return null;
const label = bad.id ? '#' + bad.id : bad.name ? `[name="${bad.name}"]` : bad.tagName.toLowerCase();
return [label, bad.validationMessage];
"#;

/// One look at the page: `[set, mark, [rejected selector, text], success, login]`.
const PROBE_JS: &str = r#"
const [set, mark, [rsel, rtext], ok, login] = arguments;
if (set) window.__cxflowSubmit = mark;
const all = ([how, expr]) => {
  if (how !== 'xpath') return Array.from(document.querySelectorAll(expr));
  const r = document.evaluate(expr, document, null, XPathResult.ORDERED_NODE_SNAPSHOT_TYPE, null);
  return Array.from({ length: r.snapshotLength }, (_, i) => r.snapshotItem(i));
};
const shown = el => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
const text = () => document.body ? document.body.innerText : '';
const holds = t => !t ? false : t[0] === 'sel' ? all(t[1]).length > 0
  : t[0] === 'text' ? text().includes(t[1]) : location.href.includes(t[1]);
let refused = null;
for (const el of all(rsel)) {
  const t = (el.innerText || el.textContent || '').trim();
  if (shown(el) && (rtext === null || t.includes(rtext))) { refused = t; break; }
}
return { fresh: window.__cxflowSubmit !== mark, ready: document.readyState === 'complete',
  refused, success: holds(ok), login: holds(login) };
"#;
