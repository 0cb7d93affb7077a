//! `browser` spec → planned step: one action kind per entry, modifiers where they fit,
//! durations parsed, every string that contains `{{` compiled as a template. `render` turns
//! planned actions into concrete ones for one item.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::plan::paths::PathRule;
use crate::plan::templates::Templates;
use crate::plan::{PlanCx, TemplateRef};

use super::action::{Action, Extract, Key, Rejected, WaitTarget};
use super::selector::Selector;
use super::spec::{ActionSpec, BrowserSpec, ExtractSpec, FieldMap, InputMode, PressSpec, RejectedSpec, WaitSpec};

const DEFAULT_WAIT: Duration = Duration::from_secs(5);
/// Long enough for a slow portal to answer a submission; short enough that a chromedriver
/// that stopped answering costs one item, not the run.
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub enum Text {
    Lit(String),
    Tpl(TemplateRef),
}

#[derive(Debug, Clone)]
pub enum PAction {
    Goto(Text),
    Fill {
        fields: Vec<(Text, Text)>,
        mode: InputMode,
    },
    Select(Vec<(Text, Text)>),
    Check {
        sel: Text,
        on: bool,
    },
    Click(Text),
    Submit(Text),
    Press {
        on: Option<Text>,
        key: Key,
    },
    /// Selector, path, and where the rendered path may point.
    Upload(Vec<(Text, Text, PathRule)>),
    WaitFor {
        target: PWait,
        timeout: Duration,
    },
    AssertText(Vec<(Text, Text)>),
    Extract(Vec<(String, Text, Option<String>)>),
    Screenshot(String),
    IfPresent {
        sel: Text,
        then: Vec<PAction>,
    },
}

#[derive(Debug, Clone)]
pub enum PWait {
    Selector(Text),
    Text(Text),
    Url(Text),
}

#[derive(Debug, Clone)]
pub struct PRejected {
    pub sel: Text,
    pub text: Option<Text>,
}

#[derive(Debug, Clone)]
pub struct PlannedBrowser {
    pub sessions: usize,
    pub wait: Duration,
    /// The most one WebDriver command may take.
    pub command_timeout: Duration,
    /// How the portal shows it refused a submission.
    pub rejected_if: Option<PRejected>,
    /// The ledger key; None: `<workflow>/<step id>/<item key>`.
    pub idempotency_key: Option<Text>,
    pub login: Vec<PAction>,
    /// How to recognise the login page; None when there is no `login`.
    pub logged_out: Option<PWait>,
    pub actions: Vec<PAction>,
    pub base_dir: PathBuf,
}

pub(crate) fn plan(raw: &crate::spec::Node, path: &str, cx: &mut PlanCx) -> Option<Box<dyn crate::engine::ItemStep>> {
    let spec: BrowserSpec = cx.spec(raw, path)?;
    plan_spec(&spec, path, cx).map(|p| Box::new(p) as Box<dyn crate::engine::ItemStep>)
}

