//! The registry process: started on a free port, stopped with `kill -9`
//! or SIGTERM, restarted on the same data directory.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::StatusCode;

use crate::Soak;

/// The registry process, restarted on the same data directory.
#[derive(Debug)]
pub struct Registry {
    pub binary: PathBuf,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub child: Option<Child>,
}

impl Registry {
    /// Starts the binary on a free port and waits for `GET /v2/`.
    pub async fn start(&mut self, soak: &Soak) -> anyhow::Result<()> {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let log = File::options().create(true).append(true).open(&self.log)?;
            let mut child = Command::new(&self.binary)
                .args([
                    "serve",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--data-dir",
                ])
                .arg(&self.data_dir)
                // The soak pushes anonymously over loopback.
                .arg("--dev-open-loopback")
                .env("RBEE_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {}", self.binary.display()))?;
            let base = format!("http://127.0.0.1:{port}");
            for _ in 0..400 {
                if child.try_wait()?.is_some() {
                    break;
                }
                if let Ok(resp) = soak.http.get(format!("{base}/v2/")).send().await
                    && resp.status() == StatusCode::OK
                {
                    *soak.base.write().unwrap() = base;
                    self.child = Some(child);
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        bail!("the registry did not start; see {}", self.log.display())
    }

    /// `kill -9`, or SIGTERM with `graceful` (then `kill -9` after 10 s).
    pub async fn stop(&mut self, graceful: bool) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if graceful {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if child.try_wait()?.is_some() {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            eprintln!("soak: SIGTERM did not stop the registry within 10 s; killing it");
        }
        child.kill()?;
        child.wait()?;
        Ok(())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn default_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("release/rbee-registry")
}
