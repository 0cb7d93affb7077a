//! `--serve`: the real daemon on a project of `n` workflow files, with the dashboard on.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{project, rss_kib, status_kib};

/// How long the daemon gets to schedule every workflow before the benchmark gives up.
const START_DEADLINE: Duration = Duration::from_secs(600);

/// CPU seconds (user + system) the process has used so far.
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name; 100 ticks a second.
    (ticks(11) + ticks(12)) / 100.0
}

/// Waits for a log line containing every one of `needles`; returns it, or None at the deadline.
fn wait_line(lines: &mpsc::Receiver<String>, needles: &[&str], deadline: Duration) -> Option<String> {
    let until = Instant::now() + deadline;
    loop {
        let left = until.checked_duration_since(Instant::now())?;
        match lines.recv_timeout(left) {
            Ok(l) if needles.iter().all(|n| l.contains(n)) => return Some(l),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// Waits until the process has used no CPU for a second (at most `deadline`).
fn wait_quiet(pid: &str, deadline: Duration) {
    let until = Instant::now() + deadline;
    let mut last = cpu_secs(pid);
    let mut quiet_since = Instant::now();
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
        let now = cpu_secs(pid);
        if now - last > 0.015 {
            quiet_since = Instant::now();
        }
        last = now;
        if quiet_since.elapsed() >= Duration::from_secs(1) {
            return;
        }
    }
}

pub(crate) fn measure(n: usize, bin: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    project::write(root, n, |_| project::FAR.to_string());
    std::fs::write(root.join("cxflow.yaml"), "http_addr: 127.0.0.1:0\n").unwrap();

    let started = Instant::now();
    let mut child = Command::new(bin)
        .arg("serve")
        .current_dir(root)
        .env_remove("CXFLOW_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", bin.display()));
    let pid = child.id().to_string();
    let (tx, lines) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    let Some(dashboard) = wait_line(&lines, &["dashboard: http://"], START_DEADLINE) else {
        println!("serve: the dashboard did not start within {} s", START_DEADLINE.as_secs());
        let _ = child.kill();
        let _ = child.wait();
        return;
    };
    let url = dashboard.trim().trim_start_matches("dashboard: ").to_string();
    let Some(_) = wait_line(&lines, &["cxflow serve started"], START_DEADLINE) else {
        println!("serve: not scheduled within {} s ({:.1} s CPU)", START_DEADLINE.as_secs(), cpu_secs(&pid));
        let _ = child.kill();
        let _ = child.wait();
        return;
    };
    let startup = started.elapsed();
    let startup_cpu = cpu_secs(&pid);
    let rss_started = rss_kib(&pid);

    // A person opens the overview once.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let t = Instant::now();
    let page = rt.block_on(async { reqwest::get(&url).await.unwrap().text().await.unwrap() });
    let page_time = t.elapsed();
    assert!(page.contains("wf-1"), "the overview lists the workflows");
    wait_quiet(&pid, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    let rss_idle = rss_kib(&pid);
    let (anon_idle, file_idle) = (status_kib(&pid, "RssAnon:"), status_kib(&pid, "RssFile:"));

    // Hot reload: one file of n changes its schedule.
    let k = n / 2;
    let cpu0 = cpu_secs(&pid);
    let t = Instant::now();
    std::fs::write(root.join(format!("workflows/wf-{k}.yaml")), project::workflow(k, "'0 4 1 1 *'")).unwrap();
    let reloaded = wait_line(&lines, &["workflow (re)loaded", &format!("workflow=wf-{k} ")], Duration::from_secs(120));
    let reload_time = t.elapsed();
    wait_quiet(&pid, Duration::from_secs(120));
    // The one second of quiet that ended the wait is not part of the reload.
    let settle = t.elapsed().saturating_sub(Duration::from_secs(1));
    let reload_cpu = cpu_secs(&pid) - cpu0;
    let rss_after = rss_kib(&pid);
    let hwm = status_kib(&pid, "VmHWM:");
    let _ = child.kill();
    let _ = child.wait();

    let mib = |k: u64| k as f64 / 1024.0;
    println!("serve: {}", bin.display());
    println!("workflows:                         {n}");
    println!("startup to scheduled:              {:.2} s ({:.2} s CPU)", startup.as_secs_f64(), startup_cpu);
    println!("VmRSS when scheduled:              {:.1} MiB", mib(rss_started));
    println!("overview page (first request):     {:.0} ms", page_time.as_secs_f64() * 1000.0);
    println!(
        "idle VmRSS (dashboard opened):     {:.1} MiB (heap and stacks {:.1} MiB, the binary's pages {:.1} MiB)",
        mib(rss_idle),
        mib(anon_idle),
        mib(file_idle)
    );
    match reloaded {
        Some(_) => println!(
            "hot reload of 1 file, to log line:  {:.0} ms (300 ms of it the watcher's debounce)",
            reload_time.as_secs_f64() * 1000.0
        ),
        None => println!("hot reload of 1 file: no log line within 120 s"),
    }
    println!("hot reload, until the process idles: {:.0} ms wall, {:.2} s CPU", settle.as_secs_f64() * 1000.0, reload_cpu);
    println!("idle VmRSS after the reload:       {:.1} MiB (peak VmHWM {:.1} MiB)", mib(rss_after), mib(hwm));
}