fn plan_spec(spec: &BrowserSpec, path: &str, cx: &mut PlanCx) -> Option<PlannedBrowser> {
    let mut bad_duration = false;
    let sessions = match spec.sessions {
        Some(0) => {
            cx.error(&format!("{path}.sessions"), "`sessions` must be at least 1", None);
            bad_duration = true;
            1
        }
        Some(n) => n as usize,
        None => 1,
    };
    let wait = match spec.wait.as_deref() {
        Some(w) => duration(cx, &format!("{path}.wait"), w).unwrap_or_else(|| {
            bad_duration = true;
            DEFAULT_WAIT
        }),
        None => DEFAULT_WAIT,
    };
    let command_timeout = match spec.command_timeout.as_deref() {
        Some(w) => duration(cx, &format!("{path}.command_timeout"), w).unwrap_or_else(|| {
            bad_duration = true;
            DEFAULT_COMMAND_TIMEOUT
        }),
        None => DEFAULT_COMMAND_TIMEOUT,
    };
    if command_timeout.is_zero() {
        cx.error(&format!("{path}.command_timeout"), "`command_timeout` must be more than 0s", None);
        bad_duration = true;
    }
    let mode = spec.input.unwrap_or(InputMode::Set);
    let mut p = Planner { cx, mode, wait, failed: bad_duration };
    let login = p.actions(&spec.login, &format!("{path}.login"), false);
    let actions = p.actions(&spec.actions, &format!("{path}.actions"), true);
    if spec.actions.is_empty() {
        p.err(&format!("{path}.actions"), "`actions` is empty", Some("list what to do for each item".into()));
    }
    let second_submit = spec.actions.iter().enumerate().filter(|(_, a)| a.submit.is_some()).nth(1).map(|(i, _)| i);
    if let Some(i) = second_submit {
        p.err(
            &format!("{path}.actions[{i}].submit"),
            "more than one `submit` action",
            Some("mark only the click that sends the record as `submit`; use `click` for the others".into()),
        );
    }
    let logged_out = match &spec.logged_out_when {
        Some(w) => Some(p.wait(w, &format!("{path}.logged_out_when")).0),
        None => default_logged_out(&spec.login),
    };
    if !spec.login.is_empty() && logged_out.is_none() {
        p.err(
            &format!("{path}.login"),
            "cannot tell when the portal logged the session out",
            Some("start `login` with a `goto` to the login page, or set `logged_out_when`".into()),
        );
    }
    let has_submit = spec.actions.iter().any(|a| a.submit.is_some());
    let rejected_if = spec.rejected_if.as_ref().map(|r| p.rejected(r, &format!("{path}.rejected_if"), has_submit));
    let idempotency_key = spec.idempotency_key.as_deref().and_then(|k| p.key(k, &format!("{path}.idempotency_key"), has_submit));
    if p.failed {
        return None;
    }
    Some(PlannedBrowser {
        sessions,
        wait,
        command_timeout,
        rejected_if,
        idempotency_key,
        login,
        logged_out,
        actions,
        base_dir: p.cx.base_dir().to_path_buf(),
    })
}

/// Default "logged out" test: the browser is on the path of the login page (`/login` of
/// `goto: "{{vars.portal_url}}/login"`), compared as a substring of the current URL.
fn default_logged_out(login: &[ActionSpec]) -> Option<PWait> {
    let url = login.iter().find_map(|a| a.goto.as_deref())?;
    // Strip a templated origin: whatever follows the last `}}`, or the path of a literal URL.
    let tail = match url.rfind("}}") {
        Some(i) => url[i + 2..].to_string(),
        None => url::Url::parse(url).map(|u| u.path().to_string()).unwrap_or_else(|_| url.to_string()),
    };
    let tail = tail.split(['?', '#']).next().unwrap_or("").to_string();
    if tail.is_empty() || tail == "/" || tail.contains("{{") {
        return None;
    }
    Some(PWait::Url(Text::Lit(tail)))
}

fn duration(cx: &mut PlanCx, path: &str, s: &str) -> Option<Duration> {
    match humantime::parse_duration(s) {
        Ok(d) => match crate::config::limits::duration_problem(s, d) {
            None => Some(d),
            Some(m) => {
                cx.error(path, m, Some("write it like `5s`, `500ms` or `1m`".into()));
                None
            }
        },
        Err(_) => {
            cx.error(path, format!("`{s}` is not a duration"), Some("write it like `5s`, `500ms` or `1m`".into()));
            None
        }
    }
}

struct Planner<'c, 'a> {
    cx: &'c mut PlanCx<'a>,
    mode: InputMode,
    wait: Duration,
    /// Set by `err` and by templates that did not compile.
    failed: bool,
}

const KINDS: &[&str] = &[
    "goto",
    "fill",
    "select",
    "check",
    "uncheck",
    "click",
    "submit",
    "press",
    "upload",
    "wait_for",
    "assert_text",
    "extract",
    "screenshot",
    "if_present",
];

impl Planner<'_, '_> {
    fn err(&mut self, path: &str, message: impl Into<String>, help: Option<String>) {
        self.failed = true;
        self.cx.error(path, message, help);
    }

    fn text(&mut self, path: &str, s: &str) -> Text {
        if s.contains("{{") {
            match self.cx.template(path, s) {
                Some(t) => Text::Tpl(t),
                None => {
                    self.failed = true;
                    Text::Lit(String::new())
                }
            }
        } else {
            Text::Lit(s.to_string())
        }
    }

