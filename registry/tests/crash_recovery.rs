//! Crashes and stale uploads: the real `rbee-registry` binary killed with
//! SIGKILL in the middle of uploads starts again cleanly on the same data
//! directory, shows no partial blob, and lets clients upload again or
//! resume; expired upload sessions are purged, at start and on demand.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use reqwest::StatusCode;

/// The `rbee-registry` binary serving a data directory on a free port.
#[derive(Debug)]
struct Binary {
    child: Child,
    base: String,
}

impl Binary {
    /// Starts `rbee-registry serve` on a free port. Another process may take
    /// the port between our probe and the server's bind, so a start that
    /// does not come up is retried on a new port.
    async fn start(data_dir: &Path, extra: &[&str]) -> Binary {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new(env!("CARGO_BIN_EXE_rbee-registry"))
                .args([
                    "serve",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--data-dir",
                ])
                .arg(data_dir)
                // Anonymous pushes from this test: the development switch.
                .arg("--dev-open-loopback")
                .args(extra)
                .env("RBEE_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn rbee-registry");
            let base = format!("http://127.0.0.1:{port}");
            let client = reqwest::Client::new();
            for _ in 0..200 {
                if let Some(status) = child.try_wait().unwrap() {
                    eprintln!("rbee-registry exited with {status} on port {port}; retrying");
                    break;
                }
                if let Ok(resp) = client.get(format!("{base}/v2/")).send().await
                    && resp.status() == StatusCode::OK
                {
                    return Binary { child, base };
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("rbee-registry did not start");
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// SIGKILL, as a crash or the OOM killer would.
    fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        // A failing test must not leave a server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sessions_in(data_dir: &Path) -> Vec<String> {
    entries_of(&data_dir.join("uploads"))
}

fn blob_file(data_dir: &Path, digest: &str) -> PathBuf {
    let hex = &digest["sha256:".len()..];
    data_dir.join("blobs/sha256").join(&hex[..2]).join(hex)
}

/// A stream over what `rx` receives.
fn channel_stream(
    rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

#[tokio::test]
async fn a_registry_killed_mid_upload_restarts_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let client = reqwest::Client::new();
    let x = pseudo_random(6 << 20, 41);
    let y = pseudo_random(8 << 20, 42);
    let (x_digest, y_digest) = (sha256(&x), sha256(&y));

    let reg = Binary::start(&data_dir, &[]).await;
    // Session X gets a complete first chunk; session Y a first chunk and
    // then a PATCH whose body is cut off by the crash.
    let open = |reg: &Binary| {
        let req = client.post(reg.url("/v2/rbee/w/blobs/uploads/"));
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::ACCEPTED);
            location(&resp)
        }
    };
    let x_session = open(&reg).await;
    let y_session = open(&reg).await;
    for (session, data) in [(&x_session, &x), (&y_session, &y)] {
        let resp = client
            .patch(reg.url(session))
            .header("content-range", "0-1048575")
            .body(data[..1 << 20].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
    }
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let in_flight = tokio::spawn(
        client
            .patch(reg.url(&y_session))
            .body(reqwest::Body::wrap_stream(channel_stream(rx)))
            .send(),
    );
    tx.send(Ok(y[1 << 20..6 << 20].to_vec())).await.unwrap();
    // Wait until the registry has written some of the in-flight chunk, so
    // the crash really cuts an append in half.
    let y_id = y_session.rsplit('/').next().unwrap().to_owned();
    let y_data = data_dir.join("uploads").join(&y_id).join("data");
    for _ in 0..500 {
        if y_data.metadata().is_ok_and(|m| m.len() > 1 << 20) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        y_data.metadata().unwrap().len() > 1 << 20,
        "the in-flight chunk reached the disk"
    );

    reg.kill_9();
    drop(tx);
    assert!(
        in_flight.await.unwrap().is_err(),
        "the in-flight PATCH died with the server"
    );

    let reg = Binary::start(&data_dir, &[]).await;
    // No partial blob is visible, in the API or in the blob store.
    for digest in [&x_digest, &y_digest] {
        let resp = client
            .get(reg.url(&format!("/v2/rbee/w/blobs/{digest}")))
            .send()
            .await
            .unwrap();
        expect_error(resp, 404, "BLOB_UNKNOWN").await;
        assert!(!blob_file(&data_dir, digest).exists());
    }
    assert!(files_under(&data_dir.join("blobs")).is_empty());
    assert!(
        files_under(&data_dir.join("tmp")).is_empty(),
        "temporary files are cleared at start"
    );

    // X is uploaded again, from scratch, in a new session.
    let resp = client
        .post(reg.url(&format!("/v2/rbee/w/blobs/uploads/?digest={x_digest}")))
        .body(x.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = client
        .get(reg.url(&format!("/v2/rbee/w/blobs/{x_digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap(), x);

    // Y is resumed where the registry says it stands: at the end of the
    // last acknowledged chunk (the cut-off PATCH counts for nothing, though
    // part of it reached the disk: its bytes are not in the hash state the
    // session record keeps).
    let resp = client.get(reg.url(&y_session)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let range = header(&resp, "range").unwrap();
    let stored: usize = range.strip_prefix("0-").unwrap().parse::<usize>().unwrap() + 1;
    assert_eq!(stored, 1 << 20, "Range {range}");
    let resp = client
        .put(reg.url(&format!("{y_session}?digest={y_digest}")))
        .header("content-range", format!("{stored}-{}", y.len() - 1))
        .body(y[stored..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = client
        .get(reg.url(&format!("/v2/rbee/w/blobs/{y_digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap(), y);

    // The old X session can still be finished; it does no harm.
    let resp = client.get(reg.url(&x_session)).send().await.unwrap();
    assert_eq!(header(&resp, "range").as_deref(), Some("0-1048575"));
    let resp = client
        .put(reg.url(&format!("{x_session}?digest={x_digest}")))
        .header("content-range", format!("1048576-{}", x.len() - 1))
        .body(x[1 << 20..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let mut both = vec![
        blob_file(&data_dir, &x_digest),
        blob_file(&data_dir, &y_digest),
    ];
    both.sort();
    assert_eq!(
        files_under(&data_dir.join("blobs")),
        both,
        "one copy of each"
    );
    assert_eq!(std::fs::read(blob_file(&data_dir, &x_digest)).unwrap(), x);
    assert!(sessions_in(&data_dir).is_empty());
    reg.kill_9();
}

#[tokio::test]
async fn a_restart_purges_sessions_older_than_the_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let client = reqwest::Client::new();

    let reg = Binary::start(&data_dir, &["--upload-ttl", "1"]).await;
    let resp = client
        .post(reg.url("/v2/rbee/w/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let session = location(&resp);
    let resp = client
        .patch(reg.url(&session))
        .body(vec![7; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    reg.kill_9();
    assert_eq!(sessions_in(&data_dir).len(), 1);

    // The session's TTL runs out while the registry is down.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reg = Binary::start(&data_dir, &["--upload-ttl", "1"]).await;
    assert!(sessions_in(&data_dir).is_empty(), "purged at start");
    let resp = client.get(reg.url(&session)).send().await.unwrap();
    expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
    reg.kill_9();
}

#[tokio::test]
async fn the_disable_delete_flag_refuses_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let client = reqwest::Client::new();
    let reg = Binary::start(&data_dir, &["--disable-delete"]).await;
    let digest = sha256(b"kept");
    let resp = client
        .post(reg.url(&format!("/v2/rbee/w/blobs/uploads/?digest={digest}")))
        .body(b"kept".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = client
        .delete(reg.url(&format!("/v2/rbee/w/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    expect_error(resp, 405, "UNSUPPORTED").await;
    let resp = client
        .get(reg.url(&format!("/v2/rbee/w/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    reg.kill_9();
}

#[tokio::test]
async fn expired_sessions_are_purged_on_demand() {
    let reg = TestRegistry::start_with(|c| c.upload_ttl = Duration::from_secs(1)).await;
    let old = reg.start_upload("rbee/w").await;
    let resp = reg.patch(&old).body(vec![1; 1000]).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = reg.start_upload("rbee/w").await;

    let purged = reg.server.registry.purge_expired_uploads().await.unwrap();
    assert_eq!(purged, 1, "only the expired session goes");
    expect_error(
        reg.get(&old).send().await.unwrap(),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    let resp = reg.patch(&old).body(vec![2; 10]).send().await.unwrap();
    expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
    assert_eq!(reg.stored_sessions(), [fresh.rsplit('/').next().unwrap()]);

    // The fresh one still works.
    let resp = reg.get(&fresh).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = reg
        .put(&format!("{fresh}?digest={}", sha256(b"fresh")))
        .body(b"fresh".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    reg.stop().await;
}
