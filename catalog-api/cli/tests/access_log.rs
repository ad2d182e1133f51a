//! The real `rbee-catalog serve` logs as `docs/api.md` says: to stderr,
//! one access line per request at `info` with the method, route, status,
//! bytes, duration and the request id (the client's `X-Request-Id` or a
//! new one, echoed on the response), no colour codes when stderr is not a
//! terminal, one JSON object per line with `RBEE_LOG_FORMAT=json`; and it
//! refuses to start with download URLs no client could use.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

/// Makes the requests every test checks, then stops the server and
/// returns everything it logged.
async fn requests_and_log(env: &[(&str, &str)]) -> String {
    let data = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbee-catalog"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env_remove("NO_COLOR")
        .env_remove("RBEE_LOG_FORMAT")
        .env("RBEE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    let port = tokio::time::timeout(Duration::from_secs(60), async {
        let mut line = String::new();
        while stderr.read_line(&mut line).await.unwrap() > 0 {
            log.push_str(&line);
            if line.contains("catalog listening") {
                return line.split("127.0.0.1:").nth(1).map(|rest| {
                    rest.chars()
                        .take_while(char::is_ascii_digit)
                        .collect::<String>()
                });
            }
            line.clear();
        }
        None
    })
    .await
    .unwrap_or_else(|_| panic!("not listening within 60 s:\n{log}"))
    .unwrap_or_else(|| panic!("no listening line:\n{log}"));
    let url = format!("http://127.0.0.1:{port}");

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let listed = http
        .get(format!("{url}/v1/workers"))
        .header("x-request-id", "test-request-4711")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    assert_eq!(listed.headers()["x-request-id"], "test-request-4711");
    let missing = http
        .get(format!("{url}/v2/rbee/nothing/manifests/1.0.0"))
        .send()
        .await
        .unwrap();
    let generated = missing.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    // A signed download URL's signature must not reach the log.
    http.get(format!(
        "{url}/v1/workers/x/1.0.0/blob?signature=SECRET-SIG-0815"
    ))
    .send()
    .await
    .unwrap();

    child.start_kill().unwrap();
    child.wait().await.unwrap();
    stderr.read_to_string(&mut log).await.unwrap();
    assert!(
        !log.contains("SECRET-SIG-0815"),
        "a signature in the log:\n{log}"
    );
    assert!(
        log.contains(&generated),
        "the generated id is logged:\n{log}"
    );
    log
}

#[tokio::test]
async fn every_request_gets_an_access_line_with_its_id() {
    let log = requests_and_log(&[]).await;
    assert!(
        !log.contains('\u{1b}'),
        "colour codes off a terminal:\n{log}"
    );
    let line = log
        .lines()
        .find(|l| l.contains("test-request-4711") && l.contains("served"))
        .unwrap_or_else(|| panic!("no access line with the client's id:\n{log}"));
    for needle in [
        "method=GET",
        "route=/v1/workers",
        "status=200",
        "bytes=",
        "ms=",
    ] {
        assert!(line.contains(needle), "{needle} in {line}");
    }
    let not_found = log
        .lines()
        .find(|l| l.contains("/v2/rbee/nothing/manifests/1.0.0") && l.contains("served"))
        .unwrap_or_else(|| panic!("no access line for the registry route:\n{log}"));
    assert!(not_found.contains("status=404"), "{not_found}");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let log = requests_and_log(&[("RBEE_LOG_FORMAT", "json")]).await;
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let access = lines
        .iter()
        .find(|l| l["span"]["request_id"] == "test-request-4711" && l["fields"]["status"] == 200)
        .unwrap_or_else(|| panic!("no JSON access line with the id:\n{log}"));
    assert_eq!(access["span"]["method"], "GET");
    assert_eq!(access["span"]["route"], "/v1/workers");
    assert_eq!(access["target"], "rbee::access");
}

#[tokio::test]
async fn listening_on_every_interface_needs_a_public_url() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rbee-catalog"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(data.path())
        .env_remove("RBEE_CATALOG_PUBLIC_URL")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("--public-url"), "{stderr}");
}

#[tokio::test]
async fn a_data_dir_that_is_a_file_is_named() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rbee-catalog"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&file.display().to_string()) && stderr.contains("not a folder"),
        "{stderr}"
    );
}
