//! Actions with their templates rendered for one item: what `exec.rs` runs.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::selector::Selector;
use super::spec::InputMode;

#[derive(Debug, Clone)]
pub enum Action {
    Goto(String),
    Fill { fields: Vec<(Selector, String)>, mode: InputMode },
    Select(Vec<(Selector, String)>),
    Check { sel: Selector, on: bool },
    Click(Selector),
    Submit(Selector),
    Press { on: Option<Selector>, key: Key },
    Upload(Vec<(Selector, PathBuf)>),
    WaitFor { target: WaitTarget, timeout: Duration },
    AssertText(Vec<(Selector, String)>),
    Extract(Vec<Extract>),
    Screenshot(String),
    IfPresent { sel: Selector, then: Vec<Action> },
}

#[derive(Debug, Clone)]
pub enum WaitTarget {
    Selector(Selector),
    Text(String),
    Url(String),
}

/// How the portal shows it refused a submission: a visible element matching `sel`, whose text
/// contains `text` when given.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub sel: Selector,
    pub text: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Extract {
    pub name: String,
    pub sel: Selector,
    pub attribute: Option<String>,
}

/// A key `press` knows, by the name used in workflows.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    pub code: fantoccini::key::Key,
}

impl Key {
    pub const NAMES: &'static [&'static str] = &[
        "Enter",
        "Tab",
        "Escape",
        "Backspace",
        "Delete",
        "Space",
        "ArrowUp",
        "ArrowDown",
        "ArrowLeft",
        "ArrowRight",
        "Home",
        "End",
        "PageUp",
        "PageDown",
    ];

    pub fn by_name(name: &str) -> Option<Key> {
        use fantoccini::key::Key as K;
        let code = match name {
            "Enter" => K::Enter,
            "Tab" => K::Tab,
            "Escape" => K::Escape,
            "Backspace" => K::Backspace,
            "Delete" => K::Delete,
            "Space" => K::Space,
            "ArrowUp" => K::Up,
            "ArrowDown" => K::Down,
            "ArrowLeft" => K::Left,
            "ArrowRight" => K::Right,
            "Home" => K::Home,
            "End" => K::End,
            "PageUp" => K::PageUp,
            "PageDown" => K::PageDown,
            _ => return None,
        };
        let name = Key::NAMES.iter().find(|n| **n == name)?;
        Some(Key { name, code })
    }
}

/// Short form used in error messages: the action name and its selector(s), never values
/// (values may be secrets or personal data).
impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn sels<'a>(it: impl Iterator<Item = &'a Selector>) -> String {
            it.map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
        }
        match self {
            Action::Goto(url) => write!(f, "goto `{url}`"),
            Action::Fill { fields, .. } => write!(f, "fill {}", sels(fields.iter().map(|x| &x.0))),
            Action::Select(v) => write!(f, "select {}", sels(v.iter().map(|x| &x.0))),
            Action::Check { sel, on: true } => write!(f, "check `{sel}`"),
            Action::Check { sel, on: false } => write!(f, "uncheck `{sel}`"),
            Action::Click(s) => write!(f, "click `{s}`"),
            Action::Submit(s) => write!(f, "submit `{s}`"),
            Action::Press { on: Some(s), key } => write!(f, "press `{}` in `{s}`", key.name),
            Action::Press { on: None, key } => write!(f, "press `{}`", key.name),
            Action::Upload(v) => write!(f, "upload {}", sels(v.iter().map(|x| &x.0))),
            Action::WaitFor { target: WaitTarget::Selector(s), .. } => write!(f, "wait_for `{s}`"),
            Action::WaitFor { target: WaitTarget::Text(t), .. } => write!(f, "wait_for text `{t}`"),
            Action::WaitFor { target: WaitTarget::Url(u), .. } => write!(f, "wait_for url `{u}`"),
            Action::AssertText(v) => write!(f, "assert_text {}", sels(v.iter().map(|x| &x.0))),
            Action::Extract(v) => write!(f, "extract {}", sels(v.iter().map(|x| &x.sel))),
            Action::Screenshot(n) => write!(f, "screenshot `{n}`"),
            Action::IfPresent { sel, .. } => write!(f, "if_present `{sel}`"),
        }
    }
}
