//! Who may do what, against the real `cxflow ui` on 127.0.0.1:0 with a real HTTP client: API
//! tokens, logins with session cookies, CSRF, rate limits, and loopback-only without logins.

mod support;

use std::io::BufRead;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{redirect::Policy, RequestBuilder, StatusCode};
use support::serve::Serve;
use support::{wait_for_some, wait_until, TestProject};

const OPS_TOKEN: &str = "ops-token-0123456789abcdefghij";
const PROM_TOKEN: &str = "prom-token-0123456789abcdefghij";
const PASSWORD: &str = "correct horse battery";

/// A running `cxflow ui`, its stderr lines and base URL.
struct Ui {
    _proc: Serve,
    logs: Arc<Mutex<Vec<String>>>,
    url: String,
}

impl Ui {
    fn start(p: &TestProject) -> Ui {
        let mut cmd = p.cxflow();
        cmd.env("TOK_OPS", OPS_TOKEN).env("TOK_PROM", PROM_TOKEN).env("CXFLOW_LOG", "warn,cxflow=info");
        let mut child = cmd.arg("ui").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let lines = logs.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let proc = Serve(child);
        let url = wait_for_some(Duration::from_secs(60), "cxflow ui to print its URL", || {
            logs.lock().unwrap().iter().find_map(|l| l.strip_prefix("dashboard: ").map(|u| u.trim_end_matches('/').to_string()))
        });
        Ui { _proc: proc, logs, url }
    }

    fn log(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

/// The answer to one request, read whole.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> String {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
    }

    fn set_cookies(&self) -> Vec<String> {
        self.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect()
    }

    /// The value a `Set-Cookie` gives `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies().iter().find_map(|c| c.split(';').next()?.strip_prefix(&format!("{name}=")).map(str::to_string))
    }
}

/// A blocking HTTP client (the tests also query the run log, which runs its own runtime).
struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http {
    fn new() -> Http {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = rt.block_on(async { reqwest::Client::builder().redirect(Policy::none()).build().unwrap() });
        Http { rt, client }
    }

    fn send(&self, r: RequestBuilder) -> Answer {
        self.rt.block_on(async {
            let r = r.send().await.unwrap();
            Answer { status: r.status(), headers: r.headers().clone(), body: r.text().await.unwrap() }
        })
    }

    fn get(&self, url: &str) -> RequestBuilder {
        self.client.get(url)
    }

    fn post(&self, url: &str) -> RequestBuilder {
        self.client.post(url)
    }
}

fn hash(p: &TestProject) -> String {
    let mut child = p.cxflow().arg("hash-password").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), format!("{PASSWORD}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let h = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(h.starts_with("$argon2id$v=19$") && !h.contains(PASSWORD), "{h}");
    h
}

fn config(hash: &str, with_alice: bool) -> String {
    let alice = if with_alice { format!("  - name: alice\n    role: operator\n    password_hash: \"{hash}\"\n") } else { String::new() };
    format!(
        "users:\n{alice}  - name: vera\n    role: viewer\n    password_hash: \"{hash}\"\napi_tokens:\n  - name: ops\n    role: operator\n    env: TOK_OPS\n  - name: prom\n    role: viewer\n    env: TOK_PROM\n"
    )
}

fn project() -> TestProject {
    let p = TestProject::new();
    let h = hash(&p);
    p.write("cxflow.yaml", &config(&h, true));
    p
}

/// Logs `name` in through the form; returns the session cookie's value and the login answer.
fn login(http: &Http, url: &str, name: &str, password: &str) -> (Option<String>, Answer) {
    let form = http.send(http.get(&format!("{url}/login?next=/api/me")));
    assert_eq!(form.status, StatusCode::OK);
    let token = form.cookie("cxflow_login").expect("the login form sets its token cookie");
    assert!(form.body.contains(&format!("name=\"csrf\" value=\"{token}\"")), "{}", form.body);
    let a = http.send(http.post(&format!("{url}/login")).header("cookie", format!("cxflow_login={token}")).form(&[
        ("name", name),
        ("password", password),
        ("csrf", &token),
        ("next", "/api/me"),
    ]));
    (a.cookie("cxflow_session").filter(|v| !v.is_empty()), a)
}

