//! The dashboard's speed goal (issue 13): the run page of a run of 1,000,000 items, and the
//! overview of 1,000 workflows, each answered in under 150 ms of server time.
//! `cargo bench --bench dashboard` (release; seeding takes a minute or so).
//!
//! A project of 1,001 workflow files (a third scheduled, in five zones, half of those with a
//! holiday calendar) over the run log of `support/dashboard_data.rs`, served by the real router
//! on 127.0.0.1:0. Server time is taken by a middleware around the whole router (auth included),
//! from the request's arrival to its body fully produced, and sent back in `Server-Timing`; the
//! client's round trip is printed beside it. Prints median, p95 and max per URL; asserts only
//! that each page answers 200 with what it should show, not how fast.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use cxflow::cli::Project;
use cxflow::web::{self, App};
use tokio_util::sync::CancellationToken;

#[path = "support/dashboard_data.rs"]
mod dashboard_data;
use dashboard_data::{workflow_name, ITEMS, RUNS_EACH, WORKFLOWS};

const REPS: usize = 30;
const WARM_UP: usize = 3;
const GOAL_MS: f64 = 150.0;

/// Times the router's work for one request, body included (pages and JSON are built whole,
/// so once collected nothing is left but the socket write).
async fn server_timing(req: Request, next: Next) -> Response {
    let t = Instant::now();
    let (mut parts, body) = next.run(req).await.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    parts.headers.insert("server-timing", HeaderValue::from_str(&format!("app;dur={ms:.3}")).unwrap());
    Response::from_parts(parts, Body::from(bytes))
}

/// 1,000 workflows as the run log names them and the big run's: a third scheduled on weekday
/// mornings in five zones (every other one of those with a holiday calendar and business days
/// only), the rest run by hand.
fn write_project(root: &Path) {
    for d in ["workflows", "calendars", "data", "artifacts"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/calendars/uk-bank-holidays.yaml"), root.join("calendars/uk-bank-holidays.yaml"))
        .unwrap();
    std::fs::write(root.join("data/tickets.csv"), "id,email\n1,a@example.test\n").unwrap();
    let zones = ["Europe/London", "America/New_York", "UTC", "Asia/Tokyo", "Australia/Sydney"];
    let steps =
        "steps:\n  - id: tickets\n    read_csv: data/tickets.csv\n  - id: out\n    write_csv: { from: tickets, path: out/tickets.csv }\n";
    for i in 0..WORKFLOWS {
        let name = workflow_name(i);
        let schedule = match i % 6 {
            0 => format!(
                "schedule:\n  cron: '{} {} * * 1-5'\n  timezone: {}\n  calendar: calendars/uk-bank-holidays.yaml\n  business_days: true\n",
                i % 60,
                6 + i % 12,
                zones[(i / 3) as usize % zones.len()]
            ),
            3 => format!("schedule:\n  cron: '{} {} * * *'\n  timezone: {}\n", i % 60, 6 + i % 12, zones[(i / 3) as usize % zones.len()]),
            _ => String::new(),
        };
        std::fs::write(root.join(format!("workflows/{name}.yaml")), format!("name: {name}\n{schedule}{steps}")).unwrap();
    }
    std::fs::write(root.join("workflows/big.yaml"), format!("name: big\n{steps}")).unwrap();
}

/// The files of the big run's artifacts, so the run page previews what is there.
async fn write_artifacts(root: &Path, store: &cxflow::store::Store, run: i64) {
    let paths: Vec<String> = store.artifacts(run).await.unwrap().into_iter().map(|a| a.path).collect();
    std::fs::create_dir_all(root.join(format!("artifacts/run-{run}"))).unwrap();
    for p in &paths {
        std::fs::write(root.join(p), b"\x89PNG\r\n\x1a\n(a screenshot)").unwrap();
    }
}

struct Timed {
    server: Vec<f64>,
    client: Vec<f64>,
    bytes: usize,
}

async fn fetch(client: &reqwest::Client, base: &str, path: &str) -> (u16, f64, f64, String) {
    let t = Instant::now();
    let r = client.get(format!("{base}{path}")).send().await.unwrap();
    let status = r.status().as_u16();
    let server = r
        .headers()
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("app;dur="))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    let body = r.text().await.unwrap();
    (status, server, t.elapsed().as_secs_f64() * 1000.0, body)
}

