//! Races and crash consistency (issue 9): each test forces one bad
//! interleaving deterministically, through a storage wrapper that pauses a
//! chosen operation until the test lets it go, or through a runtime whose
//! blocking pool is small enough to exhaust cheaply.

mod common;

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use common::*;
use rbee_registry::reference::{Reference, RepoName};
use rbee_registry::server::RunningRegistry;
use rbee_registry::storage::{ByteStream, FsStorage, Key, Storage, UploadParts};
use rbee_registry::{Action, Registry, RegistryConfig, RegistryError, RequestContext, Target};
use reqwest::StatusCode;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

/// Long enough for anything that is not stuck; only reached on failure.
const PATIENCE: Duration = Duration::from_secs(10);

// ---- a storage wrapper that pauses one operation -------------------------

/// Where a [`GatedStorage`] pauses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Point {
    /// Before a `put` of the key writes anything.
    BeforePut,
    /// After a `put` of the key is durable, before it returns.
    AfterPut,
    /// After a `get` of the key opened it, before it returns.
    AfterGet,
}

#[derive(Debug)]
struct Gate {
    point: Point,
    key_suffix: String,
    reached: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

/// The filesystem backend, except that the first operation matching an
/// armed gate tells the test it got there and waits to be released.
#[derive(Debug)]
struct GatedStorage {
    inner: FsStorage,
    gate: Mutex<Option<Gate>>,
}

impl GatedStorage {
    /// Arms the gate; returns "it got there" and "let it go".
    fn arm(&self, point: Point, key_suffix: &str) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (reached_tx, reached_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        *self.gate.lock().unwrap() = Some(Gate {
            point,
            key_suffix: key_suffix.to_owned(),
            reached: reached_tx,
            release: release_rx,
        });
        (reached_rx, release_tx)
    }

    async fn pass(&self, point: Point, key: &Key) {
        let gate = {
            let mut slot = self.gate.lock().unwrap();
            match &*slot {
                Some(g) if g.point == point && key.as_str().ends_with(&g.key_suffix) => slot.take(),
                _ => None,
            }
        };
        if let Some(gate) = gate {
            let _ = gate.reached.send(());
            let _ = gate.release.await;
        }
    }
}

#[async_trait]
impl Storage for GatedStorage {
    async fn head(&self, key: &Key) -> rbee_registry::storage::Result<Option<u64>> {
        self.inner.head(key).await
    }

    async fn get(
        &self,
        key: &Key,
        range: Option<Range<u64>>,
    ) -> rbee_registry::storage::Result<ByteStream> {
        let stream = self.inner.get(key, range).await?;
        self.pass(Point::AfterGet, key).await;
        Ok(stream)
    }

    async fn put(&self, key: &Key, data: Bytes) -> rbee_registry::storage::Result<()> {
        self.pass(Point::BeforePut, key).await;
        self.inner.put(key, data).await?;
        self.pass(Point::AfterPut, key).await;
        Ok(())
    }

    async fn delete(&self, key: &Key) -> rbee_registry::storage::Result<()> {
        self.inner.delete(key).await
    }

    async fn delete_prefix(&self, prefix: &Key) -> rbee_registry::storage::Result<()> {
        self.inner.delete_prefix(prefix).await
    }

    async fn list(&self, prefix: &Key) -> rbee_registry::storage::Result<Vec<String>> {
        self.inner.list(prefix).await
    }

    async fn modified(
        &self,
        key: &Key,
    ) -> rbee_registry::storage::Result<Option<std::time::SystemTime>> {
        self.inner.modified(key).await
    }

    async fn write_upload(
        &self,
        session: &Key,
        upload: &UploadParts,
        data: ByteStream,
    ) -> rbee_registry::storage::Result<UploadParts> {
        self.inner.write_upload(session, upload, data).await
    }

