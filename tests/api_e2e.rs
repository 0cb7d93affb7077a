//! The HTTP API end to end: real `cxflow run`s make the run log, the real `cxflow ui` serves it,
//! and the JSON is checked against what the run log holds.

mod support;

use std::collections::BTreeSet;
use std::io::BufRead;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::TestProject;

const ACT: &str = r#"name: act
params:
  batch: nightly
  region: null
schedule:
  cron: "0 7 * * *"
  timezone: Europe/Berlin
steps:
  - id: records
    read_csv: data/records.csv
  - id: act
    for_each: records
    item_key: "{{item.id}}"
    command: [python3, script.py, "{{item.id}}", "{{item.mode}}"]
"#;

const OTHER: &str = "name: other\nsteps:\n  - id: records\n    read_csv: data/records.csv\n";

/// `cxflow ui`, killed when dropped.
struct Ui(Child, String);

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cxflow ui` and reads the address it prints, with a deadline.
fn ui(p: &TestProject) -> Ui {
    let mut child = p.cxflow().arg("ui").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("dashboard: ") {
                let _ = tx.send(url.trim_end_matches('/').to_string());
            }
        }
    });
    let base = rx.recv_timeout(Duration::from_secs(60)).expect("`cxflow ui` printed its address within 60 s");
    Ui(child, base)
}

struct Client {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// Status and JSON body of `GET path`; the body must be JSON whatever the status.
    #[track_caller]
    fn get(&self, path: &str) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        self.rt.block_on(async {
            let r = self.http.get(&url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
            let status = r.status().as_u16();
            let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
            assert!(ct.starts_with("application/json"), "GET {path}: content-type `{ct}`");
            let text = r.text().await.unwrap();
            (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {text}")))
        })
    }

    #[track_caller]
    fn ok(&self, path: &str) -> Value {
        let (s, v) = self.get(path);
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }
}

/// Follows `next` from `first` (a path ending in `?...` or not) and returns every row of `key`.
fn all_pages(c: &Client, first: &str, key: &str, cursor: &str) -> (Vec<Value>, usize) {
    let (mut rows, mut pages) = (Vec::new(), 0);
    let sep = if first.contains('?') { '&' } else { '?' };
    let mut url = first.to_string();
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < end, "paging {first} did not end");
        let v = c.ok(&url);
        pages += 1;
        rows.extend(v[key].as_array().unwrap().iter().cloned());
        match v["next"].as_str() {
            Some(n) => url = format!("{first}{sep}{cursor}={n}"),
            None => {
                assert!(v["next"].is_null(), "{v}");
                return (rows, pages);
            }
        }
    }
}

fn project() -> TestProject {
    let p = support::script_project("id,mode", (1..=12).map(|i| format!("r{i:02},{}", if i == 5 { "fail" } else { "ok" })));
    p.write("workflows/act.yaml", ACT);
    p.write("workflows/other.yaml", OTHER);
    p.write("workflows/broken.yaml", "name: broken\nsteps:\n  - id: x\n    read_csv: data/missing.csv\n    bogus: 1\n");
    // The shipped feedback sample, exported instead of emailed, for digests.
    p.copy_from_repo(&["routing/teams.yaml", "data/feedback.csv"]);
    p.write(
        "workflows/fb.yaml",
        "name: fb\nsteps:\n  - id: feedback\n    read_csv: data/feedback.csv\n  - id: routed\n    route:\n      input: feedback\n      rules: routing/teams.yaml\n      unmatched: Triage\n      as_of: \"2024-05-02T12:00:00Z\"\n",
    );
    p
}

#[test]
fn the_api_serves_the_run_log_as_json() {
    let p = project();
    for args in [
        &["run", "act", "--var", "region=eu"][..],
        &["run", "act", "--var", "region=us", "--var", "batch=weekly"],
        &["run", "other"],
        &["run", "fb"],
    ] {
        let r = p.run(args);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }
    assert_eq!(
        p.query("SELECT id, workflow, status FROM runs ORDER BY id"),
        ["1|act|partial", "2|act|partial", "3|other|succeeded", "4|fb|succeeded"]
    );

    let server = ui(&p);
    let c = Client {
        rt: tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
        http: reqwest::Client::new(),
        base: server.1.clone(),
    };

    // Workflows: schedule, next fires in UTC and the zone, params, last run; the broken file.
    let w = c.ok("/api/workflows");
    let names: Vec<&str> = w["workflows"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["act", "fb", "other"]);
    let act = &w["workflows"][0];
    assert_eq!(act["file"], "workflows/act.yaml");
    assert_eq!(act["schedule"], serde_json::json!({"cron": "0 7 * * *", "zone": "Europe/Berlin"}));
    let fires = act["next"].as_array().unwrap();
    assert_eq!(fires.len(), 5);
    for f in fires {
        let utc = chrono::DateTime::parse_from_rfc3339(f["utc"].as_str().unwrap()).unwrap();
        let zoned = chrono::DateTime::parse_from_rfc3339(f["zoned"].as_str().unwrap()).unwrap();
        assert_eq!(utc, zoned, "{f}");
        assert!(f["zoned"].as_str().unwrap().contains("T07:00:00+0"), "{f}");
        assert!(f["utc"].as_str().unwrap().ends_with('Z'), "{f}");
    }
    assert_eq!(
        act["params"],
        serde_json::json!([{"name": "batch", "default": "nightly", "required": false}, {"name": "region", "default": null, "required": true}])
    );
    assert_eq!(act["last_run"]["id"], 2);
    assert_eq!(act["last_run"]["status"], "partial");
    assert_eq!(act["last_run"]["params"], serde_json::json!({"batch": "weekly", "region": "us"}));
    assert!(w["workflows"][2]["schedule"].is_null() && w["workflows"][2]["next"] == serde_json::json!([]));
    let broken = w["broken"].as_array().unwrap();
    assert_eq!(broken.len(), 1, "{w}");
    assert_eq!(broken[0]["file"], "workflows/broken.yaml");
    assert!(broken[0]["diagnostics"].as_str().unwrap().contains("bogus"), "{}", broken[0]);
    assert_eq!(c.ok("/api/workflows/act")["last_run"]["id"], 2);
    let (s, v) = c.get("/api/workflows/nope");
    assert_eq!(s, 404);
    assert!(v["error"].as_str().unwrap().contains("no valid workflow `nope`"), "{v}");

    // Runs: newest first, filters, keyset pages.
    let runs = c.ok("/api/runs");
    let ids: Vec<i64> = runs["runs"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [4, 3, 2, 1]);
    assert!(runs["next"].is_null());
    assert_eq!(runs["runs"][3]["trigger"], "manual");
    assert_eq!(runs["runs"][3]["params"], serde_json::json!({"batch": "nightly", "region": "eu"}));
    let ids_of = |q: &str| -> Vec<i64> {
        c.ok(&format!("/api/runs?{q}"))["runs"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect()
    };
    assert_eq!(ids_of("workflow=act"), [2, 1]);
    assert_eq!(ids_of("status=succeeded"), [4, 3]);
    assert_eq!(ids_of("status=partial&workflow=act&trigger=manual"), [2, 1]);
    assert_eq!(ids_of("trigger=schedule"), Vec::<i64>::new());
    assert_eq!(ids_of("from=2000-01-01&to=2999-12-31"), [4, 3, 2, 1]);
    assert_eq!(ids_of("to=2000-01-01"), Vec::<i64>::new());
    let (all, pages) = all_pages(&c, "/api/runs?limit=3", "runs", "before");
    assert_eq!(pages, 2);
    assert_eq!(all.iter().map(|r| r["id"].as_i64().unwrap()).collect::<Vec<_>>(), [4, 3, 2, 1]);
    for bad in ["status=done", "trigger=cron", "from=yesterday", "before=abc", "limit=x"] {
        let (s, v) = c.get(&format!("/api/runs?{bad}"));
        assert_eq!(s, 400, "{bad}: {v}");
        assert!(v["error"].as_str().unwrap().starts_with('`'), "{bad}: {v}");
    }
    let (_, v) = c.get("/api/runs?status=done");
    assert_eq!(v["error"], "`status=done` is not one of: running, succeeded, partial, failed, interrupted, skipped");

    // One run: steps with counts; failed item's error as stored.
    let run = c.ok("/api/runs/1");
    assert_eq!(run["run"]["status"], "partial");
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps.iter().map(|s| s["id"].as_str().unwrap()).collect::<Vec<_>>(), ["records", "act"]);
    assert_eq!((steps[1]["status"].as_str().unwrap(), &steps[1]["ok"], &steps[1]["failed"]), ("partial", &11.into(), &1.into()));
    assert_eq!(run["uncertain"], serde_json::json!([]));
    for (path, want) in [
        ("/api/runs/999", "there is no run 999"),
        ("/api/runs/999/items", "there is no run 999"),
        ("/api/runs/999/artifacts", "there is no run 999"),
    ] {
        let (s, v) = c.get(path);
        assert_eq!(s, 404, "{path}: {v}");
        assert!(v["error"].as_str().unwrap().starts_with(want), "{path}: {v}");
    }
    let (s, v) = c.get("/api/runs/abc");
    assert_eq!(s, 400, "{v}");

    // Items: every one exactly once across pages, in input order; filters.
    let (items, pages) = all_pages(&c, "/api/runs/1/items?step=act&limit=5", "items", "after");
    assert_eq!(pages, 3);
    let keys: Vec<&str> = items.iter().map(|i| i["key"].as_str().unwrap()).collect();
    let want: Vec<String> = (1..=12).map(|i| format!("r{i:02}")).collect();
    assert_eq!(keys, want.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(keys.iter().collect::<BTreeSet<_>>().len(), 12);
    let (every, _) = all_pages(&c, "/api/runs/1/items?limit=2", "items", "after");
    assert_eq!(every.len(), p.count("SELECT count(*) FROM items WHERE run_id = 1"));
    let failed = c.ok("/api/runs/1/items?status=failed");
    assert_eq!(failed["items"].as_array().unwrap().len(), 1, "{failed}");
    let f = &failed["items"][0];
    assert_eq!((f["key"].as_str().unwrap(), f["status"].as_str().unwrap(), f["step"].as_str().unwrap()), ("r05", "failed", "act"));
    let stored = p.query("SELECT error FROM items WHERE run_id = 1 AND item_key = 'r05'");
    assert_eq!(f["error"], stored[0].as_str());
    assert!(f["error"].as_str().unwrap().contains("no such customer"), "{f}");
    let ok = c.ok("/api/runs/1/items?step=act&status=ok&limit=500");
    assert_eq!(ok["items"].as_array().unwrap().len(), 11);
    assert_eq!(ok["items"][0]["output"]["key"], "r01");
    let prefixed = c.ok("/api/runs/1/items?step=act&q=r1");
    let keys: Vec<&str> = prefixed["items"].as_array().unwrap().iter().map(|i| i["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["r10", "r11", "r12"]);
    let (s, v) = c.get("/api/runs/1/items?after=nonsense");
    assert_eq!(
        (s, v["error"].as_str().unwrap()),
        (400, "`after=nonsense` is not an item cursor; use the `next` value of the previous page as it was given")
    );
    assert_eq!(c.ok("/api/runs/1/artifacts")["artifacts"], serde_json::json!([]));

    // Digests: the teams of run 4, and one team's history (the scope's slash as %2F).
    let teams = c.ok("/api/digests");
    let stored = p.query("SELECT scope, team, count FROM route_digests ORDER BY scope, team");
    assert_eq!(teams["teams"].as_array().unwrap().len(), stored.len(), "{teams}");
    assert!(!stored.is_empty());
    let (scope, rest) = stored[0].split_once('|').unwrap();
    let (team, count) = rest.split_once('|').unwrap();
    assert_eq!(scope, "fb/routed");
    let t0 = &teams["teams"][0];
    assert_eq!((t0["scope"].as_str().unwrap(), t0["team"].as_str().unwrap(), t0["last_run_id"].as_i64().unwrap()), (scope, team, 4));
    let hist = c.ok(t0["url"].as_str().unwrap());
    assert_eq!(hist["digests"][0]["run_id"], 4);
    assert_eq!(hist["digests"][0]["count"].to_string(), count);
    let (s, v) = c.get("/api/digests/fb%2Frouted/Nobody");
    assert_eq!(s, 404, "{v}");

    // The document: OpenAPI 3.1, every implemented path, bearer auth.
    let doc = c.ok("/api/openapi.json");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."), "{}", doc["openapi"]);
    let paths: BTreeSet<&str> = doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    let implemented = [
        "/api/openapi.json",
        "/api/workflows",
        "/api/workflows/{name}",
        "/api/runs",
        "/api/runs/{id}",
        "/api/runs/{id}/items",
        "/api/runs/{id}/artifacts",
        "/api/digests",
        "/api/digests/{scope}/{team}",
        "/api/workflows/{name}/runs",
        "/api/workflows/{name}/pause",
        "/api/workflows/{name}/unpause",
        "/api/runs/{id}/resume",
        "/api/runs/{id}/cancel",
        "/api/runs/{id}/resolve",
        "/api/actions",
    ];
    assert_eq!(paths, implemented.into_iter().collect());
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let (s, v) = c.get("/api/nope");
    assert_eq!(s, 404, "{v}");
}
