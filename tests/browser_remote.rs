//! The `browser` step on a WebDriver server cxflow did not start (`webdriver_url`): a chromedriver
//! on loopback fills the demo portal, and a Selenium Grid's `/status` caps the sessions at its
//! Chrome slots without its password showing anywhere. Needs `chromium` and `chromedriver`.

mod browser_common;
mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use browser_common::*;
use cxflow::demo_portal::PortalOptions;

/// A chromedriver the test started on loopback; killed with every browser it started on drop.
struct External {
    child: Child,
    url: String,
}

impl External {
    /// The port is free when picked but released before chromedriver binds it: another listener
    /// (this binary's fake grid, a parallel test) may take it first. Then chromedriver exits, or
    /// something else answers; either way, start it again on another port.
    fn start() -> External {
        for _ in 0..5 {
            let port = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap().local_addr().unwrap().port();
            let child = Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .arg("--log-level=OFF")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("chromedriver on PATH (apt-get install -y chromium chromium-driver)");
            let addr = format!("127.0.0.1:{port}");
            // Bound to ::1 alone, chromedriver runs on, and the other listener keeps answering
            // on 127.0.0.1: give each port a while, then try another.
            let end = Instant::now() + Duration::from_secs(20);
            let mut external = External { child, url: format!("http://{addr}") };
            while Instant::now() < end && !matches!(external.child.try_wait(), Ok(Some(_))) {
                if chromedriver_status(&addr) {
                    return external;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("chromedriver did not answer /status on five ports in turn");
    }
}

/// True when a chromedriver answers `/status` at `addr` (its body names it ready), not merely
/// something listening there.
fn chromedriver_status(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET /status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    // Read until the body says it is ready, whether or not the server closes the connection.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n @ 1..) = s.read(&mut chunk) {
        answer.extend_from_slice(&chunk[..n]);
        if answer.starts_with(b"HTTP/1.1 200") && String::from_utf8_lossy(&answer).contains("\"ready\":true") {
            return true;
        }
    }
    false
}

impl Drop for External {
    fn drop(&mut self) {
        kill(-(self.child.id() as i32), libc::SIGKILL);
        let _ = self.child.wait();
    }
}

#[test]
fn a_chromedriver_given_as_webdriver_url_fills_the_portal() {
    let driver = External::start();
    let portal = BgPortal::start(PortalOptions { cookie_banner: true, ..Default::default() });
    let n = 6;
    let p = project(&portal, n, "      sessions: 2", |_| "email".into());
    // A `chromedriver` that does not exist: the step must not try to start one of its own.
    p.write("cxflow.yaml", &format!("webdriver_url: {}\nchromedriver: /nonexistent/chromedriver\n", driver.url));
    let run = support::Run::from(cxflow(&p).env("CXFLOW_LOG", "debug").args(["run", "returns"]).output().unwrap());
    run.expect_code(0);
    let recs = portal.records();
    assert_eq!(recs.len(), n, "{recs:#?}");
    assert!(duplicates(&recs).is_empty());
    assert_eq!(p.query("SELECT count(*) FROM ledger WHERE state = 'sent'"), vec![n.to_string()]);
    // A plain chromedriver's /status has no `nodes`: the sessions are not capped.
    assert!(!run.stderr.contains("Selenium Grid at"), "{}", run.stderr);
    assert!(!run.stdout.contains("Selenium Grid at"), "{}", run.stdout);
}

/// The Grid 4 `/status` of a hub with one node: one Chrome slot (busy) and a Firefox slot.
const GRID_STATUS: &str = r#"{"value":{"ready":true,"message":"Selenium Grid ready.","nodes":[{
  "availability":"UP","id":"d1c2a0e6","uri":"http://10.0.0.7:5555","maxSessions":2,
  "version":"4.20.0 (revision 866c76ca80)","heartbeatPeriod":60000,
  "slots":[
    {"id":{"hostId":"d1c2a0e6","id":"s1"},"lastStarted":"2024-05-02T01:12:09.554Z",
     "session":{"sessionId":"4f1d0a3c","start":"2024-05-02T01:12:09.554Z","uri":"http://10.0.0.7:5555",
                "capabilities":{"browserName":"chrome"},"stereotype":{"browserName":"chrome"}},
     "stereotype":{"browserName":"chrome","platformName":"linux"}},
    {"id":{"hostId":"d1c2a0e6","id":"s2"},"lastStarted":"1970-01-01T00:00:00Z","session":null,
     "stereotype":{"browserName":"firefox","platformName":"linux"}}
  ]}]}}"#;