    async fn commit_upload(
        &self,
        session: &Key,
        upload: &UploadParts,
        to: &Key,
    ) -> rbee_registry::storage::Result<()> {
        self.inner.commit_upload(session, upload, to).await
    }

    async fn abort_upload(
        &self,
        session: &Key,
        upload: &UploadParts,
    ) -> rbee_registry::storage::Result<()> {
        self.inner.abort_upload(session, upload).await
    }

    async fn rename(&self, from: &Key, to: &Key) -> rbee_registry::storage::Result<()> {
        self.inner.rename(from, to).await
    }
}

/// A registry over a [`GatedStorage`] in `dir`.
fn gated_registry(dir: &tempfile::TempDir) -> (Arc<Registry>, Arc<GatedStorage>) {
    let data_dir = dir.path().join("data");
    let storage = Arc::new(GatedStorage {
        inner: FsStorage::open(&data_dir).unwrap(),
        gate: Mutex::new(None),
    });
    let registry = Registry::new(storage.clone(), RegistryConfig::new(&data_dir));
    (Arc::new(registry), storage)
}

fn repo() -> RepoName {
    RepoName::parse("rbee/w").unwrap()
}

fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

/// Pushes `data` as a blob of `rbee/w` through the library.
async fn push_blob(reg: &Registry, data: &'static [u8]) {
    let status = reg.start_upload(&repo()).await.unwrap();
    let digest = rbee_registry::reference::Digest::parse(&sha256(data)).unwrap();
    let body: ByteStream = Box::pin(futures_util::stream::once(async move {
        Ok(Bytes::from_static(data))
    }));
    reg.finish_upload(
        &RequestContext::internal(),
        &repo(),
        &status.id,
        &digest,
        None,
        Some(body),
    )
    .await
    .unwrap();
}

/// Pushes a config and a layer and returns the bytes of a manifest over
/// them (not yet pushed) and its digest; `annotation` makes it unique.
async fn manifest_over_blobs(reg: &Registry, annotation: &str) -> (Bytes, String) {
    let config: &'static [u8] = br#"{"architecture":"amd64","os":"linux"}"#;
    let layer: &'static [u8] = b"layer";
    push_blob(reg, config).await;
    push_blob(reg, layer).await;
    let mut manifest = oci_manifest(
        descriptor("application/vnd.oci.image.config.v1+json", config),
        vec![descriptor(OCI_LAYER, layer)],
    );
    manifest["annotations"] = serde_json::json!({ "v": annotation });
    let body = json_bytes(&manifest);
    let digest = sha256(&body);
    (body.into(), digest)
}

async fn put(reg: &Arc<Registry>, reference_: &str, body: &Bytes) {
    reg.put_manifest(
        &RequestContext::internal(),
        &repo(),
        &reference(reference_),
        Some(OCI_MANIFEST),
        body.clone(),
    )
    .await
    .unwrap();
}

async fn tag_digest(reg: &Registry, tag: &str) -> Option<String> {
    match reg.manifest_info(&repo(), &reference(tag)).await {
        Ok(info) => Some(info.digest.to_string()),
        Err(RegistryError::ManifestUnknown(_)) => None,
        Err(e) => panic!("looking up {tag}: {e}"),
    }
}

// ---- the manifest cache ----------------------------------------------------

#[tokio::test]
async fn a_reader_that_missed_the_cache_cannot_reinstate_an_old_tag() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, storage) = gated_registry(&dir);
    let (old, old_digest) = manifest_over_blobs(&reg, "old").await;
    let (new, new_digest) = manifest_over_blobs(&reg, "new").await;
    put(&reg, "latest", &old).await;

    // A reader misses the cache and has read the old tag...
    let (reached, release) = storage.arm(Point::AfterGet, "/_tags/latest");
    let reader = {
        let reg = reg.clone();
        tokio::spawn(async move { reg.manifest_info(&repo(), &reference("latest")).await })
    };
    reached.await.unwrap();
    // ...when a write of the tag is acknowledged...
    put(&reg, "latest", &new).await;
    // ...and only then does the reader finish (and fill the cache).
    release.send(()).unwrap();
    let seen = reader.await.unwrap().unwrap();
    assert_eq!(
        seen.digest.to_string(),
        old_digest,
        "the reader read before the write"
    );

    assert_eq!(
        tag_digest(&reg, "latest").await.as_deref(),
        Some(new_digest.as_str()),
        "after the write was acknowledged, the tag reads back new"
    );
}

