//! YAML shape of the `browser` step (see docs/browser.md). Plain serde types; `plan.rs` checks
//! the rules serde cannot express (exactly one action kind per list entry, modifiers that only
//! fit some actions, durations, templates).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// Ordered `selector: value` pairs (`fill`, `select`, `upload`, `assert_text`): YAML order is
/// kept because forms react to the order fields are filled in.
pub type FieldMap = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BrowserSpec {
    /// Parallel browser sessions (each logs in once). Default 1.
    #[serde(default)]
    pub sessions: Option<u32>,
    /// How `fill` enters text: `set` (assign the value and fire input/change events; fast)
    /// or `type` (real key events, ~90 ms per field). Default `set`.
    #[serde(default)]
    pub input: Option<InputMode>,
    /// How long an action waits for its element to appear, e.g. `5s` (the default).
    #[serde(default)]
    pub wait: Option<String>,
    /// Actions that log a fresh session in; run again when the portal logs the session out.
    #[serde(default)]
    pub login: Vec<ActionSpec>,
    /// How to tell the portal logged the session out. Default: the browser is on the URL path
    /// of the first `goto` of `login`.
    #[serde(default)]
    pub logged_out_when: Option<WaitSpec>,
    /// How long one WebDriver command may take before the browser counts as lost, e.g. `30s`
    /// (the default). A `submit` click whose answer does not come in time leaves the record
    /// uncertain.
    #[serde(default)]
    pub command_timeout: Option<String>,
    /// How the portal refuses a submission: after the `submit` click, a visible element matching
    /// `selector` (whose text contains `text`, when given) means the record was refused, not sent.
    #[serde(default)]
    pub rejected_if: Option<RejectedSpec>,
    /// Ledger key that makes the submission exactly-once, a template; default
    /// `<workflow>/<step id>/<item key>`.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Actions run once per item.
    pub actions: Vec<ActionSpec>,
}

/// `rejected_if: { selector: ".error", text: "required" }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectedSpec {
    /// The element a refused submission shows (an error box, a field message).
    pub selector: String,
    /// Text the element must contain; default: any visible match is a refusal.
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InputMode {
    Set,
    Type,
}

/// One action: exactly one of the action keys, plus the modifiers that fit it.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    /// Open a URL.
    pub goto: Option<String>,
    /// Clear and fill text fields: `{ selector: value }`.
    pub fill: Option<FieldMap>,
    /// Choose an option by value or visible text: `{ selector: value-or-text }`.
    pub select: Option<FieldMap>,
    /// Tick a checkbox (no-op when already ticked).
    pub check: Option<String>,
    /// Untick a checkbox (no-op when not ticked).
    pub uncheck: Option<String>,
    /// Click an element.
    pub click: Option<String>,
    /// Click the element that sends the record. The exactly-once ledger key is claimed just
    /// before this click, so a resumed run never sends the record twice.
    pub submit: Option<String>,
    /// Press a key (`Enter`, `Tab`, `Escape`, ...) in the focused element, or `{ selector: key }`.
    pub press: Option<PressSpec>,
    /// Choose files for file inputs: `{ selector: path }` (relative to the project folder).
    pub upload: Option<FieldMap>,
    /// Wait for a selector, or `{ selector | text | url, timeout }`.
    pub wait_for: Option<WaitSpec>,
    /// Fail unless the element's text contains the value: `{ selector: text }`.
    pub assert_text: Option<FieldMap>,
    /// Copy values into the item's output: `{ name: selector }` or
    /// `{ name: { selector, attribute } }` (`attribute: value` reads an input's current value).
    pub extract: Option<BTreeMap<String, ExtractSpec>>,
    /// Save a PNG of the page as an artifact of the item, under this name.
    pub screenshot: Option<String>,
    /// Run `then` only when the selector matches now (cookie banners, optional pop-ups).
    pub if_present: Option<String>,
    /// Actions for `if_present`.
    pub then: Option<Vec<ActionSpec>>,
    /// Overrides the step's `input` for this `fill`.
    pub input: Option<InputMode>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "a selector, or a map with one of `selector`, `text`, `url` and an optional `timeout`")]
pub enum WaitSpec {
    Selector(String),
    Detailed(WaitDetail),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitDetail {
    pub selector: Option<String>,
    /// Text the page must contain.
    pub text: Option<String>,
    /// Text the page URL must contain.
    pub url: Option<String>,
    /// e.g. `10s`; default: the step's `wait`.
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "a key name such as `Enter`, or a map `{ selector: key }`")]
pub enum PressSpec {
    Key(String),
    On(BTreeMap<String, String>),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "a selector, or a map `{ selector, attribute }`")]
pub enum ExtractSpec {
    Text(String),
    Attribute(ExtractDetail),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractDetail {
    pub selector: String,
    pub attribute: Option<String>,
}
