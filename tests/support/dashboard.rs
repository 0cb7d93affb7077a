//! The dashboard as a person uses it: `cxflow serve` or `cxflow ui` for a project, and a real
//! headless Chromium driven through WebDriver. chromedriver is started by cxflow's own driver
//! wrapper, so it and its browsers die with the test (also when it panics). Every wait is on a
//! condition with a deadline, never a fixed time: the machine is shared and loaded.
//!
//! Tests `mod support;` and then `#[path = "support/dashboard.rs"] mod dashboard;`, so only the
//! browser tests compile it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use cxflow::steps::browser::driver::{Driver, DriverConfig};
use fantoccini::{elements::Element, Client, Locator};
use serde_json::{json, Value};

use crate::support::serve::{Logs, Serve};
use crate::support::{wait_for_ok, wait_for_some};

/// How long any one condition may take on a loaded 2-core machine.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// A running `cxflow serve` or `cxflow ui` (killed when dropped) and the URL it printed.
pub(crate) struct Dashboard {
    pub base: String,
    pub logs: Logs,
    pub proc: Serve,
}

impl Dashboard {
    /// Starts `cmd` with `sub` (`serve` or `ui`) and reads `dashboard: http://ADDR/` from its
    /// stderr. `cmd` comes from `TestProject::cxflow`, which asks for a free port on 127.0.0.1.
    pub(crate) fn start(mut cmd: Command, sub: &str) -> Dashboard {
        let child = cmd.arg(sub).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("start cxflow");
        let mut proc = Serve(child);
        let logs = Logs::collect(&mut proc.0);
        let base = wait_for_some(Duration::from_secs(60), &format!("`cxflow {sub}` to print its address"), || {
            logs.text().lines().find_map(|l| l.split("dashboard: ").nth(1).map(|u| u.trim().trim_end_matches('/').to_string()))
        });
        assert!(base.starts_with("http://127.0.0.1:"), "the dashboard must listen on loopback only: {base}");
        Dashboard { base, logs, proc }
    }
}

/// One headless Chromium session at 1280×800 on `base`, with blocking helpers.
pub(crate) struct Browser {
    pub base: String,
    client: Option<Client>,
    driver: Driver,
    _profile: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let client = self.client.take();
        self.rt.block_on(async {
            if let Some(c) = client {
                let _ = tokio::time::timeout(Duration::from_secs(10), c.close()).await;
            }
            self.driver.shutdown().await;
        });
    }
}