// ---- manifest PUT completion ------------------------------------------------

#[tokio::test]
async fn a_manifest_put_whose_caller_goes_away_still_invalidates_and_announces() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, storage) = gated_registry(&dir);
    let (old, old_digest) = manifest_over_blobs(&reg, "old").await;
    let (new, new_digest) = manifest_over_blobs(&reg, "new").await;
    put(&reg, "latest", &old).await;
    // The old tag is cached.
    assert_eq!(tag_digest(&reg, "latest").await, Some(old_digest));
    let mut events = reg.events().subscribe();

    // The PUT is dropped (as when its client disconnects) right after the
    // tag was written.
    let (reached, release) = storage.arm(Point::AfterPut, "/_tags/latest");
    let (name, latest) = (repo(), reference("latest"));
    let own = RequestContext::internal();
    let mut request =
        Box::pin(reg.put_manifest(&own, &name, &latest, Some(OCI_MANIFEST), new.clone()));
    tokio::select! {
        r = reached => r.unwrap(),
        r = &mut request => panic!("the PUT finished past the gate: {r:?}"),
    }
    drop(request);
    let _ = release.send(());

    let event = timeout(PATIENCE, async {
        loop {
            let e = events.recv().await.expect("the event bus stays open");
            if e.action == Action::Push && e.target == Target::Manifest {
                return e;
            }
        }
    })
    .await
    .expect("the acknowledged-or-not write is announced");
    assert_eq!(event.digest, new_digest);
    assert_eq!(event.tag.as_deref(), Some("latest"));
    assert_eq!(
        tag_digest(&reg, "latest").await.as_deref(),
        Some(new_digest.as_str()),
        "the cache was invalidated with the write"
    );
}

// ---- tag writes against deletes ---------------------------------------------

#[tokio::test]
async fn a_tag_put_racing_a_manifest_delete_leaves_no_dangling_tag() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, storage) = gated_registry(&dir);
    let (body, digest) = manifest_over_blobs(&reg, "only").await;
    put(&reg, &digest, &body).await;

    // The tag PUT has checked everything and is about to write the tag...
    let (reached, release) = storage.arm(Point::BeforePut, "/_tags/latest");
    let tagging = {
        let (reg, body) = (reg.clone(), body.clone());
        tokio::spawn(async move {
            reg.put_manifest(
                &RequestContext::internal(),
                &repo(),
                &reference("latest"),
                Some(OCI_MANIFEST),
                body,
            )
            .await
        })
    };
    reached.await.unwrap();
    // ...when a DELETE of the manifest comes in. Unserialised, it runs to
    // completion here; serialised, it waits for the PUT.
    let mut deleting = {
        let (reg, digest) = (reg.clone(), digest.clone());
        tokio::spawn(async move {
            reg.delete_manifest(&RequestContext::internal(), &repo(), &reference(&digest))
                .await
        })
    };
    let early = timeout(Duration::from_millis(300), &mut deleting).await;
    release.send(()).unwrap();
    tagging.await.unwrap().unwrap();
    let deleted = match early {
        Ok(deleted) => deleted,
        Err(_) => deleting.await,
    };
    deleted.unwrap().unwrap();

    // Put-then-delete leaves neither; delete-then-put leaves both.
    let tags = reg.tags(&repo()).await.unwrap();
    let manifest = reg.manifest_info(&repo(), &reference(&digest)).await;
    assert_eq!(
        tags.contains(&"latest".to_owned()),
        manifest.is_ok(),
        "tags {tags:?}, manifest {manifest:?}: a tag must never outlive its manifest"
    );
}

