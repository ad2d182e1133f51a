//! A full disk. Pushes that run out of space are answered 507 Insufficient
//! Storage with an OCI error body that says so, logged once, and leave
//! nothing behind: a failed upload's bytes go at once (they used to stay in
//! `uploads/`, across restarts, and keep every later upload failing), and a
//! failed manifest PUT leaves no manifest without its tag or referrer record
//! (it used to answer 500 and be stored anyway, missing from the referrers
//! list). Once space is freed, pushes work again.
//!
//! The real thing runs on a small tmpfs this test mounts (we are root in
//! CI; without root the tmpfs tests skip, unless `CI=true`, where they
//! fail). Which write of a manifest PUT hits the full disk is then down to
//! page accounting, so each write is also failed on purpose through a
//! storage wrapper.

mod common;

use std::fs::File;
use std::io::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use common::*;
use rbee_registry::Registry;
use rbee_registry::server::RunningRegistry;
use rbee_registry::storage::{ByteStream, FsStorage, Key, Storage, StorageError, UploadParts};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A tmpfs mounted on a fresh directory for the life of the value, and
/// unmounted when it drops, also when the test fails.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=`), or returns `None` to
    /// skip when that is impossible, which fails the test under `CI=true`.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("a mount point");
        let result = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        let why = match result {
            Ok(out) if out.status.success() => return Some(Tmpfs { dir }),
            Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            Err(e) => format!("cannot run mount: {e}"),
        };
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("cannot mount a tmpfs ({why}); this test needs root, and CI=true");
        }
        eprintln!("skipping: cannot mount a tmpfs ({why}); run as root to test a full disk");
        None
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the filesystem with a ballast file, then leaves `free` bytes
    /// of it free again. Returns the ballast's path.
    fn fill_leaving(&self, free: u64) -> PathBuf {
        let path = self.path().join("ballast");
        let mut file = File::create(&path).expect("create the ballast");
        let chunk = vec![0xa5_u8; 64 << 10];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        let len = file.metadata().unwrap().len();
        file.set_len(len.saturating_sub(free)).unwrap();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a failed test left a file open): detach it now,
            // the kernel frees it when the last file closes.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Log lines, captured for the current thread (the tests' runtimes run the
/// server on the test thread, so its logs land here).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Captures INFO and above, as the binaries log by default.
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// A registry over a data directory of our choosing.
struct Server {
    base: String,
    client: reqwest::Client,
    data_dir: PathBuf,
    running: Option<RunningRegistry>,
}

impl Server {
    async fn start(data_dir: &Path) -> Server {
        let running = RunningRegistry::start(open_config(data_dir), "127.0.0.1:0".parse().unwrap())
            .await
            .expect("registry starts");
        Server {
            base: running.url(),
            client: reqwest::Client::new(),
            data_dir: data_dir.to_owned(),
            running: Some(running),
        }
    }

    async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("registry stops");
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    fn uploads(&self) -> Vec<String> {
        entries_of(&self.data_dir.join("uploads"))
    }

    fn temporary_files(&self) -> Vec<String> {
        entries_of(&self.data_dir.join("tmp"))
    }
}