/// Where the documentation's screenshots go, or None unless `CXFLOW_SCREENSHOTS=1` (so a normal
/// test run never rewrites the committed files).
fn screenshot_dir() -> Option<PathBuf> {
    (std::env::var("CXFLOW_SCREENSHOTS").as_deref() == Ok("1")).then(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots"))
}

impl Browser {
    pub(crate) fn open(base: &str) -> Browser {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let profile = tempfile::tempdir().unwrap();
        let (driver, client) = rt.block_on(async {
            let driver = Driver::start(DriverConfig::default()).await.expect("chromedriver (scripts/install-deps.sh installs it)");
            let (client, _) = driver.new_session(profile.path()).await.expect("a browser session");
            (driver, client)
        });
        let b = Browser { base: base.to_string(), client: Some(client), driver, _profile: profile, rt };
        b.viewport(1280, 800);
        b
    }

    /// Sizes the window so that the page itself (what a screenshot shows) is `w`×`h`: the
    /// window's own frame takes some of the window size.
    fn viewport(&self, w: u32, h: u32) {
        self.rt.block_on(self.c().set_window_size(w, h)).expect("window size");
        let inner = self.js("return [window.innerWidth, window.innerHeight]", vec![]);
        let (iw, ih) = (inner[0].as_u64().unwrap() as u32, inner[1].as_u64().unwrap() as u32);
        self.rt.block_on(self.c().set_window_size(2 * w - iw, 2 * h - ih)).expect("window size");
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// Opens `path` on the dashboard and waits for the page to have loaded.
    pub(crate) fn goto(&self, path: &str) {
        self.rt.block_on(self.c().goto(&format!("{}{path}", self.base))).unwrap_or_else(|e| panic!("open {path}: {e}"));
        self.wait_loaded();
    }

    /// Runs `script` in the page (`arguments[i]` are `args`) and returns what it returns.
    pub(crate) fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.rt.block_on(self.c().execute(script, args)).unwrap_or_else(|e| panic!("script `{script}`: {e}"))
    }

    /// Like `js`, an error (the page navigating away meanwhile) as `Err`.
    fn try_js(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        self.rt.block_on(self.c().execute(script, args)).map_err(|e| e.to_string())
    }

    fn wait_loaded(&self) {
        wait_for_ok(DEADLINE, "the page to load", || match self.try_js("return document.readyState", vec![]) {
            Ok(Value::String(s)) if s == "complete" => Ok(()),
            other => Err(format!("{other:?}")),
        });
    }

    /// The path and query of the page shown.
    pub(crate) fn path(&self) -> String {
        let u = self.rt.block_on(self.c().current_url()).unwrap();
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        }
    }

    /// Waits until an element matches `css` and returns its visible text.
    #[track_caller]
    pub(crate) fn wait_for(&self, css: &str) -> String {
        wait_for_ok(DEADLINE, &format!("`{css}` on {}", self.path()), || {
            match self.try_js("var e = document.querySelector(arguments[0]); return e ? e.innerText : null", vec![json!(css)])? {
                Value::String(s) => Ok(s),
                _ => Err("no match".into()),
            }
        })
    }

    /// Waits until the text of the first match of `css` contains `want`; returns the text.
    #[track_caller]
    pub(crate) fn wait_text(&self, css: &str, want: &str) -> String {
        wait_for_ok(DEADLINE, &format!("`{css}` to say `{want}` on {}", self.path()), || {
            match self.try_js("var e = document.querySelector(arguments[0]); return e ? e.innerText : null", vec![json!(css)])? {
                Value::String(s) if s.contains(want) => Ok(s),
                other => Err(format!("{other}")),
            }
        })
    }

    /// The element `css` matches (waiting for it), for WebDriver's own clicks and keys.
    fn element(&self, css: &str) -> Element {
        self.wait_for(css);
        self.rt.block_on(self.c().find(Locator::Css(css))).unwrap_or_else(|e| panic!("find `{css}`: {e}"))
    }

    /// Clicks `css` and waits for the page that follows to load (a link or a submit button).
    pub(crate) fn click_and_wait(&self, css: &str) {
        let el = self.element(css);
        // A marker on the old page: gone once the browser shows the new one.
        self.js("window.__cxflowOldPage = true", vec![]);
        self.rt.block_on(el.click()).unwrap_or_else(|e| panic!("click `{css}`: {e}"));
        wait_for_ok(DEADLINE, &format!("the page after clicking `{css}`"), || {
            match self.try_js("return window.__cxflowOldPage === true || document.readyState !== 'complete'", vec![])? {
                Value::Bool(false) => Ok(()),
                other => Err(format!("still the old page ({other})")),
            }
        });
    }

    /// Types `value` into the field `name` of `form` (a CSS selector), or picks it in a select,
    /// or checks the check box / radio button with that value.
    pub(crate) fn fill(&self, form: &str, name: &str, value: &str) {
        let css = format!("{form} [name=\"{name}\"]");
        let kind = self.js(
            "var e = document.querySelector(arguments[0]); return e ? (e.tagName === 'SELECT' ? 'select' : (e.type || '')) : ''",
            vec![json!(css)],
        );
        match kind.as_str() {
            Some("select") => {
                self.rt.block_on(self.element(&css).select_by_value(value)).unwrap_or_else(|e| panic!("select {value} in `{css}`: {e}"))
            }
            Some("checkbox") | Some("radio") => {
                let one = format!("{form} [name=\"{name}\"][value=\"{value}\"]");
                let el = self.element(&one);
                if self.js("return document.querySelector(arguments[0]).checked", vec![json!(one)]) != json!(true) {
                    self.rt.block_on(el.click()).unwrap_or_else(|e| panic!("check `{one}`: {e}"));
                }
            }
            _ => {
                let el = self.element(&css);
                self.rt
                    .block_on(async {
                        el.clear().await?;
                        el.send_keys(value).await
                    })
                    .unwrap_or_else(|e| panic!("type into `{css}`: {e}"));
            }
        }
    }

    /// Submits the form `form` with its own submit button and waits for the answer page.
    pub(crate) fn submit(&self, form: &str) {
        self.click_and_wait(&format!("{form} button[type=submit]"));
    }

    /// Waits until the `<img>` `css` has loaded a real picture; returns its natural width.
    pub(crate) fn wait_image(&self, css: &str) -> u64 {
        self.js("var e = document.querySelector(arguments[0]); if (e) { e.loading = 'eager'; e.scrollIntoView(); }", vec![json!(css)]);
        wait_for_ok(DEADLINE, &format!("the image `{css}` to load"), || {
            match self
                .try_js("var e = document.querySelector(arguments[0]); return e && e.complete ? e.naturalWidth : -1", vec![json!(css)])?
            {
                Value::Number(n) if n.as_i64().unwrap_or(0) > 0 => Ok(n.as_u64().unwrap()),
                other => Err(format!("naturalWidth {other}")),
            }
        })
    }

    /// Waits until the document inside the `<iframe>` `css` shows `want` and returns its text.
    /// WebDriver enters the frame as a person sees it: a sandboxed frame, whose content the
    /// page's own scripts cannot read, is read all the same.
    #[track_caller]
    pub(crate) fn wait_frame_text(&self, css: &str, want: &str) -> String {
        self.js("var e = document.querySelector(arguments[0]); if (e) { e.loading = 'eager'; e.scrollIntoView(); }", vec![json!(css)]);
        wait_for_ok(DEADLINE, &format!("the frame `{css}` to show `{want}`"), || {
            let el = self.rt.block_on(self.c().find(Locator::Css(css))).map_err(|e| e.to_string())?;
            let text = self.rt.block_on(async {
                el.enter_frame().await?;
                let text = match self.c().find(Locator::Css("body")).await {
                    Ok(b) => b.text().await,
                    Err(e) => Err(e),
                };
                self.c().enter_parent_frame().await?;
                text
            });
            match text {
                Ok(t) if t.contains(want) => Ok(t),
                Ok(t) => Err(format!("it shows: {t}")),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    /// Saves a PNG of what the window shows as `docs/screenshots/NAME.png`, scrolled to the top
    /// or to `at`, only when `CXFLOW_SCREENSHOTS=1`.
    pub(crate) fn shot(&self, name: &str, at: Option<&str>) {
        let Some(dir) = screenshot_dir() else { return };
        std::fs::create_dir_all(&dir).unwrap();
        match at {
            Some(css) => self.js("document.querySelector(arguments[0]).scrollIntoView()", vec![json!(css)]),
            None => self.js("window.scrollTo(0, 0)", vec![]),
        };
        let png = self.rt.block_on(self.c().screenshot()).unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Logs in as a person does: the dashboard sends a caller without a session to `/login`,
    /// the form logs them in and returns them to the page they asked for. With no users (local
    /// mode) every caller is `local` admin and there is nothing to do. `shot` names the login
    /// page's screenshot (one test takes it).
    pub(crate) fn login(&self, user: Option<(&str, &str)>, shot: Option<&str>) {
        let Some((name, password)) = user else { return };
        self.goto("/runs");
        let path = self.path();
        assert!(path.starts_with("/login?"), "a caller without a session is sent to the login page, not {path}");
        let form = "form[action=\"/login\"]";
        self.wait_for(form);
        if let Some(name) = shot {
            self.shot(name, None);
        }
        self.fill(form, "name", name);
        self.fill(form, "password", password);
        self.submit(form);
        let page = self.wait_for("body");
        assert_eq!(self.path(), "/runs", "after logging in as {name}, back on the page asked for; the page says: {page}");
        self.wait_text("header .who", name);
    }
}
