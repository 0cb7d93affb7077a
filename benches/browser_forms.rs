//! Fills the demo portal's return form for 200 records with the real binary, 2 sessions,
//! `input: set`, and prints throughput, per-form latency (form served → submission received,
//! measured by the portal), and cxflow's own peak memory and CPU time next to the browser's.
//!
//!   cargo bench --bench browser_forms            (release build; needs chromium + chromedriver)
//!   BROWSER_FORMS_N=500 BROWSER_FORMS_SESSIONS=4 BROWSER_FORMS_INPUT=type cargo bench --bench browser_forms

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cxflow::demo_portal::{self, PortalOptions};

fn env_or<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

fn main() {
    let n: usize = env_or("BROWSER_FORMS_N", 200);
    let sessions: usize = env_or("BROWSER_FORMS_SESSIONS", 2);
    let input: String = env_or("BROWSER_FORMS_INPUT", "set".to_string());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let portal = rt.block_on(demo_portal::serve("127.0.0.1:0".parse().unwrap(), PortalOptions::default())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("order_id,email,reason,comment\n");
    let reasons = ["damaged", "wrong_item", "too_late", "changed_mind"];
    for i in 0..n {
        csv.push_str(&format!("B-{i:05},c{i}@example.com,{},Parcel {i} came back\n", reasons[i % 4]));
    }
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::create_dir_all(dir.path().join("workflows")).unwrap();
    std::fs::write(dir.path().join("data/returns.csv"), csv).unwrap();
    let wf = include_str!("../workflows/portal-returns.yaml")
        .replace("sessions: 2", &format!("sessions: {sessions}"))
        .replace("input: set", &format!("input: {input}"));
    std::fs::write(dir.path().join("workflows/portal-returns.yaml"), wf).unwrap();

    let start = Instant::now();
    // Reaped below by wait4, which also reads its CPU time.
    #[allow(clippy::zombie_processes)]
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_cxflow"))
        .current_dir(dir.path())
        .args(["run", "portal-returns", "--var", &format!("portal_url={}", portal.url())])
        .env("PORTAL_USER", "demo")
        .env("PORTAL_PASSWORD", "demo-pass")
        .env("CXFLOW_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    // Browser CPU: sample every process in the chromedriver wrapper's group (chromedriver and
    // all Chromium processes) and keep each one's last reading before it exits.
    let mut browser_ticks: HashMap<i32, u64> = HashMap::new();
    let mut groups: Vec<i32> = Vec::new();
    let (status, usage) = loop {
        for p in procs() {
            if p.ppid == pid && p.comm == "sh" && !groups.contains(&p.pgid) {
                groups.push(p.pgid);
            }
            if groups.contains(&p.pgid) && p.pid != p.pgid {
                browser_ticks.insert(p.pid, p.ticks);
            }
        }
        if let Some(r) = try_wait4(pid) {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let wall = start.elapsed();
    let recs = portal.records();
    let mut lat: Vec<u64> = recs.iter().filter_map(|r| r.form_ms).collect();
    lat.sort_unstable();
    let pct = |q: f64| lat.get(((lat.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0);
    let tck = unsafe_sysconf_clk_tck() as f64;
    let browser_cpu = browser_ticks.values().sum::<u64>() as f64 / tck;
    let cx_cpu = tv(usage.ru_utime) + tv(usage.ru_stime);
    println!("browser_forms: {n} records, {sessions} sessions, input {input}, exit status {status}");
    println!(
        "  submitted        {} (unique orders {})",
        recs.len(),
        recs.iter().map(|r| &r.order).collect::<std::collections::HashSet<_>>().len()
    );
    println!("  wall             {:.2} s (including Chromium start and login)", wall.as_secs_f64());
    println!("  throughput       {:.2} forms/s", recs.len() as f64 / wall.as_secs_f64());
    println!("  latency          median {} ms, p95 {} ms (form served → submission received)", pct(0.5), pct(0.95));
    println!("  cxflow           peak RSS {:.1} MiB, CPU {:.2} s", usage.ru_maxrss as f64 / 1024.0, cx_cpu);
    println!("  browser          CPU {:.2} s (chromedriver + Chromium, sampled every 100 ms)", browser_cpu);
    println!("  cxflow share     {:.1}% of the run's CPU", 100.0 * cx_cpu / (cx_cpu + browser_cpu).max(1e-9));
    rt.block_on(portal.stop()).unwrap();
}

struct P {
    pid: i32,
    ppid: i32,
    pgid: i32,
    comm: String,
    ticks: u64,
}

fn procs() -> Vec<P> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let (Some(l), Some(r)) = (stat.find('('), stat.rfind(')')) else { continue };
        let f: Vec<&str> = stat[r + 2..].split(' ').collect();
        // Fields after comm: state(0) ppid(1) pgrp(2) ... utime(11) stime(12).
        let num = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
        out.push(P { pid, comm: stat[l + 1..r].to_string(), ppid: num(1) as i32, pgid: num(2) as i32, ticks: num(11) + num(12) });
    }
    out
}

fn tv(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

#[allow(unsafe_code)]
fn unsafe_sysconf_clk_tck() -> i64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }
}

/// Reaps the child if it exited, returning its status and resource usage (its own CPU time and
/// peak RSS; the browsers are not its waited-for children, so they are not included).
#[allow(unsafe_code)]
fn try_wait4(pid: i32) -> Option<(i32, libc::rusage)> {
    let mut status = 0;
    // SAFETY: plain syscall with valid pointers to locals.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
    (r == pid).then_some((status, ru))
}