// ---- stalled uploads and the blocking pool ----------------------------------

/// The blocking pool of the test's runtime; the real one has 512.
const BLOCKING_THREADS: usize = 8;

#[test]
fn stalled_uploads_do_not_starve_blob_heads_or_new_uploads() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(BLOCKING_THREADS)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let reg = TestRegistry::start().await;
        let present = reg.push_blob("rbee/w", b"present").await;
        let stalled_count = 3 * BLOCKING_THREADS;
        let opened = timeout(PATIENCE, async {
            let mut stalled = Vec::new();
            for i in 0..stalled_count {
                let session = reg.start_upload("rbee/w").await;
                let (tx, rx) = mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
                tx.send(Ok(vec![i as u8; 10])).await.unwrap();
                let request = reg
                    .patch(&session)
                    .body(reqwest::Body::wrap_stream(receiver_stream(rx)))
                    .send();
                stalled.push((tx, tokio::spawn(request)));
            }
            stalled
        })
        .await
        .expect("uploads can still be opened while others stall");
        // Every stalled upload is inside its append, its first bytes stored.
        wait_until(|| {
            reg.files_in("uploads")
                .iter()
                .filter(|p| p.ends_with("data") && p.metadata().is_ok_and(|m| m.len() == 10))
                .count()
                == stalled_count
        })
        .await;

        let head = timeout(
            Duration::from_secs(5),
            reg.head(&format!("/v2/rbee/w/blobs/{present}")).send(),
        )
        .await
        .expect("a blob HEAD answers while uploads stall")
        .unwrap();
        assert_eq!(head.status(), StatusCode::OK);
        let pushed = timeout(
            Duration::from_secs(5),
            reg.push_blob("rbee/w", b"a new upload"),
        )
        .await
        .expect("a new upload completes while others stall");
        assert_eq!(
            reg.blob_bytes("rbee/w", &pushed).await,
            &b"a new upload"[..]
        );

        // The stalled uploads end normally once their bodies do.
        for (tx, request) in opened {
            drop(tx);
            let resp = timeout(PATIENCE, request).await.unwrap().unwrap().unwrap();
            assert_eq!(resp.status(), StatusCode::ACCEPTED);
            assert_eq!(header(&resp, "range").as_deref(), Some("0-9"));
        }
        reg.stop().await;
    });
}

// ---- the purge of expired uploads --------------------------------------------

