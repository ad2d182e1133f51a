//! The real `rbee-catalog` binary: `serve --demo` on `127.0.0.1:0` starts
//! the catalog with its embedded registry and publishes the example worker,
//! which `/v1/workers` then lists. (A few seconds: one publish.)

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const WORKER: &str = "hello-worker-rbee-cpu";

#[tokio::test]
async fn serve_demo_publishes_the_example_worker() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rbee-catalog"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("RBEE_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut url = None;
    let mut published = false;
    let mut log = String::new();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            log.push_str(&line);
            log.push('\n');
            if url.is_none() && line.contains("catalog listening") {
                url = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("url="))
                    .map(str::to_owned);
            }
            if line.contains("published the example worker") {
                published = true;
                break;
            }
        }
    };
    let finished = tokio::time::timeout(Duration::from_secs(60), read).await;
    assert!(finished.is_ok(), "no demo publish within 60 s; log:\n{log}");
    assert!(published, "the binary exited; log:\n{log}");
    let url = url.unwrap_or_else(|| panic!("no listening address in the log:\n{log}"));

    let workers: serde_json::Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{url}/v1/workers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = workers["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["id"].as_str())
        .collect();
    assert_eq!(ids, [WORKER]);
}