#[test]
fn api_calls_need_a_valid_token_and_pages_a_login() {
    let p = project();
    let ui = Ui::start(&p);
    let http = Http::new();
    let url = &ui.url;
    for path in ["/api/me", "/metrics", "/api/runs"] {
        let a = http.send(http.get(&format!("{url}{path}")));
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(a.header("www-authenticate"), "Bearer");
        let json: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert!(json["error"].as_str().unwrap().starts_with("log in first"), "{}", a.body);
    }
    let a = http.send(http.get(&format!("{url}/api/me")).bearer_auth("ops-token-0123456789abcdefghiX"));
    assert_eq!((a.status, a.body.as_str()), (StatusCode::UNAUTHORIZED, r#"{"error":"the API token is not valid"}"#));
    let a = http.send(http.get(&format!("{url}/api/me")).bearer_auth(PROM_TOKEN));
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, r#"{"name":"prom","role":"viewer"}"#));
    // A token needs no CSRF token, and its POST is not taken for a browser's.
    let a = http.send(http.post(&format!("{url}/logout")).bearer_auth(OPS_TOKEN));
    assert_eq!((a.status, a.header("location")), (StatusCode::SEE_OTHER, "/".to_string()));

    let a = http.send(http.get(&format!("{url}/runs?workflow=a&status=failed")));
    assert_eq!(
        (a.status, a.header("location")),
        (StatusCode::SEE_OTHER, "/login?next=%2Fruns%3Fworkflow%3Da%26status%3Dfailed".to_string())
    );
    for (h, v) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("content-security-policy", "frame-ancestors 'none'"),
        ("referrer-policy", "same-origin"),
    ] {
        assert_eq!(a.header(h), v, "{h}");
    }
    assert!(!ui.log().contains(OPS_TOKEN) && !ui.log().contains(PROM_TOKEN));
}

#[test]
fn a_login_end_to_end_and_what_its_session_may_not_do() {
    let p = project();
    let ui = Ui::start(&p);
    let http = Http::new();
    let url = &ui.url;

    // The login form's own token must come back with its cookie.
    let a = http.send(http.post(&format!("{url}/login")).form(&[("name", "alice"), ("password", PASSWORD), ("csrf", "guess")]));
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains("missing or wrong CSRF token; reload the page"), "{}", a.body);

    let (id, a) = login(&http, url, "alice", PASSWORD);
    let id = id.expect("a session cookie");
    assert_eq!((a.status, a.header("location")), (StatusCode::SEE_OTHER, "/api/me".to_string()));
    let set = a.set_cookies().into_iter().find(|c| c.starts_with("cxflow_session=")).unwrap();
    assert_eq!(set, format!("cxflow_session={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=604800"));
    assert_eq!(id.len(), 43, "256 random bits");
    let cookie = format!("cxflow_session={id}");
    let me = http.send(http.get(&format!("{url}/api/me")).header("cookie", &cookie));
    assert_eq!(me.body, r#"{"name":"alice","role":"operator"}"#);

    // The run log keeps the id's hash only.
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(id.as_bytes()));
    assert_eq!(p.query("SELECT id_hash, user_name FROM web_sessions"), [format!("{digest}|alice")]);
    assert!(p.query("SELECT * FROM web_sessions").iter().all(|r| !r.contains(&id)));

    // The page's forms carry the session's CSRF token; a POST without it, with a wrong one, or
    // from another site is refused.
    let page = http.send(http.get(&format!("{url}/")).header("cookie", &cookie));
    let csrf = page.body.split("name=\"csrf\" value=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_string();
    for (extra, body) in
        [(None, vec![]), (None, vec![("csrf", "wrong")]), (Some(("origin", "https://evil.example")), vec![("csrf", csrf.as_str())])]
    {
        let mut r = http.post(&format!("{url}/logout")).header("cookie", &cookie).form(&body);
        if let Some((h, v)) = extra {
            r = r.header(h, v);
        }
        let a = http.send(r);
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{body:?}");
    }
    let a = http.send(
        http.post(&format!("{url}/logout")).header("cookie", &cookie).header("sec-fetch-site", "cross-site").header("x-csrf-token", &csrf),
    );
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains("came from another site"), "{}", a.body);
    // Still logged in after all that.
    assert_eq!(http.send(http.get(&format!("{url}/api/me")).header("cookie", &cookie)).status, StatusCode::OK);

    // Logging out ends the session on the server, not only in the browser.
    let a = http.send(http.post(&format!("{url}/logout")).header("cookie", &cookie).header("x-csrf-token", &csrf));
    assert_eq!((a.status, a.header("location")), (StatusCode::SEE_OTHER, "/login".to_string()));
    assert!(a.set_cookies().iter().any(|c| c.starts_with("cxflow_session=;") && c.contains("Max-Age=0")));
    assert_eq!(http.send(http.get(&format!("{url}/api/me")).header("cookie", &cookie)).status, StatusCode::UNAUTHORIZED);
    assert_eq!(p.count("SELECT * FROM web_sessions"), 0);

    // Only a path of this server is followed after login.
    let form = http.send(http.get(&format!("{url}/login")));
    let token = form.cookie("cxflow_login").unwrap();
    let a =
        http.send(
            http.post(&format!("{url}/login"))
                .header("cookie", format!("cxflow_login={token}"))
                .header("x-forwarded-proto", "https")
                .form(&[("name", "alice"), ("password", PASSWORD), ("csrf", &token), ("next", "//evil.example/x")]),
        );
    assert_eq!(a.header("location"), "/");
    assert!(a.set_cookies().iter().any(|c| c.starts_with("cxflow_session=") && c.ends_with("; Secure")), "{:?}", a.set_cookies());
    assert!(!ui.log().contains(PASSWORD) && !ui.log().contains(&id));
}

