//! Two `rbee-registry` processes on one S3 bucket (`s3s-fs` on loopback),
//! as a multi-node deployment runs them: nothing about an upload, a blob,
//! a manifest or a tag lives in one node only. Also: a storage failure is
//! a 503 with `Retry-After`, a bucket that cannot be reached stops the
//! process at start with a clear message, and `rbee-registry gc` on the
//! bucket, beside a serving node, leaves nothing of an abandoned upload.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use rbee_registry::storage::s3_server::S3TestServer;
use reqwest::StatusCode;

/// `rbee-registry serve` on a free port over the test bucket.
struct Node {
    child: Child,
    base: String,
}

impl Node {
    fn command(server: &S3TestServer, port: u16, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbee-registry"));
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(server.process_args("shared"))
            .arg("--dev-open-loopback")
            .args(extra)
            .envs(server.process_env())
            .env("RBEE_LOG", "warn")
            .stdout(Stdio::null());
        cmd
    }

    async fn start(server: &S3TestServer, extra: &[&str]) -> Node {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Self::command(server, port, extra)
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn rbee-registry");
            let base = format!("http://127.0.0.1:{port}");
            let client = reqwest::Client::new();
            for _ in 0..400 {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if let Ok(resp) = client.get(format!("{base}/v2/")).send().await
                    && resp.status() == StatusCode::OK
                {
                    return Node { child, base };
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("rbee-registry did not start");
    }

    fn url(&self, path: &str) -> String {
        match path.strip_prefix("http://") {
            // A Location from another node: same path, this node.
            Some(rest) => format!("{}{}", self.base, &rest[rest.find('/').unwrap()..]),
            None => format!("{}{path}", self.base),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn two_nodes_share_uploads_blobs_manifests_and_tags() {
    let server = S3TestServer::start();
    let a = Node::start(&server, &[]).await;
    let b = Node::start(&server, &[]).await;
    let client = reqwest::Client::new();
    // Three chunks crossing part boundaries (parts are 5 MiB here).
    let data = pseudo_random((12 << 20) + 77, 5);
    let digest = sha256(&data);
    let cuts = [0, (3 << 20) + 1, (9 << 20) + 5, data.len()];

    let resp = client
        .post(a.url("/v2/rbee/w/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let session = location(&resp);
    for (node, i) in [(&a, 0), (&b, 1)] {
        let resp = client
            .patch(node.url(&session))
            .header("content-range", format!("{}-{}", cuts[i], cuts[i + 1] - 1))
            .body(data[cuts[i]..cuts[i + 1]].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "chunk {i}");
        assert_eq!(
            header(&resp, "range"),
            Some(format!("0-{}", cuts[i + 1] - 1))
        );
    }
    // Each node sees where the other left the upload.
    let resp = client.get(a.url(&session)).send().await.unwrap();
    assert_eq!(header(&resp, "range"), Some(format!("0-{}", cuts[2] - 1)));
    let resp = client
        .put(a.url(&format!("{session}?digest={digest}")))
        .header("content-range", format!("{}-{}", cuts[2], cuts[3] - 1))
        .body(data[cuts[2]..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);

    // A manifest pushed through A naming it and the empty config.
    let resp = client
        .post(a.url(&format!(
            "/v2/rbee/w/blobs/uploads/?digest={}",
            sha256(b"{}")
        )))
        .body(b"{}".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let manifest = serde_json::to_vec(&oci_manifest(
        descriptor(OCI_EMPTY, b"{}"),
        vec![descriptor(OCI_LAYER, &data)],
    ))
    .unwrap();
    let resp = client
        .put(a.url("/v2/rbee/w/manifests/1.0"))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);

    // Pulled through B.
    let resp = client
        .get(b.url("/v2/rbee/w/manifests/1.0"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap(), manifest);
    let resp = client
        .get(b.url(&format!("/v2/rbee/w/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.bytes().await.unwrap() == data, "the blob differs on B");

    // The tag deleted on B is gone on A (past A's manifest cache TTL: the
    // cache only knows this process's writes).
    let resp = client
        .delete(b.url("/v2/rbee/w/manifests/1.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let resp = client
        .get(a.url("/v2/rbee/w/manifests/1.0"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

/// With presigned redirects on, a blob GET is a 307 to the bucket (after
/// the access checks), not cached, and `Range` works through it; a HEAD
/// is answered by the node.
#[tokio::test]
async fn blob_reads_redirect_to_presigned_urls_when_enabled() {
    let server = S3TestServer::start();
    let node = Node::start(&server, &["--presigned-redirects"]).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let data = pseudo_random(6 << 20, 9);
    let digest = sha256(&data);
    let resp = client
        .post(node.url(&format!("/v2/rbee/w/blobs/uploads/?digest={digest}")))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = client
        .get(node.url(&format!("/v2/rbee/w/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(header(&resp, "cache-control").as_deref(), Some("no-store"));
    let target = header(&resp, "location").unwrap();
    assert!(target.starts_with(&server.endpoint), "{target}");
    // A HEAD is answered by the node: the bucket would refuse a HEAD on a
    // URL presigned for GET (a pusher checking whether a blob exists
    // follows redirects).
    let resp = reqwest::Client::new()
        .head(node.url(&format!("/v2/rbee/w/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(&resp, "content-length").as_deref(),
        Some(data.len().to_string().as_str())
    );
    // A repository that does not link the blob gets no URL.
    let resp = client
        .get(node.url(&format!("/v2/rbee/other/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // A client that follows redirects gets the bytes, by range too.
    let follow = reqwest::Client::new();
    let resp = follow
        .get(node.url(&format!("/v2/rbee/w/blobs/{digest}")))
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.bytes().await.unwrap(), data[10..20]);
}

/// A storage failure mid-service is a 503 with `Retry-After`.
#[tokio::test]
async fn a_storage_outage_answers_503_with_retry_after() {
    let mut server = S3TestServer::start();
    let node = Node::start(&server, &[]).await;
    server.stop();
    let resp = reqwest::Client::new()
        .get(node.url(&format!("/v2/rbee/w/blobs/{}", sha256(b"x"))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(header(&resp, "retry-after").is_some());
    expect_error(resp, 503, "UNAVAILABLE").await;
}

/// A bucket that cannot be reached at start: a clear message, exit non-zero.
#[tokio::test]
async fn an_unreachable_bucket_stops_the_process_at_start() {
    let mut server = S3TestServer::start();
    server.stop();
    let out = Node::command(&server, 1, &[])
        .stderr(Stdio::piped())
        .output()
        .expect("run rbee-registry");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bucket cannot be reached"), "{stderr}");
    assert!(stderr.contains("s3://rbee-test/shared"), "{stderr}");
}

/// A session finished through another node stops counting against this
/// node's cap on open sessions once the purge runs (it used to stay in
/// this node's memory for good, until every new upload got a 503).
#[tokio::test]
async fn sessions_closed_through_another_node_free_this_nodes_cap() {
    use std::sync::Arc;

    use rbee_registry::reference::RepoName;
    use rbee_registry::storage::FsStorage;
    use rbee_registry::{Registry, RegistryConfig, RegistryError};

    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(FsStorage::open(dir.path()).unwrap());
    let mut config = RegistryConfig::new(dir.path());
    config.max_upload_sessions = 1;
    let a = Registry::new(storage.clone(), config.clone());
    let b = Registry::new(storage, config);
    let repo = RepoName::parse("rbee/w").unwrap();

    let session = a.start_upload(&repo).await.unwrap();
    assert!(matches!(
        a.start_upload(&repo).await,
        Err(RegistryError::Busy(_))
    ));
    b.cancel_upload(&repo, &session.id).await.unwrap();
    a.purge_expired_uploads().await.unwrap();
    a.start_upload(&repo)
        .await
        .expect("the cap counts only sessions that exist");
}

/// `rbee-registry gc --storage s3://...` run beside a serving node: an
/// upload abandoned mid-way (a whole part sent, and a tail) is purged
/// once older than `--upload-ttl`: its multipart upload aborted, so no
/// part stays on the S3 server, and its record and tail deleted.
#[tokio::test]
async fn gc_on_the_bucket_purges_abandoned_uploads_and_their_parts() {
    let server = S3TestServer::start();
    let node = Node::start(&server, &[]).await;
    let client = reqwest::Client::new();
    let resp = client
        .post(node.url("/v2/rbee/w/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let session = location(&resp);
    let data = pseudo_random((6 << 20) + 11, 8);
    let resp = client
        .patch(node.url(&session))
        .header("content-range", format!("0-{}", data.len() - 1))
        .body(data)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let bucket = server.root.path().join("rbee-test/shared");
    let leftovers = || -> Vec<String> {
        entries_of(server.root.path())
            .into_iter()
            .filter(|name| name.starts_with(".upload"))
            .collect()
    };
    assert!(!leftovers().is_empty(), "a multipart upload is under way");
    assert!(!files_under(&bucket.join("uploads")).is_empty());

    let gc = |ttl: &str, dry_run: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbee-registry"));
        cmd.arg("gc")
            .args(server.process_args("shared"))
            .args(["--upload-ttl", ttl])
            .envs(server.process_env())
            .env("RBEE_LOG", "warn");
        if dry_run {
            cmd.arg("--dry-run");
        }
        let out = cmd.output().expect("run rbee-registry gc");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    // Within its TTL the session stays; a dry run only counts it.
    let out = gc("3600", false);
    assert!(out.contains("removed 0 expired upload sessions"), "{out}");
    let out = gc("0", true);
    assert!(
        out.contains("would remove 1 expired upload sessions"),
        "{out}"
    );
    assert!(!leftovers().is_empty(), "a dry run aborts nothing");
    let out = gc("0", false);
    assert!(out.contains("removed 1 expired upload sessions"), "{out}");

    assert_eq!(
        leftovers(),
        Vec::<String>::new(),
        "parts left on the server"
    );
    assert_eq!(
        files_under(&bucket.join("uploads")),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(
        files_under(&bucket.join("_data")),
        Vec::<std::path::PathBuf>::new()
    );
    let resp = client.get(node.url(&session)).send().await.unwrap();
    expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
}
