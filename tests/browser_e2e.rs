//! The `browser` step end to end: the real binary, a real Chromium through chromedriver, the
//! demo portal on loopback, a temp SQLite run log. Needs `chromium` and `chromedriver`
//! (`apt-get install -y chromium chromium-driver`); the tests fail without them.

mod browser_common;
mod support;

use std::time::Duration;

use browser_common::*;
use cxflow::demo_portal::PortalOptions;

#[test]
fn every_record_submitted_once_with_two_parallel_sessions() {
    let portal = BgPortal::start(PortalOptions { cookie_banner: true, ..Default::default() });
    let n = 12;
    let p = project(&portal, n, "      sessions: 2", |_| "email".into());
    let out = cxflow(&p).args(["run", "returns"]).output().unwrap();
    let run = support::Run::from(out);
    run.expect_code(0);
    let recs = portal.records();
    assert_eq!(recs.len(), n, "{:#?}", recs);
    assert!(duplicates(&recs).is_empty());
    for want in rows(n) {
        let r = recs.iter().find(|r| r.order == want[0]).unwrap_or_else(|| panic!("{} missing", want[0]));
        assert_eq!(r.email, want[1]);
        let code = match want[2].as_str() {
            "Wrong item sent" => "wrong_item", // chosen by visible text
            other => other,
        };
        assert_eq!(r.reason, code);
        assert!(r.consent);
    }
    let sessions: std::collections::HashSet<_> = recs.iter().map(|r| r.session.clone()).collect();
    assert_eq!(sessions.len(), 2, "two parallel sessions should both submit");
    // The run log keeps each item's confirmation number as its output.
    let outputs = p.query("SELECT item_key, output FROM items WHERE step_id = 'register' ORDER BY seq");
    assert_eq!(outputs.len(), n);
    for row in &outputs {
        let (key, output) = row.split_once('|').unwrap();
        let rec = recs.iter().find(|r| r.order == key).unwrap();
        assert_eq!(output, format!(r#"{{"confirmation_id":"{}"}}"#, rec.confirmation_id));
    }
    assert_eq!(p.query("SELECT count(*) FROM ledger WHERE state = 'sent'"), vec![n.to_string()]);
    assert!(files_containing(p.path(), PASSWORD).is_empty());
}

#[test]
fn missing_selector_saves_artifacts_names_the_action_and_the_run_goes_on() {
    let portal = BgPortal::start(PortalOptions::default());
    let n = 4;
    // Record 3 points its email at a field the form does not have.
    let p = project(&portal, n, "      wait: 1s", |i| if i == 3 { "emial".into() } else { "email".into() });
    let run = support::Run::from(cxflow(&p).args(["run", "returns"]).output().unwrap());
    run.expect_code(1);
    let recs = portal.records();
    assert_eq!(recs.len(), n - 1);
    assert!(recs.iter().all(|r| r.order != "SO-5003"));
    let err = p.query("SELECT error FROM items WHERE item_key = 'SO-5003'");
    let err = &err[0];
    assert!(err.starts_with("action 3 (fill `#order`, `#emial`): no element matches `#emial` after 1s; page `"), "{err}");
    assert!(err.contains("/returns/new` (title `New return · Demo Returns Portal`) showed: Register a return Order number"), "{err}");
    let arts = p.query("SELECT kind, path FROM artifacts WHERE item_key = 'SO-5003' ORDER BY kind");
    assert_eq!(arts.len(), 2, "{arts:?}");
    let html = arts[0].split_once('|').unwrap().1;
    let png = arts[1].split_once('|').unwrap().1;
    // Paths in the run log are relative to the project folder unless configured absolute.
    assert!(std::fs::read(p.path().join(png)).unwrap().starts_with(b"\x89PNG"));
    assert!(std::fs::read_to_string(p.path().join(html)).unwrap().contains("id=\"return-form\""));
    // `cxflow show` lists the failed item with its error and artifacts.
    let show = support::Run::from(p.cxflow().args(["show", "1"]).output().unwrap());
    assert!(show.stdout.contains("no element matches `#emial`"), "{}", show.stdout);
    assert!(show.stdout.contains(png), "{}", show.stdout);
    assert!(files_containing(p.path(), PASSWORD).is_empty());
}

#[test]
fn expired_session_logs_in_again_and_redoes_the_item() {
    let portal = BgPortal::start(PortalOptions { expire_after: Some(3), ..Default::default() });
    let n = 10;
    let p = project(&portal, n, "      sessions: 1", |_| "email".into());
    support::Run::from(cxflow(&p).args(["run", "returns"]).output().unwrap()).expect_code(0);
    let recs = portal.records();
    assert_eq!(recs.len(), n);
    assert!(duplicates(&recs).is_empty());
    let st = portal.stats();
    assert_eq!(st.expired_sessions, 3);
    assert_eq!(st.logins, 4, "one login, then one after each expiry");
}

#[test]
fn killed_chromedriver_is_restarted_and_nothing_is_submitted_twice() {
    let portal = BgPortal::start(PortalOptions { submit_delay_ms: 100, ..Default::default() });
    let n = 14;
    let p = project(&portal, n, "      sessions: 1", |_| "email".into());
    let child =
        cxflow(&p).args(["run", "returns"]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id() as i32;
    support::wait_until(Duration::from_secs(60), "4 records on the portal (no progress)", || portal.records().len() >= 4);
    let groups = driver_groups(pid);
    assert_eq!(groups.len(), 1);
    let driver: Vec<i32> = procs().into_iter().filter(|x| x.pgid == groups[0] && x.comm == "chromedriver").map(|x| x.pid).collect();
    assert_eq!(driver.len(), 1);
    kill(driver[0], libc::SIGKILL);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let recs = portal.records();
    assert!(duplicates(&recs).is_empty());
    let ok = p.query("SELECT count(*) FROM items WHERE status = 'ok' AND step_id = 'register'")[0].parse::<usize>().unwrap();
    let uncertain = p.query("SELECT count(*) FROM ledger WHERE state = 'sending'")[0].parse::<usize>().unwrap();
    // At most the one record in flight when chromedriver died is uncertain; all others went
    // through after the restart.
    assert!(uncertain <= 1, "{uncertain} uncertain\n{stderr}");
    assert_eq!(ok + uncertain, n, "stderr:\n{stderr}");
    assert!(recs.len() >= ok && recs.len() <= n);
    for g in groups {
        // Killed by cxflow when it restarted chromedriver; dying processes take a moment to go.
        assert!(unkilled_in_group(g).is_empty(), "left behind: {:?}", unkilled_in_group(g));
        wait_group_gone(g, Duration::from_secs(10));
        assert!(live_in_group(g).is_empty(), "left behind: {:?}", live_in_group(g));
    }
}

#[test]
fn resume_after_sigkill_never_submits_a_record_twice() {
    let portal = BgPortal::start(PortalOptions { submit_delay_ms: 150, ..Default::default() });
    let n = 12;
    let p = project(&portal, n, "      sessions: 2", |_| "email".into());
    let mut child =
        cxflow(&p).args(["run", "returns"]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let pid = child.id() as i32;
    support::wait_until(Duration::from_secs(60), "4 records on the portal (no progress)", || portal.records().len() >= 4);
    let groups = driver_groups(pid);
    kill(pid, libc::SIGKILL);
    child.wait().unwrap();
    // The wrapper notices its parent is gone and takes chromedriver and Chromium with it.
    for g in &groups {
        wait_group_gone(*g, Duration::from_secs(5));
    }
    // The killed run could not remove its Chromium profiles; the next browser step does.
    let profiles = |pid: i32| -> Vec<std::path::PathBuf> {
        let marker = format!("-pid{pid}-");
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("cxflow-run") && n.to_string_lossy().contains(&marker))
            })
            .collect()
    };
    assert!(!profiles(pid).is_empty(), "the killed run left its profiles folder");
    let before = portal.records().len();
    let run = support::Run::from(cxflow(&p).args(["resume", "1"]).output().unwrap());
    assert!(profiles(pid).is_empty(), "profiles of the killed run still there: {:?}", profiles(pid));
    let recs = portal.records();
    assert!(duplicates(&recs).is_empty(), "submitted twice: {:?}", duplicates(&recs));
    let uncertain: Vec<String> = p.query("SELECT item_key FROM ledger WHERE state = 'sending'");
    assert!(uncertain.len() <= 2, "{uncertain:?}");
    for r in rows(n) {
        let on_portal = recs.iter().any(|x| x.order == r[0]);
        assert!(on_portal || uncertain.contains(&r[0]), "{} neither submitted nor reported uncertain", r[0]);
    }
    assert!(recs.len() > before);
    if uncertain.is_empty() {
        run.expect_code(0);
    } else {
        run.expect_code(1);
        let show = support::Run::from(p.cxflow().args(["show", "1"]).output().unwrap());
        assert!(show.stdout.contains("uncertain"), "{}", show.stdout);
        for k in &uncertain {
            assert!(show.stdout.contains(k.as_str()), "{}", show.stdout);
        }
    }
}

#[test]
fn sigterm_closes_every_browser_process_and_resume_finishes_the_rest() {
    let portal = BgPortal::start(PortalOptions { submit_delay_ms: 150, ..Default::default() });
    let n = 10;
    let p = project(&portal, n, "      sessions: 2", |_| "email".into());
    let child =
        cxflow(&p).args(["run", "returns"]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let pid = child.id() as i32;
    support::wait_until(Duration::from_secs(60), "3 records on the portal (no progress)", || portal.records().len() >= 3);
    let groups = driver_groups(pid);
    assert!(!groups.is_empty());
    kill(pid, libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stdout));
    // Closed by cxflow itself on the way out, not by the watchdog after it died.
    for g in &groups {
        // Every process was already killed when cxflow exited (a group left to the watchdog
        // would still be running); they are gone a moment later.
        assert!(unkilled_in_group(*g).is_empty(), "left behind after SIGTERM: {:?}", unkilled_in_group(*g));
        wait_group_gone(*g, Duration::from_secs(10));
        assert!(live_in_group(*g).is_empty(), "left behind after SIGTERM: {:?}", live_in_group(*g));
    }
    assert_eq!(p.query("SELECT status FROM runs"), ["interrupted"]);
    assert!(portal.records().len() < n, "the run finished before SIGTERM");
    support::Run::from(cxflow(&p).args(["resume", "1"]).output().unwrap()).expect_code(0);
    let recs = portal.records();
    assert!(duplicates(&recs).is_empty(), "submitted twice: {:?}", duplicates(&recs));
    assert_eq!(recs.len(), n);
}
