//! Secrets in the `browser` step end to end: the real binary, Chromium through chromedriver, the
//! demo portal on loopback. A secret the portal echoes (HTML-escaped), puts in a URL
//! (percent-encoded) or shows in a field appears in no output, artifact or screenshot.

mod browser_common;
mod support;

use browser_common::*;
use cxflow::demo_portal::PortalOptions;
use support::{Run, TestProject};

/// A login with characters that HTML and URLs encode.
const USER: &str = "ops&team<7>";

fn forms() -> [&'static str; 5] {
    [USER, "ops&amp;team&lt;7&gt;", "ops&team%3C7%3E", "ops%26team%3C7%3E", "OPS&TEAM<7>"]
}

fn project(portal: &BgPortal) -> TestProject {
    let p = TestProject::new();
    p.write("data/r.csv", "id,kind\nwith-secret,secret\nempty,empty\n");
    p.write(
        "workflows/w.yaml",
        &format!(
            r##"name: w
params:
  portal: {url}
secrets: [PORTAL_USER, PORTAL_PASSWORD]
steps:
  - id: r
    read_csv: data/r.csv
  # A secret in the URL, and typed into a text field, when the action after fails.
  - id: typed
    for_each: r
    item_key: "{{{{item.id}}}}"
    concurrency: 1
    on_error: continue
    browser:
      actions:
        - goto: "{{{{params.portal}}}}/login?hint={{{{secrets.PORTAL_USER}}}}"
        - fill: {{ "#username": "{{{{#if (eq item.kind 'secret')}}}}{{{{secrets.PORTAL_USER}}}}{{{{/if}}}}" }}
        - click: "h1"
        - wait_for: {{ selector: "#never", timeout: 1s }}
  # The portal greets the user by name, HTML-escaped, on the page the failure saves.
  - id: greeted
    for_each: r
    item_key: "{{{{item.id}}}}"
    concurrency: 1
    browser:
{login}      actions:
        - wait_for: {{ selector: "#never", timeout: 1s }}
"##,
            login = browser_common::LOGIN,
            url = portal.url
        ),
    );
    p
}

#[test]
fn a_secret_in_a_url_a_page_or_a_field_reaches_no_output_artifact_or_screenshot() {
    let portal = BgPortal::start(PortalOptions { user: USER.into(), ..Default::default() });
    let p = project(&portal);
    let r = Run::from(p.cxflow().env("PORTAL_USER", USER).env("PORTAL_PASSWORD", PASSWORD).args(["run", "w"]).output().unwrap());
    r.expect_code(1);
    let show = p.run(&["show", "1", "--json"]);
    show.expect_code(0);
    let errors = p.query("SELECT step_id, item_key, error FROM items ORDER BY step_id, item_key");
    assert_eq!(errors.len(), 4, "{errors:?}");
    // The URL each error quotes had the secret, percent-encoded by the browser.
    assert!(errors[2].contains("/login?hint=***"), "{errors:?}");
    let html = p.query("SELECT path FROM artifacts WHERE kind = 'html' AND step_id = 'greeted'");
    let page = std::fs::read_to_string(p.path().join(&html[0])).unwrap();
    assert!(page.contains("Welcome, ***"), "{page}");
    for form in forms() {
        for (what, text) in [("stdout", &r.stdout), ("stderr", &r.stderr), ("show --json", &show.stdout)] {
            assert!(!text.contains(form), "`{form}` in {what}: {text}");
        }
        assert_eq!(files_containing(p.path(), form), Vec::<String>::new(), "`{form}`");
    }
    // The field that held the secret looks as empty as the one that was left empty.
    let shots = p.query("SELECT path FROM artifacts WHERE kind = 'screenshot' AND step_id = 'typed' ORDER BY item_key");
    assert_eq!(shots.len(), 2, "{shots:?}");
    let (empty, secret) = (std::fs::read(p.path().join(&shots[0])).unwrap(), std::fs::read(p.path().join(&shots[1])).unwrap());
    assert!(empty == secret, "the screenshot with the secret typed in differs from the empty one: {shots:?}");
}
