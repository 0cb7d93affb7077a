//! The dashboard's read pages served by the real `cxflow ui` over a run log that real runs
//! wrote: what a browser gets back (statuses, links, escaping, artifact files and refusals).

mod support;

use std::io::BufRead;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{wait_for_some, TestProject};

const WORKFLOW: &str = r#"name: export
steps:
  - id: tickets
    read_csv: data/tickets.csv
  - id: stamp
    for_each: tickets
    item_key: "{{item.id}}"
    command: ["python3", "-c", "import json,sys; v=sys.argv[1]; print(json.dumps({'id': v})) if v != 'bad' else sys.exit('no <good> at all')", "{{item.id}}"]
  - id: inside
    write_csv: { from: tickets, path: "artifacts/tickets.csv" }
  - id: outside
    write_json: { from: tickets, path: "out/tickets.json" }
"#;

/// A `cxflow ui`, killed when dropped, and the address it says it serves.
struct Ui {
    child: Child,
    base: String,
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Ui {
    fn start(p: &TestProject) -> Ui {
        let mut child = p.cxflow().arg("ui").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let stderr = child.stderr.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut ui = Ui { child, base: String::new() };
        ui.base = wait_for_some(Duration::from_secs(60), "`cxflow ui` to print its address", || {
            let lines = lines.lock().unwrap();
            lines.iter().find_map(|l| l.split("dashboard: ").nth(1).map(|u| u.trim().trim_end_matches('/').to_string()))
        });
        ui
    }

    /// Status, content type and body of GET `path`.
    fn get(&self, path: &str) -> (u16, String, String, reqwest::header::HeaderMap) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let r = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            let ct = headers.get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
            (status, ct, r.text().await.unwrap(), headers)
        })
    }
}

#[test]
fn the_pages_show_what_real_runs_recorded() {
    let p = TestProject::new();
    p.write("workflows/export.yaml", WORKFLOW);
    p.write("data/tickets.csv", "id,title\nt-1,fine\nbad,\"<script>alert(1)</script>\"\n");
    let run = p.run(&["run", "export"]);
    assert_eq!(run.code, 1, "one item fails: {}\n{}", run.stdout, run.stderr);
    let ui = Ui::start(&p);

    let (status, ct, body, _) = ui.get("/");
    assert_eq!((status, ct.as_str()), (200, "text/html; charset=utf-8"));
    assert!(body.contains(r#"<a href="/workflows/export">export</a> <a class="muted" href="/runs?workflow=export">runs</a>"#), "{body}");
    assert!(body.contains(r#"<a href="/runs/1">#1</a> <span class="status s-partial">partial</span>"#), "{body}");
    assert!(body.contains(r#"<span class="muted">manual</span>"#), "{body}");

    let (status, _, body, _) = ui.get("/runs?workflow=export&status=partial");
    assert_eq!(status, 200);
    assert!(body.contains(r#"<td class="num"><a href="/runs/1">1</a></td><td>export</td><td>manual</td>"#), "{body}");
    assert_eq!(ui.get("/runs?status=nope").0, 400);

    let (status, _, body, _) = ui.get("/runs/1?status=failed");
    assert_eq!(status, 200);
    assert!(body.contains(r#"<tr data-step="stamp">"#), "{body}");
    assert!(body.contains("<tr><td><code>bad</code></td><td>stamp</td>"), "{body}");
    assert!(!body.contains("<tr><td><code>t-1</code>"), "the filter holds: {body}");
    assert!(body.contains("no &lt;good&gt; at all"), "{body}");
    assert!(!body.contains("<script>alert(1)"), "{body}");
    assert_eq!(body.matches("The file cannot be shown (gone, or outside the artifacts folder).").count(), 1, "out/tickets.json: {body}");

    // The CSV inside the artifacts folder is served as text; the JSON written elsewhere is not.
    let arts = p.query("SELECT id, path FROM artifacts ORDER BY id");
    let id_of = |end: &str| arts.iter().find(|r| r.ends_with(end)).unwrap().split('|').next().unwrap().to_string();
    let (status, ct, text, headers) = ui.get(&format!("/runs/1/artifacts/{}", id_of("tickets.csv")));
    assert_eq!((status, ct.as_str()), (200, "text/plain; charset=utf-8"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-security-policy"].to_str().unwrap().starts_with("sandbox"));
    assert!(text.starts_with("id,title\n"), "{text}");
    assert_eq!(ui.get(&format!("/runs/1/artifacts/{}", id_of("tickets.json"))).0, 404);
    assert_eq!(ui.get(&format!("/runs/2/artifacts/{}", id_of("tickets.csv"))).0, 404);
}
