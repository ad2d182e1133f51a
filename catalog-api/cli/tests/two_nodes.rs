//! Two `rbee-catalog serve` processes on one PostgreSQL database (issue
//! 13, "several catalog nodes"): node A serves its embedded registry, node
//! B reads A's registry over HTTP (`--registry-url`), and both keep their
//! listings in the one catalog view. A push to A, which only A hears (its
//! registry's events; B has no webhook and minutes-long TTLs, and had
//! cached the empty list), is listed by B within a second, through the
//! view's `NOTIFY`. Needs the test PostgreSQL (`RBEE_TEST_POSTGRES_URL`);
//! fails without it when `CI` is set.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rbee_store::testing::TestDatabase;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How soon a push must be listed by every node (`docs/api.md`).
const WITHIN: Duration = Duration::from_secs(1);

/// A running `rbee-catalog serve` and what it logged.
struct Node {
    url: String,
    log: Arc<Mutex<String>>,
    child: Child,
    _data: tempfile::TempDir,
}

impl Node {
    /// Starts `serve` on `database` with `args`, and waits until it listens.
    async fn start(database: &str, args: &[&str]) -> Node {
        let data = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbee-catalog"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .args(["--database-url", database])
            .args(args)
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
            _data: data,
        }
    }

    /// The worker ids `/v1/workers` lists.
    async fn listed(&self) -> Vec<String> {
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
    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_heard_by_one_process_is_listed_by_the_other_within_a_second() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    // A publishes anonymously over loopback: the development switch.
    let a = Node::start(db.url(), &["--dev-open-loopback"]).await;
    let b = Node::start(db.url(), &["--registry-url", &a.url]).await;
    // B answers, and caches, the empty list (for the index TTL, 300 s).
    assert!(b.listed().await.is_empty());
    assert!(b.listed().await.is_empty());

    let published = rbee_catalog_cli::demo::publish_example(&a.url, "rbee/catalog")
        .await
        .unwrap();
    assert!(published);
    let pushed = tokio::time::Instant::now();
    let worker = "hello-worker-rbee-cpu".to_owned();
    loop {
        let listed = b.listed().await;
        if listed == [worker.clone()] {
            break;
        }
        assert!(
            pushed.elapsed() < WITHIN,
            "node B lists {listed:?} {:?} after the push\nA:\n{}\nB:\n{}",
            pushed.elapsed(),
            a.log.lock().unwrap(),
            b.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "listed by the other process {:?} after the push",
        pushed.elapsed()
    );
    assert_eq!(a.listed().await, [worker]);
    a.stop().await;
    b.stop().await;
    db.finish().await;
}