/// `REPS` requests of `path` after a warm-up; `None` when the path does not exist (404).
async fn measure(client: &reqwest::Client, base: &str, path: &str, expect: &str) -> Option<Timed> {
    let (status, _, _, body) = fetch(client, base, path).await;
    if status == 404 {
        return None;
    }
    assert_eq!(status, 200, "GET {path}: {}", &body[..body.len().min(500)]);
    assert!(body.contains(expect), "GET {path} does not show `{expect}`");
    for _ in 1..WARM_UP {
        fetch(client, base, path).await;
    }
    let mut t = Timed { server: Vec::with_capacity(REPS), client: Vec::with_capacity(REPS), bytes: body.len() };
    for _ in 0..REPS {
        let (_, server, round_trip, _) = fetch(client, base, path).await;
        t.server.push(server);
        t.client.push(round_trip);
    }
    Some(t)
}

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    (v[n / 2], v[(n * 95).div_ceil(100) - 1], v[n - 1])
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_project(root);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let project = Arc::new(Project::open(root).unwrap());
        let store = project.store().await.unwrap();
        let t = Instant::now();
        let run = dashboard_data::seed(&store).await;
        write_artifacts(root, &store, run).await;
        let stats_ = store.run_log_stats().await.unwrap();
        println!(
            "run log: {} runs, {} items, {:.0} MB, seeded in {:.1} s; {} workflow files",
            stats_.runs,
            stats_.items,
            stats_.bytes as f64 / 1e6,
            t.elapsed().as_secs_f64(),
            WORKFLOWS + 1
        );
        assert_eq!(stats_.items, ITEMS);
        assert_eq!(stats_.runs, WORKFLOWS * RUNS_EACH + 1);

        let shutdown = CancellationToken::new();
        let t = Instant::now();
        let app = App::for_project(project, store.clone(), None, shutdown.clone());
        let planned = t.elapsed();
        let router = web::router(app).layer(middleware::from_fn(server_timing));
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
                .unwrap();
        });
        println!("{} workflow files planned in {:.0} ms; serving on {base}", WORKFLOWS + 1, planned.as_secs_f64() * 1000.0);

        let deep = dashboard_data::deep_cursor(&store, run).await;
        let urls: Vec<(&str, String, &str)> = vec![
            // The overview's first page (100 of the 1,001 workflows), its last, and a filter.
            ("overview", "/".into(), "Workflows 1–100 of 1,001"),
            ("overview, last page", "/?page=11".into(), "workflow-0999"),
            ("overview, q=workflow-09", "/?q=workflow-09".into(), "of 100 matching"),
            ("run page, first page", format!("/runs/{run}"), "T-0000099"),
            ("run page, after item 750,000", format!("/runs/{run}?after={deep}"), "T-0250001"),
            ("run page, status=failed", format!("/runs/{run}?status=failed"), "refund-method"),
            ("run page, q=T-012345 (20 items)", format!("/runs/{run}?q=T-012345"), "T-0123459"),
            ("runs list", "/runs".into(), "workflow-0999"),
            ("api items, first page", format!("/api/runs/{run}/items"), "T-0000099"),
            ("api run", format!("/api/runs/{run}"), "\"mail\""),
            ("api workflows", "/api/workflows".into(), "workflow-0999"),
            ("digests", "/digests".into(), "team-3"),
        ];
        println!("server time (request in to body out) and client round trip, ms, {REPS} requests after {WARM_UP} warm-up:");
        println!("  {:<32} {:>8} {:>8} {:>8}   {:>8}   {:>9}", "page", "median", "p95", "max", "client", "bytes");
        let mut missed = Vec::new();
        for (label, path, expect) in &urls {
            let Some(t) = measure(&reqwest::Client::new(), &base, path, expect).await else {
                println!("  {label:<32} (no such page: {path} answers 404; skipped)");
                continue;
            };
            let (med, p95, max) = stats(t.server);
            let (cmed, ..) = stats(t.client);
            println!("  {label:<32} {med:>8.1} {p95:>8.1} {max:>8.1}   {cmed:>8.1}   {:>9}", t.bytes);
            if p95 >= GOAL_MS {
                missed.push(format!("{label} ({path}): p95 {p95:.1} ms"));
            }
        }
        if missed.is_empty() {
            println!("every page's p95 is under {GOAL_MS} ms of server time");
        } else {
            println!("over {GOAL_MS} ms at p95: {}", missed.join("; "));
        }
        shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    });
}
