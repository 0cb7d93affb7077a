//! The dashboard's actions end to end against the real `cxflow ui`: forms posted as a browser
//! posts them (with the CSRF field the page rendered) and the JSON API, checked in the run log
//! (runs, items, ledger, resolutions, actions), on the pages and with `cxflow next`.

mod support;

use std::io::BufRead;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use support::{wait_for_some, wait_until, TestProject};

const DEADLINE: Duration = Duration::from_secs(60);

/// A running `cxflow ui`, killed when dropped, with an HTTP client that does not follow
/// redirects (the tests check the 303 and where it points).
struct Ui {
    child: Child,
    base: String,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Answer {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl Ui {
    fn start(p: &TestProject) -> Ui {
        let mut child = p.cxflow().arg("ui").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let (stderr, sink) = (child.stderr.take().unwrap(), lines.clone());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let base = wait_for_some(DEADLINE, "`cxflow ui` to print its address", || {
            let l = lines.lock().unwrap();
            l.iter().find_map(|l| l.strip_prefix("dashboard: ").map(|u| u.trim_end_matches('/').to_string()))
        });
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Ui { child, base, rt, http }
    }

    fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        self.rt.block_on(async {
            let r = req.send().await.expect("request");
            let status = r.status().as_u16();
            let location = r.headers().get("location").map(|l| l.to_str().unwrap().to_string());
            Answer { status, location, body: r.text().await.unwrap() }
        })
    }

    fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(format!("{}{path}", self.base)))
    }

    /// Posts a form as a browser would, with the CSRF value the page `from` renders.
    fn post_form(&self, from: &str, path: &str, fields: &[(&str, &str)]) -> Answer {
        let page = self.get(from);
        assert_eq!(page.status, 200, "{from}: {}", page.body);
        let csrf = csrf_of(&page.body);
        let mut body = url::form_urlencoded::Serializer::new(String::new());
        body.append_pair("csrf", &csrf);
        for (k, v) in fields {
            body.append_pair(k, v);
        }
        let req =
            self.http.post(format!("{}{path}", self.base)).header("content-type", "application/x-www-form-urlencoded").body(body.finish());
        self.send(req)
    }

    fn post_json(&self, path: &str, body: Value) -> Answer {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
    }
}