    fn rejected(&mut self, r: &RejectedSpec, path: &str, has_submit: bool) -> PRejected {
        if !has_submit {
            self.err(path, "`rejected_if` needs a `submit` action", Some("mark the click that sends the record as `submit`".into()));
        }
        if r.selector.trim().is_empty() {
            self.err(
                &format!("{path}.selector"),
                "`selector` is empty",
                Some("name the element a refused submission shows, like `.error`".into()),
            );
        }
        let text = match r.text.as_deref() {
            Some("") => {
                self.err(
                    &format!("{path}.text"),
                    "`text` is empty",
                    Some("leave `text` out to count any visible match as a refusal".into()),
                );
                None
            }
            Some(t) => Some(self.text(&format!("{path}.text"), t)),
            None => None,
        };
        PRejected { sel: self.text(&format!("{path}.selector"), &r.selector), text }
    }

    /// The ledger key: a template that must tell the items apart and, being stored as it
    /// renders, must not hold a secret.
    fn key(&mut self, src: &str, path: &str, has_submit: bool) -> Option<Text> {
        if !has_submit {
            self.err(path, "`idempotency_key` needs a `submit` action", Some("it names what the `submit` click sends".into()));
        }
        if self.cx.forbid_secrets(path, src, "an idempotency key") {
            self.failed = true;
        }
        let refs = crate::plan::refs::var_refs(src, &[]);
        if !refs.iter().any(|r| r.root() == "item") {
            self.err(
                path,
                format!("`{src}` is the same for every item, so only the first would be submitted"),
                Some("build it from the record, like `returns/{{params.month}}/{{item.order_id}}`".into()),
            );
        }
        let t = self.cx.template(path, src);
        self.failed |= t.is_none();
        t.map(Text::Tpl)
    }

    fn actions(&mut self, list: &[ActionSpec], path: &str, allow_submit: bool) -> Vec<PAction> {
        let mut out = Vec::new();
        for (i, a) in list.iter().enumerate() {
            let p = format!("{path}[{i}]");
            if let Some(pa) = self.action(a, &p, allow_submit) {
                out.push(pa);
            }
        }
        out
    }

