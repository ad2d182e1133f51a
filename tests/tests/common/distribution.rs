//! CNCF Distribution 2.8 (Debian `docker-registry`) as a second registry
//! under test: started on a free 127.0.0.1 port with a temporary
//! configuration and storage, optionally behind htpasswd Basic auth, and
//! killed when the guard is dropped. It has no referrers API, which is the
//! point: the pusher must fall back to the referrers tag schema there.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::require_tool;

/// How long Distribution may take to answer `GET /v2/` after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `docker-registry serve`, killed on drop.
#[derive(Debug)]
pub struct Distribution {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// `(user, password)` when it was started with [`Distribution::start_with_htpasswd`].
    pub credentials: Option<(String, String)>,
    /// Configuration, storage and the server's log.
    pub dir: tempfile::TempDir,
}

impl Distribution {
    /// Starts Distribution with anonymous access; `None` (after the skip
    /// message, or a panic in CI) when `docker-registry` is not installed.
    pub async fn start() -> Option<Distribution> {
        if !require_tool("docker-registry") {
            return None;
        }
        Some(Distribution::spawn(None, "").await)
    }

    /// Starts Distribution with anonymous access and `extra` appended to
    /// its YAML configuration (top-level sections such as
    /// `notifications:`). `None` when `docker-registry` is not installed.
    pub async fn start_with_config(extra: &str) -> Option<Distribution> {
        if !require_tool("docker-registry") {
            return None;
        }
        Some(Distribution::spawn(None, extra).await)
    }

    /// Starts Distribution requiring Basic auth as `user`/`password`
    /// (htpasswd with a bcrypt hash, made by `htpasswd -B` from
    /// apache2-utils). `None` when a tool is missing.
    pub async fn start_with_htpasswd(user: &str, password: &str) -> Option<Distribution> {
        if !require_tool("docker-registry") || !require_tool("htpasswd") {
            return None;
        }
        Some(Distribution::spawn(Some((user.to_owned(), password.to_owned())), "").await)
    }

    async fn spawn(credentials: Option<(String, String)>, extra: &str) -> Distribution {
        let dir = tempfile::tempdir().expect("distribution dir");
        let mut auth = String::new();
        if let Some((user, password)) = &credentials {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd runs");
            assert!(out.status.success(), "htpasswd: {out:?}");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).unwrap();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: rbee-test\n    path: {}\n",
                file.display()
            );
        }
        // Extra top-level sections go after `auth`, at the end of the file.
        auth.push_str(extra);
        // The port is found by binding and releasing it; another process
        // may take it in between, so a start that fails is tried again on
        // a new port.
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let config = dir.path().join("config.yml");
            std::fs::write(&config, config_yaml(&dir.path().join("data"), port, &auth)).unwrap();
            let log_path = dir.path().join("registry.log");
            let log = std::fs::File::create(&log_path).unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("docker-registry starts");
            let url = format!("http://127.0.0.1:{port}");
            if wait_until_ready(&mut child, &url).await {
                return Distribution {
                    child,
                    host: format!("127.0.0.1:{port}"),
                    url,
                    credentials,
                    dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
        }
        panic!("CNCF Distribution did not start; its log:\n{last_log}");
    }

    /// What the server logged (warnings and errors only).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `GET /v2/` until it answers (200, or 401 behind auth); false
/// when the process exits first (its port was taken) or time runs out.
async fn wait_until_ready(child: &mut Child, url: &str) -> bool {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let started = Instant::now();
    while started.elapsed() < START_TIMEOUT {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(resp) = http.get(format!("{url}/v2/")).send().await
            && (resp.status() == 200 || resp.status() == 401)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The registry configuration: filesystem storage with deletes, warnings
/// only and no access log (so the log holds what went wrong), a fixed HTTP
/// secret (or it warns about generating one), and `auth` as given.
fn config_yaml(data: &Path, port: u16, auth: &str) -> String {
    format!(
        "version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: rbee-e2e-not-a-secret
{auth}",
        data = data.display()
    )
}