/// A stand-in for a grid behind basic auth: `/status` answers as a Grid 4 (only with the right
/// credentials), every other request (a new session) fails as a full grid's would. Counts the
/// `/status` requests that brought the credentials.
fn fake_grid(authorized: Arc<AtomicUsize>) -> (String, tokio::runtime::Runtime) {
    use axum::http::{header, HeaderMap, StatusCode};
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let status = move |headers: HeaderMap| {
        let authorized = authorized.clone();
        async move {
            // base64("bot:Gr1d-S3cret")
            if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some("Basic Ym90OkdyMWQtUzNjcmV0") {
                return (StatusCode::UNAUTHORIZED, String::new());
            }
            authorized.fetch_add(1, Ordering::SeqCst);
            (StatusCode::OK, GRID_STATUS.to_string())
        }
    };
    let app = axum::Router::new().route("/status", axum::routing::get(status)).fallback(|| async {
        let body = r#"{"value":{"error":"session not created","message":"Could not start a new session: no slot free","stacktrace":""}}"#;
        (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "application/json")], body)
    });
    rt.spawn(async move { axum::serve(listener, app).await });
    (format!("127.0.0.1:{}", addr.port()), rt)
}

#[test]
fn a_grid_caps_the_sessions_at_its_chrome_slots_and_its_password_is_never_shown() {
    let authorized = Arc::new(AtomicUsize::new(0));
    let (addr, _rt) = fake_grid(authorized.clone());
    let portal = BgPortal::start(PortalOptions::default());
    let p = project(&portal, 1, "      sessions: 3", |_| "email".into());
    p.write("cxflow.yaml", &format!("webdriver_url: http://bot:Gr1d-S3cret@{addr}/\n"));
    let run = support::Run::from(cxflow(&p).env("CXFLOW_LOG", "debug").args(["run", "returns"]).output().unwrap());
    run.expect_code(1);
    assert!(authorized.load(Ordering::SeqCst) >= 1, "the grid's /status got the URL's credentials as basic auth");
    let all = format!("{}\n{}", run.stdout, run.stderr);
    assert!(
        all.contains(&format!(
            "step `register`: the Selenium Grid at http://bot:***@{addr}/ has 1 Chrome slot(s); opening at most 1 browser session(s) (`sessions: 3`)"
        )),
        "{all}"
    );
    let err = p.query("SELECT error FROM items WHERE item_key = 'SO-5001'");
    assert!(err[0].contains(&format!("cannot open a browser session on http://bot:***@{addr}/")), "{err:?}");
    assert!(!all.contains("Gr1d-S3cret"), "{all}");
    assert!(
        files_containing(p.path(), "Gr1d-S3cret").iter().all(|f| f.ends_with("cxflow.yaml")),
        "{:?}",
        files_containing(p.path(), "Gr1d-S3cret")
    );
    assert!(portal.records().is_empty());
}

/// An https:// `webdriver_url` (a grid behind a TLS proxy) is spoken to over TLS: the server
/// receives a TLS handshake, not plain HTTP and not nothing (before, the plain HTTP connector
/// refused any https:// URL without connecting).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_webdriver_url_is_spoken_to_over_tls() {
    use cxflow::steps::browser::driver::{Driver, DriverConfig};
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let first = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut b = [0u8; 3];
        s.read_exact(&mut b).await.unwrap();
        b
    });
    let driver =
        Driver::start(DriverConfig { webdriver_url: Some(format!("https://127.0.0.1:{port}")), ..Default::default() }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opening = tokio::spawn(async move { driver.new_session(dir.path()).await.map(|_| ()) });
    let b = tokio::time::timeout(Duration::from_secs(30), first).await.expect("a connection within 30s").unwrap();
    // A TLS record of type handshake (22), version 3.x.
    assert_eq!((b[0], b[1]), (0x16, 0x03), "{b:?}");
    // The server said nothing back and hung up: the session does not open.
    let err = tokio::time::timeout(Duration::from_secs(30), opening).await.unwrap().unwrap().unwrap_err();
    assert!(err.to_string().starts_with(&format!("cannot open a browser session on https://127.0.0.1:{port}")), "{err}");
}