#[tokio::test]
async fn the_purge_skips_a_session_busy_with_a_stalled_patch() {
    let reg = TestRegistry::start_with(|c| c.upload_ttl = Duration::ZERO).await;
    let busy = reg.start_upload("rbee/w").await;
    let idle = reg.start_upload("rbee/w").await;
    let (tx, rx) = mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let head = vec![3; 2 << 20];
    tx.send(Ok(head.clone())).await.unwrap();
    let patch = tokio::spawn(
        reg.patch(&busy)
            .body(reqwest::Body::wrap_stream(receiver_stream(rx)))
            .send(),
    );
    wait_until(|| {
        reg.files_in("uploads")
            .iter()
            .any(|p| p.ends_with("data") && p.metadata().is_ok_and(|m| m.len() > 0))
    })
    .await;

    let purged = timeout(
        Duration::from_secs(5),
        reg.server.registry.purge_expired_uploads(),
    )
    .await
    .expect("the purge does not wait for a busy session")
    .unwrap();
    assert_eq!(purged, 1, "the idle session goes, the busy one is skipped");
    expect_error(
        reg.get(&idle).send().await.unwrap(),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;

    // The busy upload carries on and completes.
    drop(tx);
    let resp = patch.await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let resp = reg
        .put(&format!("{busy}?digest={}", sha256(&head)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    reg.stop().await;
}

// ---- the cap on open upload sessions -------------------------------------------

#[tokio::test]
async fn uploads_past_the_session_cap_are_told_to_retry_later() {
    let reg = TestRegistry::start_with(|c| c.max_upload_sessions = 2).await;
    let first = reg.start_upload("rbee/w").await;
    let _second = reg.start_upload("rbee/other").await;

    let refused = reg.post("/v2/rbee/w/blobs/uploads/").send().await.unwrap();
    assert_eq!(header(&refused, "retry-after").as_deref(), Some("1"));
    expect_error(refused, 503, "UNAVAILABLE").await;
    // A monolithic push needs a session too.
    let refused = reg
        .post(&format!(
            "/v2/rbee/w/blobs/uploads/?digest={}",
            sha256(b"x")
        ))
        .body(b"x".to_vec())
        .send()
        .await
        .unwrap();
    expect_error(refused, 503, "UNAVAILABLE").await;
    assert_eq!(
        reg.stored_sessions().len(),
        2,
        "refused uploads leave nothing"
    );

    // Finishing (or cancelling) one makes room.
    let resp = reg
        .put(&format!("{first}?digest={}", sha256(b"first")))
        .body(b"first".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    reg.push_blob("rbee/w", b"now there is room").await;
    let third = reg.start_upload("rbee/w").await;
    let resp = reg.delete(&third).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    reg.start_upload("rbee/w").await;
    reg.stop().await;
}

// ---- one process per data directory ------------------------------------------

#[tokio::test]
async fn a_second_registry_on_the_same_data_dir_is_refused_and_harms_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let any_port = "127.0.0.1:0".parse().unwrap();
    let first = RunningRegistry::start(open_config(&data_dir), any_port)
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let url = |path: &str| {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", first.url())
        }
    };

    // An upload is in flight on the first registry, and a temporary file
    // stands for a write in progress.
    let resp = client
        .post(url("/v2/rbee/w/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let session = location(&resp);
    let (tx, rx) = mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let data = pseudo_random(2 << 20, 9);
    tx.send(Ok(data[..1 << 20].to_vec())).await.unwrap();
    let patch = tokio::spawn(
        client
            .patch(url(&session))
            .body(reqwest::Body::wrap_stream(receiver_stream(rx)))
            .send(),
    );
    let in_progress = data_dir.join("tmp").join("write-in-progress");
    std::fs::write(&in_progress, b"half").unwrap();

    let second = RunningRegistry::start(open_config(&data_dir), any_port).await;
    let error = second.expect_err("a second registry on the same data dir must not start");
    let message = error.to_string();
    assert!(
        message.contains(&data_dir.display().to_string()),
        "the error names the folder: {message}"
    );
    assert!(
        message.contains("another process"),
        "the error says why: {message}"
    );
    assert!(
        in_progress.exists(),
        "the refused start left the first's tmp/ alone"
    );

    // The first registry's upload completes, intact.
    tx.send(Ok(data[1 << 20..].to_vec())).await.unwrap();
    drop(tx);
    let resp = patch.await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let digest = sha256(&data);
    let resp = client
        .put(url(&format!("{session}?digest={digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let served = client
        .get(url(&format!("/v2/rbee/w/blobs/{digest}")))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(sha256(&served), digest);
    first.stop().await.unwrap();

    // Once the first has stopped, the folder is free again.
    let again = RunningRegistry::start(open_config(&data_dir), any_port)
        .await
        .expect("the lock is released when the registry stops");
    again.stop().await.unwrap();
}

// ---- helpers -------------------------------------------------------------------

/// A stream over what `rx` receives.
fn receiver_stream<T: Send + 'static>(
    rx: mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Waits (boundedly) until `done` holds; the registry offers no signal
/// for "these bytes reached the disk", so the test looks.
async fn wait_until(done: impl Fn() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the condition never held");
}
