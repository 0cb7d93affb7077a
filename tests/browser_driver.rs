//! The chromedriver wrapper: sessions open, the process group dies with `shutdown`, and a
//! killed chromedriver is restarted.

mod support;

use std::time::Duration;

use cxflow::demo_portal::{self, PortalOptions};
use cxflow::steps::browser::driver::{Driver, DriverConfig};

/// Live (non-zombie) processes of the group: killed children of chromedriver are reparented
/// to PID 1, which in a container may never reap them, so zombies do not count.
fn group_alive(pgid: i32) -> bool {
    !group_members(pgid).is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_opens_and_group_dies_on_shutdown() {
    let portal = demo_portal::serve("127.0.0.1:0".parse().unwrap(), PortalOptions::default()).await.unwrap();
    let driver = Driver::start(DriverConfig::default()).await.expect("chromedriver must be installed");
    let pgid = driver.pgid().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (client, _) = driver.new_session(dir.path()).await.unwrap();
    client.goto(&format!("{}/login", portal.url())).await.unwrap();
    let title = client.title().await.unwrap();
    assert!(title.contains("Sign in"), "{title}");
    // Count processes in the group: chromedriver + chromium children must be inside it.
    let n = count_group(pgid);
    assert!(n >= 3, "expected chromedriver and chromium in group {pgid}, found {n}");
    client.close().await.unwrap();
    driver.shutdown().await;
    // SIGKILL is sent to the group; the processes are gone a moment later.
    wait_gone(pgid, format!("process group {pgid} to die after shutdown")).await;
    assert!(!group_alive(pgid), "process group {pgid} survived shutdown");
    portal.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_chromedriver_is_restarted() {
    let driver = Driver::start(DriverConfig::default()).await.unwrap();
    let pgid = driver.pgid().await.unwrap();
    let gen = driver.generation().await;
    // Kill only chromedriver (not the wrapper), as a crash would.
    let killed: Vec<i32> = group_members(pgid).into_iter().filter(|pid| comm(*pid).contains("chromedriver")).collect();
    assert!(!killed.is_empty(), "no chromedriver in group {pgid}");
    for pid in &killed {
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(*pid, libc::SIGKILL);
        }
    }
    // Dead (a zombie at most): its port is closed, so it no longer answers.
    let what = format!("the killed chromedriver {killed:?} to die");
    tokio::task::spawn_blocking(move || {
        support::wait_until(Duration::from_secs(10), &what, || killed.iter().all(|p| !group_members(pgid).contains(p)))
    })
    .await
    .unwrap();
    assert!(driver.restart_if_dead(gen).await.unwrap());
    assert_eq!(driver.generation().await, gen + 1);
    let dir = tempfile::tempdir().unwrap();
    let (client, _) = driver.new_session(dir.path()).await.unwrap();
    client.goto("about:blank").await.unwrap();
    client.close().await.unwrap();
    driver.shutdown().await;
    wait_gone(pgid, format!("the first process group {pgid} to die")).await;
    assert!(!group_alive(pgid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromedriver_listens_on_loopback_only() {
    let driver = Driver::start(DriverConfig::default()).await.unwrap();
    let pgid = driver.pgid().await.unwrap();
    let drivers: Vec<i32> = group_members(pgid).into_iter().filter(|pid| comm(*pid).contains("chromedriver")).collect();
    assert!(!drivers.is_empty(), "no chromedriver in group {pgid}");
    let addrs: Vec<String> = drivers.iter().flat_map(|pid| listening_addresses(*pid)).collect();
    driver.shutdown().await;
    assert!(!addrs.is_empty(), "chromedriver {drivers:?} listens on nothing");
    let open: Vec<&String> = addrs.iter().filter(|a| !is_loopback(a)).collect();
    assert!(open.is_empty(), "chromedriver listens beyond loopback: {open:?} (all: {addrs:?})");
}

/// The local addresses (hex, as /proc/net/tcp{,6} writes them) of the sockets `pid` listens on.
fn listening_addresses(pid: i32) -> Vec<String> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| l.to_string_lossy().strip_prefix("socket:[")?.strip_suffix(']').map(String::from))
        .collect();
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table).unwrap_or_default().lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is field 1, st field 3 (0A: LISTEN), inode field 9.
            if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
                out.push(f[1].to_string());
            }
        }
    }
    out
}

/// `0100007F:PORT` is 127.0.0.1 (127.0.0.0/8: the last byte of the little-endian word); `::1`
/// is `00000000000000000000000001000000:PORT`.
fn is_loopback(addr: &str) -> bool {
    let ip = addr.split(':').next().unwrap_or_default();
    (ip.len() == 8 && ip.ends_with("7F")) || ip == "00000000000000000000000001000000"
}

/// Waits (off the runtime: it polls /proc with sleeps) until no live process is left in `pgid`.
async fn wait_gone(pgid: i32, what: String) {
    tokio::task::spawn_blocking(move || support::wait_until(Duration::from_secs(10), &what, || !group_alive(pgid))).await.unwrap();
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default()
}

fn group_members(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // Fields after the `(comm)`: state ppid pgrp ...
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        if f[2].parse::<i32>() == Ok(pgid) && f[0] != "Z" {
            out.push(pid);
        }
    }
    out
}

fn count_group(pgid: i32) -> usize {
    group_members(pgid).len()
}