/// The value of the page's hidden `csrf` input.
fn csrf_of(page: &str) -> String {
    let at = page.find(r#"name="csrf" value=""#).unwrap_or_else(|| panic!("no csrf field in the page:\n{page}"));
    let rest = &page[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// The `done` message of a redirect's `Location`.
fn done_of(location: &str) -> String {
    let q = location.split_once('?').map(|(_, q)| q).unwrap_or("");
    url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "done").map(|(_, v)| v.into_owned()).unwrap_or_default()
}

fn wait_for_status(p: &TestProject, run: i64, status: &str) -> String {
    p.wait_for_rows(
        DEADLINE,
        &format!("run {run} to be {status}"),
        &format!("SELECT coalesce(error, '') FROM runs WHERE id = {run} AND status = '{status}'"),
    )
    .remove(0)
}

const GREET: &str = r#"name: greet
params:
  who: null
  greeting: hello
steps:
  - id: records
    read_csv: data/records.csv
  - id: act
    for_each: records
    item_key: "{{item.id}}"
    command: [python3, script.py, "{{item.id}}-{{params.greeting}}-{{params.who}}"]
"#;

#[test]
fn run_now_from_the_form_and_the_api_runs_with_the_parameters_and_is_audited() {
    let p = support::script_project("id", ["r1".to_string()]);
    p.write("workflows/greet.yaml", GREET);
    let ui = Ui::start(&p);

    let page = ui.get("/workflows/greet");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(r#"name="param.greeting" value="hello""#), "{}", page.body);
    assert!(page.body.contains(r#"name="param.who" value="" required"#), "{}", page.body);

    let a = ui.post_form("/workflows/greet", "/workflows/greet/runs", &[("param.who", "ana"), ("param.greeting", "hello")]);
    assert_eq!(a.status, 303, "{}", a.body);
    let loc = a.location.unwrap();
    let run: i64 = loc.strip_prefix("/runs/").and_then(|r| r.split('?').next()).unwrap().parse().unwrap();
    assert_eq!(done_of(&loc), format!("run {run} of greet started by local"));
    wait_for_status(&p, run, "succeeded");
    assert_eq!(p.query(&format!("SELECT trigger, params FROM runs WHERE id = {run}")), [r#"manual|{"who":"ana","greeting":"hello"}"#]);

    let a = ui.post_json("/api/workflows/greet/runs", json!({"params": {"who": "bo", "greeting": "hi"}}));
    assert_eq!(a.status, 201, "{}", a.body);
    let api_run = a.json()["run_id"].as_i64().unwrap();
    assert_eq!(a.json()["url"], format!("/runs/{api_run}"));
    wait_for_status(&p, api_run, "succeeded");
    assert_eq!(p.read("marks.txt"), "r1-hello-ana\nr1-hi-bo\n");

    // Refused, with the reason, and nothing run.
    let a = ui.post_form("/workflows/greet", "/workflows/greet/runs", &[("param.who", "")]);
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("parameter `who` has no default"), "{}", a.body);
    let a = ui.post_form("/workflows/greet", "/workflows/nope/runs", &[]);
    assert_eq!(a.status, 404, "{}", a.body);
    assert!(a.body.contains("no workflow named `nope`"), "{}", a.body);
    let a = ui.post_json("/api/workflows/greet/runs", json!({"params": {"whom": "x"}}));
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.json()["error"].as_str().unwrap().contains("`--var whom=...` is not a parameter of workflow `greet`"), "{}", a.body);
    let a = ui.send(ui.http.post(format!("{}/api/workflows/greet/runs", ui.base)).body(r#"{"params":{"who":"x"}}"#));
    // Without a declared JSON body a browser could have sent it from another site: with no
    // CSRF token it is refused before it reaches the action.
    assert_eq!(a.status, 403, "a body not declared JSON is refused: {}", a.body);
    assert!(a.body.contains("CSRF"), "{}", a.body);
    assert_eq!(p.query("SELECT count(*) FROM runs"), ["2"]);

    let audit = ui.get("/api/actions?workflow=greet").json();
    let rows: Vec<String> = audit["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!("{}|{}|{}|{}", a["actor"].as_str().unwrap(), a["action"].as_str().unwrap(), a["run_id"], a["outcome"].as_str().unwrap())
        })
        .collect();
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(rows[0].starts_with("local|run|null|refused: `--var whom=...`"), "{rows:?}");
    assert!(rows[1].starts_with("local|run|null|refused: parameter `who` has no default"), "{rows:?}");
    assert_eq!(rows[2..], [format!("local|run|{api_run}|ok"), format!("local|run|{run}|ok")]);
    assert_eq!(audit["actions"][2]["detail"], json!({"params": {"who": "bo", "greeting": "hi"}}));
    let page = ui.get("/actions?action=run");
    assert!(page.body.contains(&format!(r#"<td>local</td><td>admin</td><td>run</td><td><a href="/workflows/greet">greet</a></td><td class="num"><a href="/runs/{run}">{run}</a>"#)), "{}", page.body);
    // The workflow page lists its runs and the actions on it.
    let page = ui.get("/workflows/greet");
    assert!(
        page.body.contains(&format!(r#"<a href="/runs/{api_run}">{api_run}</a>"#)) && page.body.contains("refused: parameter"),
        "{}",
        page.body
    );
}

const SLOW: &str = r#"name: slow
steps:
  - id: records
    read_csv: data/records.csv
  - id: act
    for_each: records
    item_key: "{{item.id}}"
    command: [python3, script.py, "{{item.id}}", slow]
"#;

#[test]
fn cancel_from_the_dashboard_interrupts_a_run_and_resume_finishes_it() {
    const N: usize = 40;
    let p = support::script_project("id", (1..=N).map(|i| format!("r{i:02}")));
    p.write("workflows/slow.yaml", SLOW);
    let ui = Ui::start(&p);

    let run = ui.post_json("/api/workflows/slow/runs", json!({})).json()["run_id"].as_i64().unwrap();
    wait_until(DEADLINE, "an item of the run done", || p.count(&format!("SELECT count(*) FROM items WHERE run_id = {run}")) > 0);
    let a = ui.post_form("/workflows/slow", &format!("/runs/{run}/cancel"), &[]);
    assert_eq!(a.status, 303, "{}", a.body);
    let loc = a.location.unwrap();
    assert!(loc.starts_with(&format!("/runs/{run}?done=")), "{loc}");
    assert!(done_of(&loc).starts_with(&format!("cancel of run {run} requested by local at 20")), "{loc}");
    let error = wait_for_status(&p, run, "interrupted");
    assert!(error.starts_with("cancelled by local at 20"), "{error}");
    let done = p.count(&format!("SELECT count(*) FROM items WHERE run_id = {run} AND status = 'ok'"));
    assert!(done < N, "all {done} items ran: the cancel was not seen");

    // Not running any more: 409, with what to do.
    let a = ui.post_json(&format!("/api/runs/{run}/cancel"), json!({}));
    assert_eq!(a.status, 409, "{}", a.body);
    assert!(a.json()["error"].as_str().unwrap().contains(&format!("run {run} is not running (it is interrupted)")), "{}", a.body);
    let a = ui.post_form("/workflows/slow", &format!("/runs/{run}/resume"), &[("from", "nope")]);
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("workflow `slow` has no step `nope`; its steps are: records, act"), "{}", a.body);
    assert_eq!(p.query(&format!("SELECT status FROM runs WHERE id = {run}")), ["interrupted"], "a refused resume changed nothing");

    let a = ui.post_form("/workflows/slow", &format!("/runs/{run}/resume"), &[("from", "")]);
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(done_of(a.location.as_deref().unwrap()), format!("run {run} resumed by local"));
    wait_for_status(&p, run, "succeeded");
    assert_eq!(p.count(&format!("SELECT count(*) FROM items WHERE run_id = {run} AND status = 'ok'")), N);

    // Again from a step, through the API: every item of `act` runs once more.
    let a = ui.post_json(&format!("/api/runs/{run}/resume"), json!({"from": "act"}));
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["run_id"], run);
    wait_until(DEADLINE, "the resumed run to succeed again", || {
        p.count(&format!("SELECT count(*) FROM runs WHERE id = {run} AND status = 'succeeded' AND resumes = 2")) == 1
    });
    assert_eq!(p.read("marks.txt").lines().count(), 2 * N, "each item once, then all again");

    let rows = p.query("SELECT actor, action, run_id, substr(outcome, 1, 7), coalesce(detail, '') FROM actions ORDER BY id");
    assert_eq!(
        rows,
        [
            format!("local|run|{run}|ok|{{\"params\":{{}}}}"),
            format!("local|cancel|{run}|ok|"),
            format!("local|cancel|{run}|refused|"),
            format!("local|resume|{run}|refused|{{\"from\":\"nope\"}}"),
            format!("local|resume|{run}|ok|{{\"from\":null}}"),
            format!("local|resume|{run}|ok|{{\"from\":\"act\"}}"),
        ]
    );
}

const NIGHTLY: &str = r#"name: nightly
schedule:
  cron: "0 0 3 * * *"
steps:
  - id: records
    read_csv: data/records.csv
"#;

#[test]
fn pause_and_unpause_from_the_dashboard_are_seen_by_cxflow_next() {
    let p = support::script_project("id", ["r1".to_string()]);
    p.write("workflows/nightly.yaml", NIGHTLY);
    let ui = Ui::start(&p);
    let page = ui.get("/workflows/nightly");
    assert!(page.body.contains("Next fires:") && page.body.contains("0 0 3 * * *"), "{}", page.body);

    let a = ui.post_form("/workflows/nightly", "/workflows/nightly/pause", &[("reason", "portal <maintenance>")]);
    assert_eq!(a.status, 303, "{}", a.body);
    let loc = a.location.unwrap();
    assert!(loc.starts_with("/workflows/nightly?done="), "{loc}");
    let page = ui.get(&loc);
    assert!(page.body.contains(r#"<div class="flash" role="status">schedule of nightly paused by local since 20"#), "{}", page.body);
    assert!(page.body.contains(": portal &lt;maintenance&gt;"), "escaped: {}", page.body);
    assert!(page.body.contains(r#"action="/workflows/nightly/unpause""#) && !page.body.contains("Next fires:"), "{}", page.body);

    let next = p.run(&["next", "--count", "2"]);
    next.expect_code(0);
    let rows: Vec<&str> = next.stdout.lines().filter(|l| l.starts_with("nightly")).collect();
    assert_eq!(rows.len(), 1, "{}", next.stdout);
    assert!(
        rows[0].contains("paused by local since 20") && rows[0].contains(": portal <maintenance> (`cxflow unpause nightly`)"),
        "{}",
        rows[0]
    );

    let a = ui.post_json("/api/workflows/nightly/unpause", json!({}));
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        (a.json()["paused"].clone(), a.json()["paused_by"].clone(), a.json()["reason"].clone()),
        (json!(false), json!("local"), json!("portal <maintenance>"))
    );
    let next = p.run(&["next", "--count", "2"]);
    assert_eq!(next.stdout.lines().filter(|l| l.starts_with("nightly") && l.contains(" 03:00:00 ")).count(), 2, "{}", next.stdout);

    let a = ui.post_json("/api/workflows/nightly/unpause", json!({}));
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.json()["error"], "workflow `nightly` is not paused; nothing to unpause");
    let a = ui.post_json("/api/workflows/nope/pause", json!({"reason": "x"}));
    assert_eq!(a.status, 404, "{}", a.body);
    assert!(p.query("SELECT workflow FROM schedule_pauses").is_empty());

    let page = ui.get("/actions?workflow=nightly");
    for want in ["<td>pause</td>", "<td>unpause</td>", "workflow `nightly` is not paused"] {
        assert!(page.body.contains(want), "{want} missing from\n{}", page.body);
    }
    assert_eq!(
        p.query("SELECT actor, action, workflow, substr(outcome, 1, 7) FROM actions ORDER BY id"),
        ["local|pause|nightly|ok", "local|unpause|nightly|ok", "local|unpause|nightly|refused", "local|pause|nope|refused"]
    );
}

#[test]
fn resolving_uncertain_deliveries_from_the_form_and_the_api_updates_the_ledger() {
    let p = support::script_project("id", ["k1".to_string(), "k2".to_string(), "k3".to_string()]);
    p.write("workflows/slow.yaml", SLOW);
    p.run(&["run", "slow"]).expect_code(0);
    // As a run cut off while sending leaves them: claimed, never confirmed, no live owner.
    for k in ["k1", "k2", "k3"] {
        p.execute(&format!(
            "INSERT INTO ledger (key, workflow, run_id, step_id, item_key, state, updated_at) VALUES ('slow/{k}', 'slow', 1, 'act', '{k}', 'sending', '2024-06-01T10:00:00Z')"
        ));
    }
    let ui = Ui::start(&p);

    let a = ui.post_form("/workflows/slow", "/runs/1/resolve", &[("items", "k1"), ("items", "k3"), ("as", "sent")]);
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(done_of(a.location.as_deref().unwrap()), "2 uncertain deliveries of run 1 resolved as sent by local");
    assert_eq!(p.query("SELECT item_key, state FROM ledger ORDER BY key"), ["k1|sent", "k2|sending", "k3|sent"]);

    // Neither items nor all, or an unknown answer: refused before anything is recorded.
    let a = ui.post_form("/workflows/slow", "/runs/1/resolve", &[("as", "sent")]);
    assert_eq!(a.status, 400, "{}", a.body);
    let a = ui.post_form("/workflows/slow", "/runs/1/resolve", &[("all", "1"), ("as", "maybe")]);
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("`as` is `maybe`; it is `sent`"), "{}", a.body);

    let a = ui.post_json("/api/runs/1/resolve", json!({"all": true, "as": "not-sent"}));
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["resolved"], json!([{"key": "slow/k2", "step_id": "act", "item_key": "k2", "state": "not-sent"}]));
    assert_eq!(p.query("SELECT item_key FROM ledger ORDER BY key"), ["k1", "k3"], "not-sent frees the key for the next resume");
    assert_eq!(
        p.query("SELECT item_key, decision, decided_by FROM resolutions ORDER BY id"),
        ["k1|sent|local", "k3|sent|local", "k2|not-sent|local"]
    );

    let a = ui.post_json("/api/runs/1/resolve", json!({"items": ["k2"], "as": "sent"}));
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.json()["error"].as_str().unwrap().contains("run 1 has no uncertain delivery for item(s) `k2`"), "{}", a.body);
    let a = ui.post_json("/api/runs/99/resolve", json!({"all": true, "as": "sent"}));
    assert_eq!(a.status, 404, "{}", a.body);

    let audit = ui.get("/api/actions?action=resolve&limit=2").json();
    let outcomes: Vec<&str> = audit["actions"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes.len(), 2);
    assert!(
        outcomes[0].starts_with("refused: there is no run 99") && outcomes[1].starts_with("refused: run 1 has no uncertain"),
        "{outcomes:?}"
    );
    let older = ui.get(&format!("/api/actions?action=resolve&before={}", audit["next"])).json();
    let older: Vec<(String, Value)> =
        older["actions"].as_array().unwrap().iter().map(|a| (a["outcome"].as_str().unwrap().to_string(), a["detail"].clone())).collect();
    assert_eq!(
        older,
        [("ok".to_string(), json!({"items": [], "as": "not-sent"})), ("ok".to_string(), json!({"items": ["k1", "k3"], "as": "sent"}))]
    );
}
