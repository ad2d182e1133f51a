//! No key ever reaches the log: the real `rbee-catalog serve` at debug
//! level (sqlx's statements, the HTTP trace layer, the admin key's
//! creation) while an admin creates, reads and revokes a license over
//! `/admin` and the license key is used. On SQLite and PostgreSQL.

use std::process::Stdio;
use std::time::Duration;

use rbee_store::database_test;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

database_test!(async fn no_key_appears_in_the_debug_log(db) {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rbee-catalog"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .arg("--database-url")
        .arg(db.url())
        .env("RBEE_LOG", "debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Logs go to stderr.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    let mut url = None;
    let started = tokio::time::timeout(Duration::from_secs(60), async {
        let mut line = String::new();
        while stderr.read_line(&mut line).await.unwrap() > 0 {
            if line.contains("catalog listening") {
                url = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("url="))
                    .map(str::to_owned);
            }
            log.push_str(&line);
            line.clear();
            if url.is_some() {
                break;
            }
        }
    })
    .await;
    assert!(started.is_ok(), "not listening within 60 s:\n{log}");
    let url = url.unwrap_or_else(|| panic!("no listening line:\n{log}"));
    assert!(log.contains("admin.key"), "the log names the key file:\n{log}");
    let admin_key = std::fs::read_to_string(data.path().join("admin.key"))
        .unwrap()
        .trim()
        .to_owned();

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let created: Value = http
        .post(format!("{url}/admin/licenses"))
        .bearer_auth(&admin_key)
        .json(&json!({"owner": "acme", "grants": [{"worker": "llm"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let license_key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap();
    for (method, path, key) in [
        ("GET", "/admin/licenses".to_owned(), &admin_key),
        ("POST", format!("/admin/licenses/{id}/revoke"), &admin_key),
        ("GET", "/admin/licenses".to_owned(), &license_key),
        ("GET", "/v1/workers".to_owned(), &license_key),
    ] {
        http.request(method.parse().unwrap(), format!("{url}{path}"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
    }

    child.start_kill().unwrap();
    child.wait().await.unwrap();
    stderr.read_to_string(&mut log).await.unwrap();
    child.stdout.take().unwrap().read_to_string(&mut log).await.unwrap();
    assert!(log.contains("/admin/licenses"), "the requests were logged:\n{log}");
    for key in [&admin_key, &license_key] {
        // The random part alone, in case a log line cut or quoted it.
        let secret = &key[9..];
        assert!(!log.contains(secret), "a key in the log:\n{log}");
    }
});
