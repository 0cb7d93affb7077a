//! The one-command lookups (`select`, `check`, the `submit` checks, `fill` in `set` mode)
//! against WebDriver's own: the same element, the same errors, the same state, on generated
//! pages and hostile values, in a real Chromium.

use std::time::Duration;

use cxflow::steps::browser::action::Action;
use cxflow::steps::browser::driver::{Driver, DriverConfig};
use cxflow::steps::browser::exec::{ActError, Page, Produced};
use cxflow::steps::browser::selector::Selector;
use cxflow::steps::browser::spec::InputMode;
use fantoccini::Client;

const PAGE: &str = r#"<!doctype html><meta charset="utf-8"><body>
<form id="f"><input id="a" name="a"><input class="x" id="b"><input class="x" id="c">
<textarea id="t"></textarea>
<input id="box" type="checkbox"><input id="boxed" type="checkbox" checked>
<input id="r1" type="radio" name="r"><input id="r2" type="radio" name="r" checked>
<select id="s"><option value="1">One</option><option id="o2" value="2" selected>Two</option></select>
<div id="d">text <span>inner</span></div><p>para</p><a href="\#top">Go there</a>
<input id="ü" value="umlaut"></form>
<script>window.events = []; for (const t of ['input', 'change', 'click'])
  document.addEventListener(t, e => window.events.push(e.type + ':' + e.target.id), true);</script>
</body>"#;

/// Selectors of every kind, matching or not, valid or not.
const SELECTORS: &[&str] = &[
    "#a",
    ".x",
    "input",
    "#ü",
    "form > textarea",
    "#nope",
    "//input[@id='c']",
    "(//input)[2]",
    "//p/text()",
    "//input/@id",
    "//*[",
    "xpath=//select/option[2]",
    "#[",
    "div span",
    "link=Go there",
    "link=Nowhere",
];

async fn start() -> (Driver, Client, tempfile::TempDir) {
    let driver = Driver::start(DriverConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (client, _) = driver.new_session(dir.path()).await.unwrap();
    let html = format!("data:text/html;charset=utf-8,{}", urlencoding(PAGE));
    client.goto(&html).await.unwrap();
    (driver, client, dir)
}

fn urlencoding(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

fn page<'a>(client: &'a Client, secrets: &'a cxflow::secrets::Secrets) -> Page<'a> {
    Page { client, secrets, wait: Duration::from_millis(200), limit: Duration::from_secs(30) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_find_what_webdriver_finds_and_fail_the_same_way() {
    let (driver, client, _dir) = start().await;
    let secrets = cxflow::secrets::Secrets::default();
    let page = page(&client, &secrets);
    for raw in SELECTORS {
        let sel = Selector::parse(raw);
        let slow = page.find(&sel, page.wait).await.map(|el| el.element_id().to_string()).map_err(|e| e.to_string());
        let fast = page
            .find_and(&sel, page.wait, "(el) => el.id", vec![])
            .await
            .map(|(el, _)| el.element_id().to_string())
            .map_err(|e| e.to_string());
        assert_eq!(fast, slow, "selector `{raw}`");
    }
    client.close().await.unwrap();
    driver.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reads_the_state_webdriver_reads() {
    let (driver, client, _dir) = start().await;
    let secrets = cxflow::secrets::Secrets::default();
    let page = page(&client, &secrets);
    let mut out = Produced::default();
    for raw in ["#box", "#boxed", "#r1", "#r2", "#o2", "#a", "#d"] {
        let sel = Selector::parse(raw);
        for on in [true, false, true] {
            let el = page.find(&sel, page.wait).await.unwrap();
            let state = el.is_selected().await;
            let r = page.run(&Action::Check { sel: sel.clone(), on }, &mut out).await;
            match state {
                // WebDriver says it cannot tell: so must the action, with WebDriver's words.
                Err(e) => assert_eq!(r.unwrap_err().to_string(), cxflow::steps::browser::exec::classify(e).to_string(), "{raw}"),
                Ok(_) => {
                    r.unwrap_or_else(|e| panic!("{raw} on={on}: {e}"));
                    let now = el.is_selected().await.unwrap();
                    match raw {
                        "#box" | "#boxed" => assert_eq!(now, on, "{raw} on={on}"),
                        // A click does not untick a radio button or an option: only ticking is checked.
                        "#r1" | "#r2" | "#o2" if on => assert!(now, "{raw}"),
                        _ => {}
                    }
                }
            }
        }
    }
    // Each click was a real one: the page saw the click, then input and change, as from a user.
    let events = client.execute("return window.events", vec![]).await.unwrap();
    let ev: Vec<String> = serde_json::from_value(events).unwrap();
    assert!(ev.windows(3).any(|w| w == ["click:box", "input:box", "change:box"]), "{ev:?}");
    client.close().await.unwrap();
    driver.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_and_select_take_hostile_values_as_data() {
    let (driver, client, _dir) = start().await;
    let secrets = cxflow::secrets::Secrets::default();
    let page = page(&client, &secrets);
    let mut out = Produced::default();
    let hostile = [
        "it's \"quoted\"",
        "back\\slash \\\" \\n",
        "</script><script>window.pwned=1</script>",
        "${window.pwned=1}`",
        "ünïcødé 漢字 🙂 \u{200b}",
        "line\nbreak",
        "",
    ];
    for v in hostile {
        let fill =
            Action::Fill { fields: vec![(Selector::parse("#a"), v.into()), (Selector::parse("#t"), v.into())], mode: InputMode::Set };
        page.run(&fill, &mut out).await.unwrap();
        for id in ["#a", "#t"] {
            let got = page.find(&Selector::parse(id), page.wait).await.unwrap().prop("value").await.unwrap().unwrap_or_default();
            // An <input> drops line breaks from its value; a <textarea> keeps them.
            let want = if id == "#a" { v.replace('\n', "") } else { v.to_string() };
            assert_eq!(got, want, "{id} {v:?}");
        }
        let e = page.run(&Action::Select(vec![(Selector::parse("#s"), v.into())]), &mut out).await.unwrap_err();
        assert!(e.to_string().starts_with(&format!("`#s` has no option with value or text `{v}`; options: 1 (One), 2 (Two)")), "{e}");
    }
    let pwned = client.execute("return window.pwned === undefined", vec![]).await.unwrap();
    assert_eq!(pwned, serde_json::json!(true));
    page.run(&Action::Select(vec![(Selector::parse("#s"), "One".into())]), &mut out).await.unwrap();
    let v = client.execute("return document.querySelector('#s').value", vec![]).await.unwrap();
    assert_eq!(v, serde_json::json!("1"));

    // The errors name the selector: a field that is not there, a selector that is not valid.
    let fill = |sel: &str| Action::Fill {
        fields: vec![(Selector::parse("#a"), "x".into()), (Selector::parse(sel), "y".into())],
        mode: InputMode::Set,
    };
    let e = page.run(&fill("#nope"), &mut out).await.unwrap_err();
    assert_eq!(e.to_string(), "no element matches `#nope` after 200ms");
    let e = page.run(&fill("#["), &mut out).await.unwrap_err();
    assert!(matches!(e, ActError::Page(_)));
    assert_eq!(e.to_string(), "`#[` is not a valid selector");
    let e = page.run(&Action::Select(vec![(Selector::parse("#a"), "x".into())]), &mut out).await.unwrap_err();
    assert_eq!(e.to_string(), "`#a` is not a <select> element");
    client.close().await.unwrap();
    driver.shutdown().await;
}
