//! Finding an element and reading what an action needs from it in one WebDriver command.
//!
//! A find-element command and a script about that element are two HTTP round trips to
//! chromedriver and a dozen CDP calls to Chromium, whose CPU the whole run shares. Here the
//! script finds the element itself, with the same rules as WebDriver's `css selector` and
//! `xpath` strategies (first match in document order; an XPath that selects no element is an
//! invalid selector), and hands the element back with its answer, so a click that follows needs
//! no second lookup. Link-text selectors keep WebDriver's own lookup: its "rendered text" is not
//! something a page script can reproduce exactly.

use std::time::{Duration, Instant};

use fantoccini::elements::{Element, ElementRef};
use fantoccini::error::CmdError;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::Client;
use serde_json::{json, Value};

use super::exec::{not_found, ActError, Page, POLL};
use super::selector::{How, Selector};

/// The key under which WebDriver returns an element from a script (W3C "web element identifier").
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// `find([how, expr])`: the element, `null` when nothing matches yet, `undefined` when the
/// selector is not valid (a syntax error, or an XPath whose first node is not an element).
pub(super) const FIND_FN: &str = r#"
const find = ([how, expr]) => {
  try {
    if (how !== 'xpath') return document.querySelector(expr);
    const n = document.evaluate(expr, document, null, XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue;
    return n === null || n instanceof Element ? n : undefined;
  } catch (e) { return undefined; }
};
"#;

/// `arguments`: the selector, then the probe's own arguments as one list. Answers `null`
/// (not there yet), `'invalid'`, or `[element, probe(element, ...args)]`. The probe travels as
/// source inside the script text: it is a constant of ours, while the record's values only
/// ever go in the arguments.
fn find_and_script(probe: &str) -> String {
    format!(
        "{FIND_FN}const el = find(arguments[0]);\nif (el === undefined) return 'invalid';\nif (el === null) return null;\n\
         return [el, ({probe})(el, ...arguments[1])];"
    )
}

impl Page<'_> {
    /// Waits up to `timeout` for `sel` like `find`, and runs `probe`, a page-side function
    /// `(el, ...args) => answer` given as JS source, on the element in the same command. The
    /// errors are `find`'s: not found after the wait, not a valid selector.
    pub async fn find_and(&self, sel: &Selector, timeout: Duration, probe: &str, args: Vec<Value>) -> Result<(Element, Value), ActError> {
        if sel.how == How::LinkText {
            let el = self.find(sel, timeout).await?;
            let el_json = serde_json::to_value(&el).map_err(|e| ActError::Page(e.to_string()))?;
            let script = format!("return ({probe})(arguments[0], ...arguments[1]);");
            let v = self.cmd(self.client.execute(&script, vec![el_json, Value::Array(args)])).await?;
            return Ok((el, v));
        }
        let script = find_and_script(probe);
        let call = vec![sel.js(), Value::Array(args)];
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.cmd(self.client.execute(&script, call.clone())).await?;
            match v {
                Value::Array(mut pair) if pair.len() == 2 => {
                    let answer = pair.pop().unwrap_or(Value::Null);
                    let el = element(self, &pair[0])?;
                    return Ok((el, answer));
                }
                Value::String(s) if s == "invalid" => return Err(ActError::Page(format!("`{sel}` is not a valid selector"))),
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(not_found(sel, timeout));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The element a script returned.
fn element(page: &Page<'_>, v: &Value) -> Result<Element, ActError> {
    match v.get(ELEMENT_KEY).and_then(Value::as_str) {
        Some(id) => Ok(Element::from_element_id(page.client.clone(), ElementRef::from(id.to_string()))),
        None => Err(ActError::Page(format!("unexpected answer from the page: {}", json!(v)))),
    }
}

/// Opens `url`. fantoccini's `goto` first asks the browser for the current URL, to resolve
/// a relative one against it: a round trip that an absolute URL (what workflows write) does
/// not need. A relative URL still goes that way.
pub(super) async fn goto(client: &Client, url: &str) -> Result<(), CmdError> {
    match url::Url::parse(url) {
        Ok(abs) => client.issue_cmd(Navigate(abs)).await.map(|_| ()),
        Err(_) => client.goto(url).await,
    }
}

/// WebDriver's "navigate to" with a URL that is already absolute.
#[derive(Debug)]
struct Navigate(url::Url);

impl WebDriverCompatibleCommand for Navigate {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/url", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({ "url": self.0.as_str() }).to_string()))
    }
}