/// Asserts a 507 with an OCI body whose message says the storage is full.
async fn expect_storage_full(resp: reqwest::Response, context: &str) {
    assert_eq!(
        resp.status(),
        StatusCode::INSUFFICIENT_STORAGE,
        "{context}: {}",
        resp.status()
    );
    let body = resp.bytes().await.unwrap();
    let v = check_error_body(&body, "UNKNOWN", context);
    let message = v["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("storage is full"), "{context}: {v}");
}

async fn monolithic(s: &Server, repo: &str, data: &[u8]) -> reqwest::Response {
    s.client
        .post(s.url(&format!(
            "/v2/{repo}/blobs/uploads/?digest={}",
            sha256(data)
        )))
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .unwrap()
}

async fn open_upload(s: &Server, repo: &str) -> String {
    let resp = s
        .client
        .post(s.url(&format!("/v2/{repo}/blobs/uploads/")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    location(&resp)
}

async fn patch(s: &Server, session: &str, start: usize, data: &[u8]) -> reqwest::Response {
    s.client
        .patch(s.url(session))
        .header("content-type", "application/octet-stream")
        .header(
            "content-range",
            format!("{start}-{}", start + data.len() - 1),
        )
        .body(data.to_vec())
        .send()
        .await
        .unwrap()
}

fn with_digest(session: &str, digest: &str) -> String {
    let sep = if session.contains('?') { '&' } else { '?' };
    format!("{session}{sep}digest={digest}")
}

async fn assert_blob_reads_back(s: &Server, repo: &str, data: &[u8]) {
    let digest = sha256(data);
    let resp = s
        .client
        .get(s.url(&format!("/v2/{repo}/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "GET {digest}");
    assert_eq!(sha256(&resp.bytes().await.unwrap()), digest);
}

/// Runs `request` and returns what it logged.
async fn logged_by<T>(
    logs: &Logs,
    request: impl std::future::Future<Output = T>,
) -> (T, Vec<String>) {
    let before = logs.lines().len();
    let out = request.await;
    (out, logs.lines()[before..].to_vec())
}

fn assert_one_storage_full_line(lines: &[String], context: &str) {
    assert_eq!(
        lines.len(),
        1,
        "{context}: one log line per failed request, got {lines:#?}"
    );
    assert!(lines[0].contains("storage is full"), "{context}: {lines:?}");
}

#[tokio::test]
async fn uploads_that_fill_the_disk_are_refused_discarded_and_work_again_once_space_is_freed() {
    let Some(tmpfs) = Tmpfs::mount("8m") else {
        return;
    };
    let (logs, _guard) = Logs::capture();
    let data_dir = tmpfs.path().join("data");
    let s = Server::start(&data_dir).await;
    let repo = "rbee/full";
    let ballast = tmpfs.fill_leaving(2 << 20);
    let big = pseudo_random(4 << 20, 7);

    // Monolithic: POST ?digest= with the whole blob.
    let (resp, lines) = logged_by(&logs, monolithic(&s, repo, &big)).await;
    expect_storage_full(resp, "monolithic push").await;
    assert_one_storage_full_line(&lines, "monolithic push");
    assert_eq!(
        s.uploads(),
        Vec::<String>::new(),
        "nothing left in uploads/"
    );

    // Chunked: the second chunk does not fit; the whole session goes.
    let session = open_upload(&s, repo).await;
    let resp = patch(&s, &session, 0, &big[..1 << 20]).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED, "the first chunk fits");
    let (resp, lines) = logged_by(&logs, patch(&s, &session, 1 << 20, &big[1 << 20..])).await;
    expect_storage_full(resp, "second chunk").await;
    assert_one_storage_full_line(&lines, "second chunk");
    assert_eq!(
        s.uploads(),
        Vec::<String>::new(),
        "the session's bytes are gone"
    );
    let resp = s.client.get(s.url(&session)).send().await.unwrap();
    expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;

    // Streamed: POST, then PUT ?digest= with the whole body.
    let session = open_upload(&s, repo).await;
    let resp = s
        .client
        .put(s.url(&with_digest(&session, &sha256(&big))))
        .header("content-type", "application/octet-stream")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    expect_storage_full(resp, "streamed push").await;
    assert_eq!(s.uploads(), Vec::<String>::new());
    assert_eq!(s.temporary_files(), Vec::<String>::new());
    assert!(
        files_under(&data_dir.join("blobs")).is_empty(),
        "no blob was stored"
    );

    // Nothing of it survives a restart either.
    s.stop().await;
    let s = Server::start(&data_dir).await;
    assert_eq!(s.uploads(), Vec::<String>::new());

    // Space freed: the same pushes go through.
    std::fs::remove_file(ballast).unwrap();
    let resp = monolithic(&s, repo, &big).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let other = pseudo_random(3 << 20, 8);
    let session = open_upload(&s, "rbee/other").await;
    let resp = patch(&s, &session, 0, &other[..1 << 20]).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let resp = patch(&s, &session, 1 << 20, &other[1 << 20..]).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let resp = s
        .client
        .put(s.url(&with_digest(&location(&resp), &sha256(&other))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_blob_reads_back(&s, repo, &big).await;
    assert_blob_reads_back(&s, "rbee/other", &other).await;
    assert_eq!(s.uploads(), Vec::<String>::new());
    s.stop().await;
}

/// A referrer of `subject` whose digest differs by `n`; it references only
/// the empty config, so pushing it needs no blob upload.
fn referrer(subject: &Value, n: usize) -> Vec<u8> {
    json_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.note",
        "config": descriptor(OCI_EMPTY, b"{}"),
        "layers": [],
        "subject": subject,
        "annotations": {"n": n.to_string()},
    }))
}

/// What the registry at `base` shows of a manifest PUT under `tag`:
/// whether it is readable by digest, whether the tag names it, whether the
/// referrers list of `subject` holds it.
async fn visibility(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    body: &[u8],
    subject: &str,
) -> (bool, bool, bool) {
    let digest = sha256(body);
    let by_digest = client
        .get(format!("{base}/v2/{repo}/manifests/{digest}"))
        .send()
        .await
        .unwrap()
        .status()
        == StatusCode::OK;
    let resp = client
        .get(format!("{base}/v2/{repo}/manifests/{tag}"))
        .send()
        .await
        .unwrap();
    let tagged = header(&resp, "docker-content-digest").as_deref() == Some(digest.as_str());
    let index: Value = client
        .get(format!("{base}/v2/{repo}/referrers/{subject}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["digest"] == digest.as_str());
    (by_digest, tagged, listed)
}

#[tokio::test]
async fn manifest_puts_on_a_full_disk_are_stored_whole_or_not_at_all() {
    let Some(tmpfs) = Tmpfs::mount("8m") else {
        return;
    };
    let data_dir = tmpfs.path().join("data");
    let s = Server::start(&data_dir).await;
    let repo = "rbee/full";
    let (subject_body, subject_digest) = push_image(&s, repo).await;
    let subject =
        json!({"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": subject_body.len()});
    // A few pages: a referrer takes four (body, referrer record, manifest
    // record, tag), so the disk fills part-way through some PUT.
    let ballast = tmpfs.fill_leaving(10 * 4096);

    let mut refused = Vec::new();
    for n in 0..12 {
        let body = referrer(&subject, n);
        let tag = format!("note-{n}");
        let resp = s
            .client
            .put(s.url(&format!("/v2/{repo}/manifests/{tag}")))
            .header("content-type", OCI_MANIFEST)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let seen = visibility(&s.client, &s.base, repo, &tag, &body, &subject_digest).await;
        match status {
            StatusCode::CREATED => assert_eq!(seen, (true, true, true), "acknowledged {tag}"),
            StatusCode::INSUFFICIENT_STORAGE => {
                expect_storage_full(resp, &tag).await;
                assert_eq!(seen, (false, false, false), "refused {tag}");
                refused.push((tag, body));
            }
            other => panic!("{tag}: {other}: {}", resp.text().await.unwrap()),
        }
    }
    assert!(!refused.is_empty(), "the disk never filled up");
    assert!(refused.len() < 12, "nothing fitted at all");
    // At least one PUT ran out of space after its body was written, i.e.
    // part-way through, and was rolled back rather than half stored.
    assert!(
        refused
            .iter()
            .any(|(_, body)| blob_file(&data_dir, &sha256(body)).exists()),
        "no PUT failed part-way; the test no longer covers a roll-back"
    );

    // Space freed: every refused PUT goes through, whole.
    std::fs::remove_file(ballast).unwrap();
    for (tag, body) in &refused {
        let resp = s
            .client
            .put(s.url(&format!("/v2/{repo}/manifests/{tag}")))
            .header("content-type", OCI_MANIFEST)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "{tag}");
        let seen = visibility(&s.client, &s.base, repo, tag, body, &subject_digest).await;
        assert_eq!(seen, (true, true, true), "{tag} after freeing space");
    }
    s.stop().await;
}

/// Where the filesystem backend keeps the bytes of `digest`.
fn blob_file(data_dir: &Path, digest: &str) -> PathBuf {
    let hex = &digest["sha256:".len()..];
    data_dir.join("blobs/sha256").join(&hex[..2]).join(hex)
}

/// Pushes the empty config, a layer and an image manifest tagged `1.0`.
async fn push_image(s: &Server, repo: &str) -> (Vec<u8>, String) {
    for blob in [&b"{}"[..], b"layer"] {
        let resp = monolithic(s, repo, blob).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let body = json_bytes(&oci_manifest(
        descriptor(OCI_EMPTY, b"{}"),
        vec![descriptor(OCI_LAYER, b"layer")],
    ));
    let resp = s
        .client
        .put(s.url(&format!("/v2/{repo}/manifests/1.0")))
        .header("content-type", OCI_MANIFEST)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let digest = sha256(&body);
    (body, digest)
}

/// Filesystem storage whose `put`s fail with "no space left" for keys
/// that contain the armed fragment.
#[derive(Debug)]
struct FullFor {
    inner: FsStorage,
    fragment: Mutex<Option<&'static str>>,
}

impl FullFor {
    fn arm(&self, fragment: Option<&'static str>) {
        *self.fragment.lock().unwrap() = fragment;
    }
}

#[async_trait]
impl Storage for FullFor {
    async fn head(&self, key: &Key) -> Result<Option<u64>, StorageError> {
        self.inner.head(key).await
    }
    async fn get(&self, key: &Key, range: Option<Range<u64>>) -> Result<ByteStream, StorageError> {
        self.inner.get(key, range).await
    }
    async fn put(&self, key: &Key, data: Bytes) -> Result<(), StorageError> {
        let armed = *self.fragment.lock().unwrap();
        if armed.is_some_and(|f| key.as_str().contains(f)) {
            return Err(io::Error::from(io::ErrorKind::StorageFull).into());
        }
        self.inner.put(key, data).await
    }
    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        self.inner.delete(key).await
    }
    async fn delete_prefix(&self, prefix: &Key) -> Result<(), StorageError> {
        self.inner.delete_prefix(prefix).await
    }
    async fn list(&self, prefix: &Key) -> Result<Vec<String>, StorageError> {
        self.inner.list(prefix).await
    }
    async fn modified(&self, key: &Key) -> Result<Option<std::time::SystemTime>, StorageError> {
        self.inner.modified(key).await
    }
    async fn write_upload(
        &self,
        session: &Key,
        upload: &UploadParts,
        data: ByteStream,
    ) -> Result<UploadParts, StorageError> {
        self.inner.write_upload(session, upload, data).await
    }

    async fn commit_upload(
        &self,
        session: &Key,
        upload: &UploadParts,
        to: &Key,
    ) -> Result<(), StorageError> {
        self.inner.commit_upload(session, upload, to).await
    }

    async fn abort_upload(&self, session: &Key, upload: &UploadParts) -> Result<(), StorageError> {
        self.inner.abort_upload(session, upload).await
    }

    async fn rename(&self, from: &Key, to: &Key) -> Result<(), StorageError> {
        self.inner.rename(from, to).await
    }
}

#[tokio::test]
async fn a_manifest_put_failing_at_any_write_leaves_nothing_visible() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(FullFor {
        inner: FsStorage::open(dir.path()).unwrap(),
        fragment: Mutex::new(None),
    });
    let registry = Arc::new(Registry::new(storage.clone(), open_config(dir.path())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let app = rbee_registry::api::router(registry);
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(listener, app).await
    });
    let s = Server {
        base: base.clone(),
        client: reqwest::Client::new(),
        data_dir: dir.path().to_owned(),
        running: None,
    };
    let repo = "rbee/faults";
    let (subject_body, subject_digest) = push_image(&s, repo).await;
    let subject =
        json!({"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": subject_body.len()});

    // Each write a manifest PUT makes, in turn, is the one that finds the
    // disk full.
    for (n, fragment) in ["blobs/", "_referrers/", "_manifests/", "_tags/"]
        .into_iter()
        .enumerate()
    {
        let body = referrer(&subject, n);
        let tag = format!("note-{n}");
        storage.arm(Some(fragment));
        let resp = s
            .client
            .put(s.url(&format!("/v2/{repo}/manifests/{tag}")))
            .header("content-type", OCI_MANIFEST)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        expect_storage_full(resp, fragment).await;
        let seen = visibility(&s.client, &base, repo, &tag, &body, &subject_digest).await;
        assert_eq!(seen, (false, false, false), "failed at {fragment}");

        // And once there is room, the same PUT stores it whole.
        storage.arm(None);
        let resp = s
            .client
            .put(s.url(&format!("/v2/{repo}/manifests/{tag}")))
            .header("content-type", OCI_MANIFEST)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "{fragment}");
        let seen = visibility(&s.client, &base, repo, &tag, &body, &subject_digest).await;
        assert_eq!(seen, (true, true, true), "retried after {fragment}");
    }

    // Moving a tag that fails leaves it where it was.
    let body = referrer(&subject, 99);
    storage.arm(Some("_tags/"));
    let resp = s
        .client
        .put(s.url(&format!("/v2/{repo}/manifests/1.0")))
        .header("content-type", OCI_MANIFEST)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    expect_storage_full(resp, "moving 1.0").await;
    let resp = s
        .client
        .get(s.url(&format!("/v2/{repo}/manifests/1.0")))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&resp, "docker-content-digest"), Some(subject_digest));
    server.abort();
}
