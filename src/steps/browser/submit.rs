//! What the page says around the `submit` click, the exactly-once point of a browser item.
//!
//! Before the click (nothing claimed yet): would the browser block it? A form with a `required`
//! field left empty is never sent: the browser shows a bubble and stays put, so clicking would
//! only leave a claimed key behind that looks uncertain. After the click: did the portal accept
//! the record, refuse it (`rejected_if`), or send the browser to its login page? A refusal and a
//! login page are definite (the record is not on the portal), so the claim can be released.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use serde::Deserialize;
use serde_json::{json, Value};

use super::action::{Rejected, WaitTarget};
use super::exec::{ActError, Page, POLL};
use super::selector::Selector;
use crate::steps::ItemOutput;

/// The submit button, looked up once for the checks before the click and the click itself.
pub(super) enum Ready {
    /// The browser will not send the form: the first invalid field and its own message for it.
    Blocked(String),
    /// Go ahead: the button, and whether a refusal is already shown (with a `Watch`).
    Go { el: Element, shown_before: bool },
}

/// Finds the button `sel`, asks whether the browser would block the form it submits (`None`:
/// it sends it: valid, `novalidate`, or no form), and when there is a `watch` marks the page
/// for it: one command.
pub(super) async fn prepare(page: &Page<'_>, sel: &Selector, watch: Option<&Watch<'_>>) -> Result<Ready, ActError> {
    let probe_args = watch.map_or(Value::Null, |w| Value::Array(w.args(true)));
    let (el, v) = page.find_and(sel, page.wait, &PREPARE_FN, vec![probe_args]).await?;
    let [bad, probe]: [Value; 2] =
        serde_json::from_value(v).map_err(|e| ActError::Page(format!("unexpected answer from the page: {e}")))?;
    if let Value::Array(a) = bad {
        let field = a.first().and_then(Value::as_str).unwrap_or("a field");
        let msg = a.get(1).and_then(Value::as_str).unwrap_or("invalid");
        return Ok(Ready::Blocked(format!("`{field}`: {msg}")));
    }
    let shown_before = match probe {
        Value::Null => false,
        p => serde_json::from_value::<Probe>(p)
            .map_err(|e| ActError::Page(format!("unexpected answer from the page: {e}")))?
            .refused
            .is_some(),
    };
    Ok(Ready::Go { el, shown_before })
}

/// How the submit action ended when the item goes on.
pub(super) enum Submitted {
    /// Nothing to do: sent before, or in flight elsewhere.
    Early(ItemOutput),
    /// Clicked with the key claimed; `shown`: the success signal (the `wait_for` right after
    /// `submit`) was seen.
    Clicked { shown: bool },
}

/// How a submission ended, as far as the page shows within the bound.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Settled {
    /// The portal refused it; the text of the element that says so.
    Refused(String),
    /// The portal answered with its login page: the session had expired, the post was refused.
    LoggedOut,
    /// The success signal (the `wait_for` right after `submit`) showed.
    Shown,
    /// A new page loaded without a refusal (and there is no success signal to wait for).
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
        let v = page.cmd(page.client.execute(&PROBE_JS, self.args(set))).await?;
        serde_json::from_value(v).map_err(|e| ActError::Page(format!("unexpected answer from the page: {e}")))
    }

    /// Polls the page after the click until it is decisive or `bound` has passed. A success
    /// signal wins over a refusal: releasing a record that was in fact sent would let a resume
    /// send it twice, while the opposite mistake only leaves it uncertain.
    pub(super) async fn after(&self, page: &Page<'_>, shown_before: bool, bound: Duration) -> Result<Settled, ActError> {
        let deadline = Instant::now() + bound;
        loop {
            match self.probe(page, false).await {
                Ok(p) if p.success => return Ok(Settled::Shown),
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

/// `(el, watch)`: `[validity, probe]`, where `probe` is the page marked and looked at before the
/// click (`PROBE_FN` with `watch` as its arguments; null without a watch, or when the form is
/// blocked and nothing will be clicked). `prepare` before the click, which is the one moment a
/// refusal shown already (left from earlier on the same page) is noted: it then only counts on
/// a new page.
static PREPARE_FN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "(el, watch) => {{ const bad = ({VALIDITY_FN})(el); \
         return [bad, bad || !watch ? null : ({PROBE_FN})(...watch)]; }}"
    )
});

static PROBE_JS: LazyLock<String> = LazyLock::new(|| format!("return ({PROBE_FN})(...arguments);"));

/// The first invalid field of the form the element submits, as `[label, validationMessage]`,
/// or null. Only a real submit control is checked: a `type=button` whose script submits
/// bypasses the browser's validation, and so must this check.
const VALIDITY_FN: &str = r#"(el) => {
const submits = (el instanceof HTMLButtonElement && el.type === 'submit')
  || (el instanceof HTMLInputElement && (el.type === 'submit' || el.type === 'image'));
const form = el.form;
if (!submits || !form || form.noValidate || el.formNoValidate || form.checkValidity()) return null;
const bad = Array.from(form.elements).find(e => e.willValidate && !e.validity.valid);
if (!bad) return null;
const label = bad.id ? '#' + bad.id : bad.name ? `[name="${bad.name}"]` : bad.tagName.toLowerCase();
return [label, bad.validationMessage];
}"#;

/// One look at the page: `(set, mark, [rejected selector, text], success, login)`.
const PROBE_FN: &str = r#"(set, mark, [rsel, rtext], ok, login) => {
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
}"#;
