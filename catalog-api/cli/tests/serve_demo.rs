//! The real `rbee-catalog` binary: `serve --demo` on `127.0.0.1:0` starts
//! the catalog with its embedded registry and publishes the example worker
//! and rbee's worker set, which `/v1/workers` then lists, and prints a
//! demo license key that unlocks the premium worker. (A few seconds.)

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const WORKERS: [&str; 6] = [
    "hello-worker-rbee-cpu",
    "llm-worker-rbee-cpu",
    "llm-worker-rbee-cuda",
    "llm-worker-rbee-metal",
    "llm-worker-rbee-premium",
    "sd-worker-rbee-cpu",
];

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
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Logs go to stderr; the demo license key is printed on stdout.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut printed = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut url = None;
    let mut published = false;
    let mut license = None;
    let mut log = String::new();
    let read_license = async {
        while let Some(line) = printed.next_line().await.unwrap() {
            if let Some(key) =
                line.strip_prefix("demo license key (unlocks llm-worker-rbee-premium): ")
            {
                return Some(key.trim().to_owned());
            }
        }
        None
    };
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
            }
            if published && url.is_some() {
                break;
            }
        }
    };
    let finished = tokio::time::timeout(Duration::from_secs(60), async {
        let (_, key) = tokio::join!(read, read_license);
        license = key;
    })
    .await;
    assert!(finished.is_ok(), "no demo publish within 60 s; log:\n{log}");
    assert!(published, "the binary exited; log:\n{log}");
    let url = url.unwrap_or_else(|| panic!("no listening address in the log:\n{log}"));

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let workers: serde_json::Value = http
        .get(format!("{url}/v1/workers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ids: Vec<&str> = workers["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["id"].as_str())
        .collect();
    ids.sort();
    assert_eq!(ids, WORKERS);

    // The premium worker needs a license; the printed demo key unlocks it.
    let license = license.unwrap_or_else(|| panic!("no demo license key printed:\n{log}"));
    assert!(license.starts_with("rbee_lic_"), "{license}");
    let download =
        format!("{url}/v1/workers/llm-worker-rbee-premium/0.1.0/download?platform=linux-x86_64");
    let anonymous = http.get(&download).send().await.unwrap().status();
    assert!(anonymous == 401 || anonymous == 403, "{anonymous}");
    let licensed = http
        .get(&download)
        .bearer_auth(&license)
        .send()
        .await
        .unwrap();
    assert_eq!(licensed.status(), 200, "{:?}", licensed.text().await);
}
