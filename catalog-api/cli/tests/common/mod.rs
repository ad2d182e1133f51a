//! Helpers shared by the tests that run real `rbee-catalog serve`
//! processes: [`Node`], one such process on a free port.

// Each test file is its own crate and uses a different part of this module.
#![allow(dead_code)]

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running `rbee-catalog serve` and what it logged.
pub struct Node {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Everything it logged so far.
    pub log: Arc<Mutex<String>>,
    child: Child,
    /// Its `--data-dir`.
    pub data: tempfile::TempDir,
}

impl Node {
    /// Starts `serve` on `database` with `args`, and waits until it listens.
    pub async fn start(database: &str, args: &[&str]) -> Node {
        Self::start_with_env(database, args, &[]).await
    }

    /// [`Node::start`] with environment variables `env` set for the process
    /// (`AWS_*` credentials of a bucket).
    pub async fn start_with_env(database: &str, args: &[&str], env: &[(&str, String)]) -> Node {
        let data = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbee-catalog"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .args(["--database-url", database])
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RBEE_LOG", "info")
            .env_remove("RBEE_LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // The developer's own catalog settings must not reach the nodes.
        for (name, _) in std::env::vars() {
            if name.starts_with("RBEE_CATALOG_") {
                cmd.env_remove(name);
            }
        }
        let mut child = cmd.spawn().unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(String::new()));
        let port = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = stderr.next_line().await {
                log.lock().unwrap().push_str(&format!("{line}\n"));
                if line.contains("catalog listening") {
                    return line.split("127.0.0.1:").nth(1).map(|rest| {
                        rest.chars()
                            .take_while(char::is_ascii_digit)
                            .collect::<String>()
                    });
                }
            }
            None
        })
        .await
        .unwrap_or_else(|_| panic!("not listening within 60 s:\n{}", log.lock().unwrap()))
        .unwrap_or_else(|| panic!("no listening line:\n{}", log.lock().unwrap()));
        // Keep reading, so that a full pipe never stops the node.
        let keep = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                keep.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        Node {
            url: format!("http://127.0.0.1:{port}"),
            log,
            child,
            data,
        }
    }

    /// The worker ids `/v1/workers` lists.
    pub async fn listed(&self) -> Vec<String> {
        let resp = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("{}/v1/workers", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", self.log.lock().unwrap());
        let body: Value = resp.json().await.unwrap();
        body["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Stops the node (SIGKILL: the database drops its connections).
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
