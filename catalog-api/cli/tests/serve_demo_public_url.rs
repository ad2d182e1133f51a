//! `serve --demo` with a `--public-url` this machine cannot reach (a name
//! under `.invalid`, which never resolves): the demo still publishes into
//! the embedded registry (over the listen address, with tokens from this
//! process's own `/token`, not the realm under the public URL that the
//! registry's challenges name), and the catalog starts and serves it,
//! handing out download URLs under the public URL.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const PUBLIC_URL: &str = "https://catalog.example.invalid";

#[tokio::test]
async fn serve_demo_publishes_although_the_public_url_is_unreachable() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rbee-catalog"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .args(["--public-url", PUBLIC_URL, "--data-dir"])
        .arg(data.path())
        .env("RBEE_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let mut url = None;
    let mut outcome = None;
    // Bounded: the demo publishes in a few seconds; a failed publish is
    // logged (and retried requests give up) well within the minute.
    let read = tokio::time::timeout(Duration::from_secs(90), async {
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
                outcome = Some(true);
                break;
            }
            if line.contains("could not publish the example worker set") {
                outcome = Some(false);
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no demo outcome within 90 s; log:\n{log}");
    assert_eq!(outcome, Some(true), "the demo did not publish; log:\n{log}");
    let url = url.unwrap_or_else(|| panic!("no listening address in the log:\n{log}"));
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let workers: serde_json::Value = http
        .get(format!("{url}/v1/workers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = workers["workers"].as_array().map_or(0, Vec::len);
    assert_eq!(listed, 6, "{workers}");
    // Answers name the public URL, which is what clients are given.
    let download: serde_json::Value = http
        .get(format!(
            "{url}/v1/workers/hello-worker-rbee-cpu/0.1.0/download?platform=linux-x86_64"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let download_url = download["download_url"].as_str().unwrap_or_default();
    assert!(download_url.starts_with(PUBLIC_URL), "{download}");
    child.kill().await.unwrap();
}