#[test]
fn sessions_survive_a_restart_and_end_when_the_user_is_removed() {
    let p = project();
    let http = Http::new();
    let id = {
        let ui = Ui::start(&p);
        login(&http, &ui.url, "alice", PASSWORD).0.expect("a session cookie")
    };
    let ui = Ui::start(&p);
    let cookie = format!("cxflow_session={id}");
    let me = http.send(http.get(&format!("{}/api/me", ui.url)).header("cookie", &cookie));
    assert_eq!((me.status, me.body.as_str()), (StatusCode::OK, r#"{"name":"alice","role":"operator"}"#));
    // Removed from cxflow.yaml while the server runs: refused at the next request.
    let h = p.read("cxflow.yaml").split("password_hash: \"").nth(1).unwrap().split('"').next().unwrap().to_string();
    p.write("cxflow.yaml", &config(&h, false));
    let me = http.send(http.get(&format!("{}/api/me", ui.url)).header("cookie", &cookie));
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert_eq!(p.count("SELECT * FROM web_sessions WHERE user_name = 'alice'"), 0);
}

#[test]
fn failed_logins_are_limited_per_name_and_logged_without_the_password() {
    let p = project();
    let ui = Ui::start(&p);
    let http = Http::new();
    for _ in 0..5 {
        let (id, a) = login(&http, &ui.url, "alice", "wrong-guess-77");
        assert_eq!((id, a.status), (None, StatusCode::UNAUTHORIZED));
        assert!(a.body.contains("wrong name or password"));
    }
    // Now even the right password waits.
    let (id, a) = login(&http, &ui.url, "alice", PASSWORD);
    assert_eq!((id, a.status), (None, StatusCode::TOO_MANY_REQUESTS));
    let wait: u64 = a.header("retry-after").parse().unwrap();
    assert!((800..=900).contains(&wait), "{wait}");
    // Another name is not locked out by alice's failures; an unknown one fails like a wrong password.
    assert!(login(&http, &ui.url, "vera", PASSWORD).0.is_some());
    assert_eq!(login(&http, &ui.url, "nobody", PASSWORD).1.status, StatusCode::UNAUTHORIZED);
    // The log is read from the process's stderr as it comes.
    wait_until(Duration::from_secs(30), "six logged failures", || {
        ui.log().matches("dashboard login failed: wrong name or password").count() == 6
    });
    let log = ui.log();
    assert!(log.contains("user=alice addr=127.0.0.1") && log.contains("too many failed attempts"), "{log}");
    assert!(!log.contains("wrong-guess-77") && !log.contains(PASSWORD), "{log}");
}

#[test]
fn without_logins_only_loopback_and_only_loopback_names() {
    let p = TestProject::new();
    let r = p.cxflow().arg("ui").env("CXFLOW_HTTP_ADDR", "0.0.0.0:0").output().unwrap();
    assert_eq!(r.status.code(), Some(2));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("error: refusing to serve the dashboard on `0.0.0.0:0`: beyond loopback it needs logins or API tokens in cxflow.yaml (docs/dashboard.md); or set `http_addr: 127.0.0.1:8080`"),
        "{err}"
    );

    let ui = Ui::start(&p);
    let http = Http::new();
    let me = http.send(http.get(&format!("{}/api/me", ui.url)));
    assert_eq!(me.body, r#"{"name":"local","role":"admin"}"#);
    // DNS rebinding: another name for this address is refused.
    let a = http.send(http.get(&format!("{}/api/me", ui.url)).header("host", "evil.example"));
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains("answers only to a loopback address"), "{}", a.body);
    assert_eq!(http.send(http.get(&format!("{}/api/me", ui.url)).header("host", "localhost:1")).status, StatusCode::OK);
    // A form posted without the process's CSRF token, or from another site, is refused.
    let a = http.send(http.post(&format!("{}/logout", ui.url)).form(&[("x", "1")]));
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = http.send(http.post(&format!("{}/logout", ui.url)).header("sec-fetch-site", "cross-site").json(&serde_json::json!({})));
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // Nothing to log in to.
    assert_eq!(http.send(http.get(&format!("{}/login", ui.url))).header("location"), "/");
}

/// Every role against every action, through the API and the forms: nobody 401, a viewer 403
/// (token or session, nothing started), an operator's token allowed, an operator's form only
/// with its CSRF token.
#[test]
fn each_role_may_do_what_it_should_and_nothing_more() {
    let p = project();
    p.write(
        "workflows/greet.yaml",
        "name: greet\nparams:\n  who: world\nsteps:\n  - id: hello\n    command: [python3, -c, \"print('hi')\"]\n",
    );
    let ui = Ui::start(&p);
    let http = Http::new();
    let url = &ui.url;
    let json = |r: RequestBuilder| r.header("content-type", "application/json").body(r#"{"params":{"who":"x"}}"#);
    let actions = [
        "/api/workflows/greet/runs",
        "/api/workflows/greet/pause",
        "/api/workflows/greet/unpause",
        "/api/runs/1/resume",
        "/api/runs/1/cancel",
        "/api/runs/1/resolve",
    ];
    for path in actions {
        let a = http.send(json(http.post(&format!("{url}{path}"))));
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "no token: {path} {}", a.body);
        let a = http.send(json(http.post(&format!("{url}{path}"))).bearer_auth(PROM_TOKEN));
        assert_eq!(a.status, StatusCode::FORBIDDEN, "viewer token: {path} {}", a.body);
    }
    // A viewer reads.
    for path in ["/api/runs", "/api/workflows", "/api/actions", "/api/openapi.json", "/metrics"] {
        let a = http.send(http.get(&format!("{url}{path}")).bearer_auth(PROM_TOKEN));
        assert_eq!(a.status, StatusCode::OK, "viewer GET {path}: {}", a.body);
    }
    assert_eq!(p.query("SELECT count(*) FROM runs"), ["0"], "nothing ran for the refused callers");

    // An operator's token starts a run, and the audit log names it.
    let a = http.send(json(http.post(&format!("{url}/api/workflows/greet/runs"))).bearer_auth(OPS_TOKEN));
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(p.query("SELECT actor || ' ' || action || ' ' || outcome FROM actions"), ["ops run ok"]);

    // Sessions: the viewer's form is refused even with its CSRF token; the operator's needs it.
    let form = |cookie: &str, csrf: Option<&str>| {
        let mut fields = vec![("reason", "maintenance")];
        if let Some(c) = csrf {
            fields.push(("csrf", c));
        }
        http.send(http.post(&format!("{url}/workflows/greet/pause")).header("cookie", cookie).form(&fields))
    };
    let csrf_of = |cookie: &str| {
        let page = http.send(http.get(&format!("{url}/workflows/greet")).header("cookie", cookie));
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let at = page.body.find("name=\"csrf\" value=\"").expect("the page carries its CSRF token") + 19;
        page.body[at..].split('"').next().unwrap().to_string()
    };
    let vera = format!("cxflow_session={}", login(&http, url, "vera", PASSWORD).0.unwrap());
    let token = csrf_of(&vera);
    assert_eq!(form(&vera, Some(&token)).status, StatusCode::FORBIDDEN);
    let alice = format!("cxflow_session={}", login(&http, url, "alice", PASSWORD).0.unwrap());
    let a = form(&alice, None);
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains("missing or wrong CSRF token"), "{}", a.body);
    assert_eq!(form(&alice, Some("not-the-token")).status, StatusCode::FORBIDDEN);
    assert_eq!(p.query("SELECT count(*) FROM schedule_pauses"), ["0"]);
    let a = form(&alice, Some(&csrf_of(&alice)));
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(p.query("SELECT paused_by FROM schedule_pauses WHERE workflow = 'greet'"), ["alice"]);
}
