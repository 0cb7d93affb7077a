//! The WebDriver server: either a chromedriver that cxflow starts and owns, or an external one
//! given by `webdriver_url`. Owns process lifetime (restart after a crash, kill on close) and
//! opens browser sessions on it.
//!
//! Why a shell wrapper: chromedriver and the Chromium processes it starts must never outlive
//! cxflow, also when cxflow is killed with SIGKILL and no destructor runs. The wrapper is the
//! leader of a fresh process group (`process_group(0)`), starts chromedriver in it and blocks
//! reading its stdin, a pipe held by cxflow. When cxflow exits for any reason the pipe closes,
//! `read` returns and the wrapper kills its whole group. On a normal close we kill the group
//! ourselves with `killpg`.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::Mutex;

/// The Chromium flags every session gets: headless, works as root in a container (no sandbox,
/// no /dev/shm), and no background traffic that would make runs slower or less repeatable.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--window-size=1280,1024",
];

#[derive(Debug, Clone, Default)]
pub struct DriverConfig {
    /// Use this WebDriver server instead of starting chromedriver.
    pub webdriver_url: Option<String>,
    /// chromedriver binary; default `chromedriver` from PATH.
    pub chromedriver: Option<PathBuf>,
    /// Chromium binary; default: whatever chromedriver finds.
    pub chromium: Option<PathBuf>,
}

struct Owned {
    child: Child,
    /// Held only so the wrapper's `read` blocks until we drop it (see module docs).
    _stdin: ChildStdin,
    pgid: i32,
}

struct State {
    url: String,
    owned: Option<Owned>,
    /// Bumped on every restart; sessions remember the generation they were created on, so
    /// several sessions noticing the same crash restart chromedriver only once.
    generation: u64,
}

pub struct Driver {
    cfg: DriverConfig,
    state: Mutex<State>,
}

impl Driver {
    pub async fn start(cfg: DriverConfig) -> anyhow::Result<Driver> {
        let state = match &cfg.webdriver_url {
            Some(url) => State { url: url.clone(), owned: None, generation: 0 },
            None => {
                let (url, owned) = spawn_chromedriver(&cfg).await?;
                State { url, owned: Some(owned), generation: 0 }
            }
        };
        Ok(Driver { cfg, state: Mutex::new(state) })
    }

    pub async fn generation(&self) -> u64 {
        self.state.lock().await.generation
    }

    /// Restarts chromedriver if it is still the one of `seen_generation` and it no longer
    /// answers. Returns false when the driver is external (nothing we can restart).
    pub async fn restart_if_dead(&self, seen_generation: u64) -> anyhow::Result<bool> {
        let mut st = self.state.lock().await;
        if st.generation != seen_generation {
            return Ok(true);
        }
        let url = st.url.clone();
        let Some(owned) = st.owned.as_mut() else { return Ok(false) };
        if owned.child.try_wait()?.is_none() && is_up(&url).await {
            return Ok(true);
        }
        tracing::warn!("chromedriver stopped answering; restarting it");
        if let Some(old) = st.owned.take() {
            kill_group(old).await;
        }
        let (url, owned) = spawn_chromedriver(&self.cfg).await?;
        st.url = url;
        st.owned = Some(owned);
        st.generation += 1;
        Ok(true)
    }

    /// Opens a new browser session with a fresh profile directory.
    pub async fn new_session(&self, profile_dir: &Path) -> anyhow::Result<(Client, u64)> {
        let (url, generation) = {
            let st = self.state.lock().await;
            (st.url.clone(), st.generation)
        };
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile_dir.display()));
        let mut chrome = serde_json::json!({ "args": args });
        if let Some(bin) = &self.cfg.chromium {
            chrome["binary"] = serde_json::json!(bin);
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert("goog:chromeOptions".into(), chrome);
        // http:// (our chromedriver, a grid on the LAN) or https:// (a grid behind a TLS proxy,
        // checked against the public roots). The ring provider named: the tests' build has two.
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .map_err(|e| anyhow::anyhow!("cannot set up TLS for the WebDriver server: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        let client = ClientBuilder::new(tls)
            .capabilities(caps)
            .connect(&url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open a browser session on {}: {e}", crate::config::redact_url(&url)))?;
        Ok((client, generation))
    }

    /// Kills chromedriver and every browser it started.
    pub async fn shutdown(&self) {
        let mut st = self.state.lock().await;
        if let Some(owned) = st.owned.take() {
            kill_group(owned).await;
        }
    }

    /// The process group id of the owned chromedriver (tests look for leftovers with it).
    pub async fn pgid(&self) -> Option<i32> {
        self.state.lock().await.owned.as_ref().map(|o| o.pgid)
    }
}

fn free_port() -> std::io::Result<u16> {
    // The port is released before chromedriver binds it; another process could grab it in
    // between, which `spawn_chromedriver` survives by retrying on a new port.
    let l = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    Ok(l.local_addr()?.port())
}

async fn spawn_chromedriver(cfg: &DriverConfig) -> anyhow::Result<(String, Owned)> {
    let bin = cfg.chromedriver.clone().unwrap_or_else(|| PathBuf::from("chromedriver"));
    let mut last_err = None;
    for _ in 0..3 {
        let port = free_port()?;
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            // $1 = binary, $2 = port. `kill -KILL 0` signals the wrapper's own process group.
            // No `--allowed-ips`: given any list, chromedriver listens on every interface (and
            // only filters by peer address); without it, it binds 127.0.0.1 and ::1 alone.
            .arg(r#""$1" --port="$2" --log-level=OFF </dev/null & read _ ; kill -KILL 0"#)
            .arg("cxflow-chromedriver")
            .arg(&bin)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| anyhow::anyhow!("cannot start /bin/sh to run chromedriver: {e}"))?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow::anyhow!("no stdin pipe"))?;
        let pgid = child.id().unwrap_or(0) as i32;
        let owned = Owned { child, _stdin: stdin, pgid };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut owned = Some(owned);
        while Instant::now() < deadline {
            if is_up(&url).await {
                return Ok((url, owned.take().unwrap()));
            }
            let o = owned.as_mut().unwrap();
            if let Ok(Some(_)) = o.child.try_wait() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Some(o) = owned.take() {
            kill_group(o).await;
        }
        last_err = Some(anyhow::anyhow!(
            "chromedriver (`{}`) did not start on port {port}; install it with \
             `apt-get install -y chromium chromium-driver` or set `chromedriver`/`webdriver_url` in cxflow.yaml",
            bin.display()
        ));
    }
    Err(last_err.unwrap_or_else(|| anyhow::anyhow!("chromedriver did not start")))
}

/// True when something answers HTTP on the driver's `/status`.
async fn is_up(url: &str) -> bool {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let probe = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        // HTTP/1.1: chromedriver does not answer HTTP/1.0 requests.
        let req = format!("GET /status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await.ok()?;
        Some(buf.starts_with(b"HTTP/1.") && &buf[9..12] == b"200")
    };
    matches!(tokio::time::timeout(Duration::from_secs(2), probe).await, Ok(Some(true)))
}

#[allow(unsafe_code)]
async fn kill_group(mut owned: Owned) {
    if owned.pgid > 0 {
        // SAFETY: killpg only sends a signal; the group id is the wrapper we spawned as leader.
        unsafe {
            libc::killpg(owned.pgid, libc::SIGKILL);
        }
    }
    let _ = owned.child.kill().await;
    let _ = owned.child.wait().await;
}