    fn fields(&mut self, map: &FieldMap, path: &str) -> Vec<(Text, Text)> {
        let mut out = Vec::new();
        for (sel, v) in map {
            let vp = format!("{path}.{sel}");
            let value = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => {
                    self.err(&vp, format!("the value for `{sel}` must be text"), None);
                    continue;
                }
            };
            let sel_t = self.text(path, sel);
            let val_t = self.text(&vp, &value);
            out.push((sel_t, val_t));
        }
        if out.is_empty() && map.is_empty() {
            self.err(path, "this map is empty", Some("write `{ selector: value }`".into()));
        }
        out
    }

    fn wait(&mut self, w: &WaitSpec, path: &str) -> (PWait, Option<Duration>) {
        match w {
            WaitSpec::Selector(s) => (PWait::Selector(self.text(path, s)), None),
            WaitSpec::Detailed(d) => {
                let timeout = match d.timeout.as_deref() {
                    Some(t) => {
                        let d = duration(self.cx, &format!("{path}.timeout"), t);
                        self.failed |= d.is_none();
                        d
                    }
                    None => None,
                };
                let set = [&d.selector, &d.text, &d.url].iter().filter(|x| x.is_some()).count();
                if set != 1 {
                    self.err(path, "give exactly one of `selector`, `text` or `url`", None);
                }
                let target = if let Some(s) = &d.selector {
                    PWait::Selector(self.text(&format!("{path}.selector"), s))
                } else if let Some(t) = &d.text {
                    PWait::Text(self.text(&format!("{path}.text"), t))
                } else {
                    PWait::Url(self.text(&format!("{path}.url"), d.url.as_deref().unwrap_or("")))
                };
                (target, timeout)
            }
        }
    }

    fn action(&mut self, a: &ActionSpec, path: &str, allow_submit: bool) -> Option<PAction> {
        let present: Vec<&str> = KINDS.iter().copied().filter(|k| has_kind(a, k)).collect();
        if present.len() != 1 {
            let msg = if present.is_empty() {
                "this action has no action key".to_string()
            } else {
                format!(
                    "this action has {} action keys: {}",
                    present.len(),
                    present.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                )
            };
            self.err(path, msg, Some(format!("write one action per list entry, one of: {}", KINDS.join(", "))));
            return None;
        }
        let kind = present[0];
        let kp = format!("{path}.{kind}");
        if a.input.is_some() && kind != "fill" {
            self.err(&format!("{path}.input"), "`input` only applies to `fill`", None);
        }
        if a.then.is_some() && kind != "if_present" {
            self.err(&format!("{path}.then"), "`then` only applies to `if_present`", None);
        }
        Some(match kind {
            "goto" => PAction::Goto(self.text(&kp, a.goto.as_deref()?)),
            "fill" => PAction::Fill { fields: self.fields(a.fill.as_ref()?, &kp), mode: a.input.unwrap_or(self.mode) },
            "select" => PAction::Select(self.fields(a.select.as_ref()?, &kp)),
            "check" => PAction::Check { sel: self.text(&kp, a.check.as_deref()?), on: true },
            "uncheck" => PAction::Check { sel: self.text(&kp, a.uncheck.as_deref()?), on: false },
            "click" => PAction::Click(self.text(&kp, a.click.as_deref()?)),
            "submit" => {
                if !allow_submit {
                    self.err(&kp, "`submit` is only allowed in `actions`", Some("use `click` here".into()));
                }
                PAction::Submit(self.text(&kp, a.submit.as_deref()?))
            }
            "press" => {
                let (on, key) = match a.press.as_ref()? {
                    PressSpec::Key(k) => (None, k.clone()),
                    PressSpec::On(m) if m.len() == 1 => {
                        let (s, k) = m.iter().next()?;
                        (Some(self.text(&kp, s)), k.clone())
                    }
                    PressSpec::On(_) => {
                        self.err(&kp, "`press` takes one `{ selector: key }` pair", None);
                        return None;
                    }
                };
                let Some(key) = Key::by_name(&key) else {
                    self.err(&kp, format!("unknown key `{key}`"), Some(format!("use one of: {}", Key::NAMES.join(", "))));
                    return None;
                };
                PAction::Press { on, key }
            }
            "upload" => {
                let map = a.upload.as_ref()?;
                // `fields` keeps the values that are text, in order: the rules follow the same ones.
                let rules = map.values().filter_map(|v| match v {
                    serde_json::Value::String(s) => Some(PathRule::of(s)),
                    serde_json::Value::Number(_) | serde_json::Value::Bool(_) => Some(PathRule::of("")),
                    _ => None,
                });
                PAction::Upload(self.fields(map, &kp).into_iter().zip(rules).map(|((s, p), r)| (s, p, r)).collect())
            }
            "wait_for" => {
                let (target, timeout) = self.wait(a.wait_for.as_ref()?, &kp);
                PAction::WaitFor { target, timeout: timeout.unwrap_or(self.wait) }
            }
            "assert_text" => PAction::AssertText(self.fields(a.assert_text.as_ref()?, &kp)),
            "extract" => {
                let mut v = Vec::new();
                for (name, x) in a.extract.as_ref()? {
                    let (sel, attr) = match x {
                        ExtractSpec::Text(s) => (s, None),
                        ExtractSpec::Attribute(d) => (&d.selector, d.attribute.clone()),
                    };
                    let t = self.text(&format!("{kp}.{name}"), sel);
                    v.push((name.clone(), t, attr));
                }
                PAction::Extract(v)
            }
            "screenshot" => PAction::Screenshot(a.screenshot.clone()?),
            "if_present" => {
                let sel = self.text(&kp, a.if_present.as_deref()?);
                let Some(then) = &a.then else {
                    self.err(path, "`if_present` needs `then`", Some("add `then:` with the actions to run when it matches".into()));
                    return None;
                };
                let then = self.actions(then, &format!("{path}.then"), false);
                PAction::IfPresent { sel, then }
            }
            _ => return None,
        })
    }
}

