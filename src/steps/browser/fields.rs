//! Form fields set by script: `fill` in `set` mode (all fields in one call), `select`, and the
//! state `check` reads before it clicks. The record's values go to the page as script
//! arguments (JSON), never into the script text.

use std::time::Instant;

use serde_json::{json, Value};

use super::exec::{not_found, ActError, Page, POLL};
use super::lookup::FIND_FN;
use super::selector::Selector;

impl Page<'_> {
    pub(super) async fn fill_set(&self, fields: &[(Selector, String)]) -> Result<(), ActError> {
        let args: Vec<Value> = fields.iter().map(|(s, v)| json!([s.js(), v])).collect();
        let script = format!("{FIND_FN}{FILL_JS}");
        let deadline = Instant::now() + self.wait;
        loop {
            let v = self.cmd(self.client.execute(&script, vec![Value::Array(args.clone())])).await?;
            let (missing, invalid): (Vec<usize>, Vec<usize>) = serde_json::from_value(v).unwrap_or_default();
            if let Some(&i) = invalid.first() {
                return Err(ActError::Page(format!("`{}` is not a valid selector", fields[i].0)));
            }
            let Some(&first) = missing.first() else { return Ok(()) };
            if Instant::now() >= deadline {
                return Err(not_found(&fields[first].0, self.wait));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub(super) async fn select(&self, sel: &Selector, value: &str) -> Result<(), ActError> {
        let (_, r) = self.find_and(sel, self.wait, SELECT_FN, vec![json!(value)]).await?;
        match r {
            Value::Null => Ok(()),
            Value::String(err) if err == "not a select" => Err(ActError::Page(format!("`{sel}` is not a <select> element"))),
            options => Err(ActError::Page(format!(
                "`{sel}` has no option with value or text `{value}`; options: {}",
                options.as_array().map(|a| a.iter().filter_map(|o| o.as_str()).collect::<Vec<_>>().join(", ")).unwrap_or_default()
            ))),
        }
    }

    /// Ticks (`on`) or unticks a checkbox with a real click, unless it is already so. Finding
    /// it and reading its state is one command; the click uses the element found.
    pub(super) async fn check(&self, sel: &Selector, on: bool) -> Result<(), ActError> {
        let (el, state) = self.find_and(sel, self.wait, SELECTED_FN, vec![]).await?;
        let selected = match state {
            Value::Bool(b) => b,
            // Not a checkbox, radio button or option: WebDriver decides (and words the error).
            _ => self.cmd(el.is_selected()).await?,
        };
        if selected != on {
            self.try_click_found(sel, Some(el)).await??;
        }
        Ok(())
    }
}

/// Sets each field's value with the prototype's setter (so frameworks that track the value,
/// such as React, see the change) and fires `input` then `change`. Returns
/// `[missing, invalid]`: the indexes of the fields whose selector matched nothing yet, and of
/// the first whose selector is not valid (the fields after it are left alone: the action fails).
/// Each field is looked up right before it is set: setting one may add the next to the form.
const FILL_JS: &str = r#"
const fields = arguments[0];
const missing = [];
for (const [i, [sel, value]] of fields.entries()) {
  const el = find(sel);
  if (el === undefined) return [missing, [i]];
  if (!el) { missing.push(i); continue; }
  const proto = el instanceof HTMLTextAreaElement ? HTMLTextAreaElement.prototype
    : el instanceof HTMLSelectElement ? HTMLSelectElement.prototype
    : el instanceof HTMLInputElement ? HTMLInputElement.prototype : null;
  if (proto) {
    Object.getOwnPropertyDescriptor(proto, 'value').set.call(el, value);
  } else if (el.isContentEditable) {
    el.textContent = value;
  } else {
    el.value = value;
  }
  el.dispatchEvent(new Event('input', { bubbles: true }));
  el.dispatchEvent(new Event('change', { bubbles: true }));
}
return [missing, []];
"#;

/// Picks the option whose value, else whose visible text, equals the wanted string. Returns
/// null on success, or the list of available options for the error message.
const SELECT_FN: &str = r#"(el, want) => {
if (!(el instanceof HTMLSelectElement)) return 'not a select';
const opts = Array.from(el.options);
const hit = opts.find(o => o.value === want) || opts.find(o => o.text.trim() === want.trim());
if (!hit) return opts.map(o => { const v = o.value === '' ? '""' : o.value;
  return o.value === o.text.trim() ? v : `${v} (${o.text.trim()})`; });
el.value = hit.value;
el.dispatchEvent(new Event('input', { bubbles: true }));
el.dispatchEvent(new Event('change', { bubbles: true }));
return null;
}"#;

/// WebDriver's "is element selected": a checkbox's or radio button's checkedness, an option's
/// selectedness; null for anything else, which WebDriver itself is asked about.
const SELECTED_FN: &str = r#"(el) =>
  el instanceof HTMLInputElement && (el.type === 'checkbox' || el.type === 'radio') ? el.checked
  : el instanceof HTMLOptionElement ? el.selected : null"#;
