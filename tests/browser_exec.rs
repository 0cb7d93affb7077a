//! The action executor against the demo portal in a real Chromium: every action kind once.

use std::time::Duration;

use cxflow::demo_portal::{self, PortalOptions};
use cxflow::steps::browser::action::{Action, Extract, Key, WaitTarget};
use cxflow::steps::browser::driver::{Driver, DriverConfig};
use cxflow::steps::browser::exec::{ActError, Page, Produced};
use cxflow::steps::browser::selector::Selector;
use cxflow::steps::browser::spec::InputMode;

fn s(x: &str) -> Selector {
    Selector::parse(x)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_kind_against_the_portal() {
    let opts = PortalOptions { cookie_banner: true, ..Default::default() };
    let portal = demo_portal::serve("127.0.0.1:0".parse().unwrap(), opts).await.unwrap();
    let url = portal.url();
    let driver = Driver::start(DriverConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (client, _) = driver.new_session(dir.path()).await.unwrap();
    let no_secrets = cxflow::secrets::Secrets::default();
    let page = Page { client: &client, secrets: &no_secrets, wait: Duration::from_secs(3), limit: Duration::from_secs(30) };
    let upload = dir.path().join("receipt.txt");
    std::fs::write(&upload, "receipt 42").unwrap();
    let mut out = Produced::default();
    let script = vec![
        Action::Goto(format!("{url}/login")),
        Action::Fill { fields: vec![(s("#username"), "demo".into())], mode: InputMode::Type },
        Action::Fill { fields: vec![(s("//input[@id='password']"), "demo-pass".into())], mode: InputMode::Set },
        Action::Press { on: Some(s("#password")), key: Key::by_name("Enter").unwrap() },
        Action::WaitFor { target: WaitTarget::Selector(s("#dashboard")), timeout: Duration::from_secs(5) },
        Action::Click(s("link=Register a return")),
        Action::WaitFor { target: WaitTarget::Url("/returns/new".into()), timeout: Duration::from_secs(5) },
        Action::IfPresent { sel: s("#cookie-banner"), then: vec![Action::Click(s("#accept-cookies"))] },
        Action::Fill {
            fields: vec![(s("#order"), "A-1".into()), (s("#email"), "a@example.com".into()), (s("#comment"), "torn box".into())],
            mode: InputMode::Set,
        },
        Action::Select(vec![(s("#reason"), "Wrong item sent".into())]),
        Action::Check { sel: s("#consent"), on: true },
        Action::Check { sel: s("#consent"), on: true },
        Action::Upload(vec![(s("#attachment"), upload.clone())]),
        Action::Extract(vec![Extract { name: "typed".into(), sel: s("#order"), attribute: Some("value".into()) }]),
        Action::Submit(s("#submit")),
        Action::WaitFor { target: WaitTarget::Text("Return registered".into()), timeout: Duration::from_secs(5) },
        Action::AssertText(vec![(s("#order-number"), "A-1".into())]),
        Action::Extract(vec![Extract { name: "confirmation_id".into(), sel: s("#confirmation"), attribute: None }]),
        Action::Screenshot("done".into()),
    ];
    for a in &script {
        page.run(a, &mut out).await.unwrap_or_else(|e| panic!("{a}: {e}"));
    }
    assert_eq!(out.output["confirmation_id"], "RT-000001");
    assert_eq!(out.output["typed"], "A-1");
    assert!(out.screenshots[0].1.starts_with(b"\x89PNG"));
    let recs = portal.records();
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!((r.order.as_str(), r.email.as_str(), r.reason.as_str()), ("A-1", "a@example.com", "wrong_item"));
    assert_eq!(r.comment, "torn box");
    assert!(r.consent);
    assert_eq!(r.attachment_name.as_deref(), Some("receipt.txt"));
    assert_eq!(r.attachment_size, 10);

    // Errors name the selector and say what was wrong.
    let quick = Page { client: &client, secrets: &no_secrets, wait: Duration::from_millis(300), limit: Duration::from_secs(30) };
    let e = quick.run(&Action::Click(s("#nope")), &mut out).await.unwrap_err();
    assert!(matches!(e, ActError::Page(_)));
    assert_eq!(e.to_string(), "no element matches `#nope` after 300ms");
    page.run(&Action::Goto(format!("{url}/returns/new")), &mut out).await.unwrap();
    let e = page.run(&Action::Select(vec![(s("#reason"), "bored".into())]), &mut out).await.unwrap_err();
    assert!(
        e.to_string()
            .starts_with("`#reason` has no option with value or text `bored`; options: \"\" (Choose…), damaged (Item arrived damaged)"),
        "{e}"
    );

    client.close().await.unwrap();
    driver.shutdown().await;
    portal.stop().await.unwrap();
}