fn has_kind(a: &ActionSpec, k: &str) -> bool {
    match k {
        "goto" => a.goto.is_some(),
        "fill" => a.fill.is_some(),
        "select" => a.select.is_some(),
        "check" => a.check.is_some(),
        "uncheck" => a.uncheck.is_some(),
        "click" => a.click.is_some(),
        "submit" => a.submit.is_some(),
        "press" => a.press.is_some(),
        "upload" => a.upload.is_some(),
        "wait_for" => a.wait_for.is_some(),
        "assert_text" => a.assert_text.is_some(),
        "extract" => a.extract.is_some(),
        "screenshot" => a.screenshot.is_some(),
        "if_present" => a.if_present.is_some(),
        _ => false,
    }
}

/// Renders planned actions for one item. Errors are template errors (strict mode: a missing
/// field of the item), reported with the text that failed.
pub struct Renderer<'a> {
    pub templates: &'a Templates,
    pub ctx: &'a serde_json::Value,
    pub base_dir: &'a Path,
}

impl Renderer<'_> {
    pub fn text(&self, t: &Text) -> Result<String, String> {
        match t {
            Text::Lit(s) => Ok(s.clone()),
            Text::Tpl(tpl) => self.templates.render(tpl, self.ctx).map_err(|e| e.to_string()),
        }
    }

    fn sel(&self, t: &Text) -> Result<Selector, String> {
        Ok(Selector::parse(&self.text(t)?))
    }

    fn pairs(&self, v: &[(Text, Text)]) -> Result<Vec<(Selector, String)>, String> {
        v.iter().map(|(s, x)| Ok((self.sel(s)?, self.text(x)?))).collect()
    }

    pub fn wait(&self, w: &PWait) -> Result<WaitTarget, String> {
        Ok(match w {
            PWait::Selector(s) => WaitTarget::Selector(self.sel(s)?),
            PWait::Text(t) => WaitTarget::Text(self.text(t)?),
            PWait::Url(u) => WaitTarget::Url(self.text(u)?),
        })
    }

    pub fn rejected(&self, r: &PRejected) -> Result<Rejected, String> {
        Ok(Rejected { sel: self.sel(&r.sel)?, text: r.text.as_ref().map(|t| self.text(t)).transpose()? })
    }

    pub fn actions(&self, list: &[PAction]) -> Result<Vec<Action>, String> {
        list.iter().map(|a| self.action(a)).collect()
    }

    fn action(&self, a: &PAction) -> Result<Action, String> {
        Ok(match a {
            PAction::Goto(u) => Action::Goto(self.text(u)?),
            PAction::Fill { fields, mode } => Action::Fill { fields: self.pairs(fields)?, mode: *mode },
            PAction::Select(v) => Action::Select(self.pairs(v)?),
            PAction::Check { sel, on } => Action::Check { sel: self.sel(sel)?, on: *on },
            PAction::Click(s) => Action::Click(self.sel(s)?),
            PAction::Submit(s) => Action::Submit(self.sel(s)?),
            PAction::Press { on, key } => Action::Press { on: on.as_ref().map(|s| self.sel(s)).transpose()?, key: *key },
            PAction::Upload(v) => Action::Upload(
                v.iter()
                    .map(|(s, p, rule)| {
                        let p = self.text(p)?;
                        Ok((self.sel(s)?, rule.apply(self.base_dir, &p).map_err(|e| format!("refusing the upload: {e}"))?))
                    })
                    .collect::<Result<_, String>>()?,
            ),
            PAction::WaitFor { target, timeout } => Action::WaitFor { target: self.wait(target)?, timeout: *timeout },
            PAction::AssertText(v) => Action::AssertText(self.pairs(v)?),
            PAction::Extract(v) => Action::Extract(
                v.iter()
                    .map(|(n, s, a)| Ok(Extract { name: n.clone(), sel: self.sel(s)?, attribute: a.clone() }))
                    .collect::<Result<_, String>>()?,
            ),
            PAction::Screenshot(n) => Action::Screenshot(n.clone()),
            PAction::IfPresent { sel, then } => Action::IfPresent { sel: self.sel(sel)?, then: self.actions(then)? },
        })
    }
}
