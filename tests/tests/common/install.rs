//! Helpers for the install tests (`tests/install.rs`): the catalog server
//! in-process with its embedded registry, the real `rbee-worker` and
//! `hello-worker-rbee` binaries, releases published through the pusher
//! library or by hand (for archives the pusher would never write), a TCP
//! proxy that cuts a download in the middle, and snapshots of a folder
//! tree to prove nothing else was written.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rbee_catalog::{CatalogConfig, RunningCatalog};
use rbee_pusher::auth::Credentials;
use rbee_pusher::client::{RegistryClient, RetryPolicy};
use rbee_pusher::publish::{PlatformSummary, PublishSummary};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::publishing::{
    CATALOG_REPO, CATALOG_TYPE, Fixture, PLATFORMS, REPO, TITLE, WORKER_LAYER, WORKER_METADATA,
    WORKER_TYPE, example_dir, host_platform, publish_with_library,
};
use super::{Blob, OCI_INDEX, OCI_MANIFEST, hex_of};

pub use super::catalog::WORKER;

/// What the example binary prints.
pub const HELLO: &str = "hello-worker-rbee 0.1.0 (cpu)";

const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const CATALOG_INDEX: &str = "application/vnd.rbee.catalog.index.v1+json";
const WORKER_PLATFORM: &str = "dev.rbee.worker.platform";

// ---- the catalog server --------------------------------------------------

/// The catalog server (registry embedded) on a free local port, with a
/// fresh data folder and scratch space for install destinations. Unlike
/// [`super::catalog::TestCatalog`] it exposes its data folder (to corrupt a
/// stored blob) and its state (to drop caches after a publish).
#[derive(Debug)]
pub struct CatalogServer {
    pub running: RunningCatalog,
    /// `http://127.0.0.1:PORT`: the catalog and, under `/v2/`, the registry.
    pub url: String,
    /// The catalog's data folder; the registry keeps its blobs under
    /// `registry/blobs/sha256/`.
    pub data: tempfile::TempDir,
    /// Destinations and anything else a test writes.
    pub scratch: tempfile::TempDir,
}

impl CatalogServer {
    pub async fn start() -> CatalogServer {
        CatalogServer::start_with(|_| {}).await
    }

    /// Starts it with `configure` applied to the defaults (e.g. a
    /// `public_url` so download URLs go through a proxy).
    pub async fn start_with(configure: impl FnOnce(&mut CatalogConfig)) -> CatalogServer {
        let data = tempfile::tempdir().expect("data dir");
        let mut config = CatalogConfig::new(data.path());
        // Publishes anonymously over loopback: the development switch.
        config.tokens.dev_open_loopback = true;
        configure(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let running = rbee_catalog::start(config, listener)
            .await
            .expect("the catalog starts");
        CatalogServer {
            url: running.url(),
            running,
            data,
            scratch: tempfile::tempdir().expect("scratch dir"),
        }
    }

    /// A path inside the scratch space (not created).
    pub fn path(&self, name: &str) -> PathBuf {
        self.scratch.path().join(name)
    }

    /// Publishes `fixture` with the pusher library and drops what the
    /// catalog cached, so the next request sees the release whatever the
    /// timing of the registry's push events.
    pub async fn publish(&self, fixture: &Fixture) -> PublishSummary {
        let summary = publish_with_library(&self.url, fixture, false)
            .await
            .expect("the release publishes");
        self.running.state.catalog.invalidate_all();
        summary
    }

    /// The file the embedded registry stores blob `digest` in.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = hex_of(digest);
        self.data
            .path()
            .join("registry/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
    }

    pub async fn stop(self) {
        self.running
            .stop()
            .await
            .expect("the catalog stops cleanly");
    }
}

/// The build of the host platform in a publish summary.
pub fn host_build(summary: &PublishSummary) -> &PlatformSummary {
    let host = host_platform().expect("the tests run on a platform the example worker lists");
    summary
        .platforms
        .iter()
        .find(|p| p.platform == host)
        .unwrap_or_else(|| panic!("no {host} build in {summary:?}"))
}

/// The example release at `version` whose host build is `host_binary`
/// (the real `hello-worker-rbee`, or a large stand-in), with the
/// fixture's small stand-ins for the other platforms.
pub fn release_with_host_build(version: &str, host_binary: &[u8]) -> Fixture {
    let fixture = Fixture::new(version);
    fixture.set_build(
        host_platform().expect("the tests run on a platform the example worker lists"),
        host_binary,
    );
    fixture
}

// ---- the binaries --------------------------------------------------------

/// Runs an installed binary and returns what it printed.
pub async fn run_installed(binary: &Path) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(binary)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{} did not finish", binary.display()))
    .unwrap_or_else(|e| panic!("{} could not start: {e}", binary.display()));
    assert!(out.status.success(), "{} failed: {out:?}", binary.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---- publishing by hand --------------------------------------------------

/// Publishes one release per `(version, tar.gz)` of the example worker by
/// hand, each with a single build for the host platform whose layer is
/// that tar.gz, and writes a catalog index listing them all. The pusher
/// only writes good archives; this is how a hostile one gets served.
/// Returns each layer's digest, in order.
pub async fn publish_by_hand(url: &str, releases: &[(&str, Vec<u8>)]) -> Vec<String> {
    let client = RegistryClient::new(
        reqwest::Url::parse(url).expect("registry URL"),
        Credentials::anonymous(),
        RetryPolicy {
            attempts: 1,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(10),
        },
    )
    .expect("registry client");
    let host = host_platform().expect("the tests run on a platform the example worker lists");
    let (_, os, architecture) = PLATFORMS
        .iter()
        .find(|p| p.0 == host)
        .expect("the host is one of the example's platforms");
    let example: Value = serde_json::from_slice(
        &std::fs::read(example_dir().join("metadata.json")).expect("example metadata"),
    )
    .expect("example metadata is JSON");

    let mut digests = Vec::new();
    for (version, tar_gz) in releases {
        let mut metadata = example.clone();
        metadata["version"] = (*version).into();
        metadata["source"]["tag"] = format!("v{version}").into();
        let config = Blob::json(WORKER_METADATA, &metadata);
        let layer = Blob::new(WORKER_LAYER, tar_gz.clone());
        push_blob(&client, REPO, &config).await;
        push_blob(&client, REPO, &layer).await;
        let mut layer_descriptor = layer.descriptor();
        layer_descriptor["annotations"] =
            json!({ TITLE: format!("{WORKER}-{version}-{host}.tar.gz") });
        let manifest = Blob::json(
            OCI_MANIFEST,
            &json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": WORKER_TYPE,
                "config": config.descriptor(),
                "layers": [layer_descriptor],
            }),
        );
        put_manifest(&client, REPO, &manifest.digest, &manifest).await;
        let mut entry = manifest.descriptor();
        entry["platform"] = json!({ "os": os, "architecture": architecture });
        entry["annotations"] = json!({ WORKER_PLATFORM: host });
        let index = Blob::json(
            OCI_INDEX,
            &json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "artifactType": WORKER_TYPE,
                "manifests": [entry],
                "annotations": { "org.opencontainers.image.version": version },
            }),
        );
        put_manifest(&client, REPO, version, &index).await;
        digests.push(layer.digest);
    }

    // Plain `major.minor.patch` versions here, so numbers sort them.
    let mut versions: Vec<&str> = releases.iter().map(|(v, _)| *v).collect();
    let numbers = |v: &str| -> Vec<u64> { v.split('.').map(|n| n.parse().unwrap()).collect() };
    versions.sort_by_key(|v| std::cmp::Reverse(numbers(v)));
    let catalog = Blob::json(
        CATALOG_INDEX,
        &json!({
            "schema_version": 1,
            "updated_at": "2026-01-01T00:00:00Z",
            "workers": [{
                "id": WORKER,
                "repository": REPO,
                "latest": versions[0].to_string(),
                "versions": versions,
                "requires_license": false,
                "updated_at": "2026-01-01T00:00:00Z",
            }],
        }),
    );
    let empty = Blob::new(OCI_EMPTY, b"{}".to_vec());
    push_blob(&client, CATALOG_REPO, &empty).await;
    push_blob(&client, CATALOG_REPO, &catalog).await;
    let mut catalog_descriptor = catalog.descriptor();
    catalog_descriptor["annotations"] = json!({ TITLE: "catalog.json" });
    let catalog_manifest = Blob::json(
        OCI_MANIFEST,
        &json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": CATALOG_TYPE,
            "config": empty.descriptor(),
            "layers": [catalog_descriptor],
        }),
    );
    put_manifest(&client, CATALOG_REPO, "latest", &catalog_manifest).await;
    digests
}

async fn push_blob(client: &RegistryClient, repo: &str, blob: &Blob) {
    let stored = client
        .ensure_small_blob(repo, blob.bytes.clone().into())
        .await
        .unwrap_or_else(|e| panic!("pushing {} to {repo}: {e}", blob.digest));
    assert_eq!(stored.digest, blob.digest);
}

async fn put_manifest(client: &RegistryClient, repo: &str, reference: &str, manifest: &Blob) {
    client
        .put_manifest(
            repo,
            reference,
            &manifest.media_type,
            manifest.bytes.clone().into(),
        )
        .await
        .unwrap_or_else(|e| panic!("PUT {repo}:{reference}: {e}"));
}

/// One entry of a hand-made archive. Names are written straight into the
/// header, so `..` and absolute paths get through as a hostile archive
/// would have them (the `tar` crate's safe setters refuse them).
#[derive(Debug, Clone)]
pub enum Entry<'a> {
    File(&'a str, Vec<u8>),
    Symlink(&'a str, &'a str),
}

/// A tar.gz of `entries`, in order.
pub fn tar_gz(entries: &[Entry<'_>]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let (name, kind, bytes, link) = match entry {
            Entry::File(name, bytes) => (*name, tar::EntryType::Regular, bytes.as_slice(), None),
            Entry::Symlink(name, target) => {
                (*name, tar::EntryType::Symlink, &[][..], Some(*target))
            }
        };
        assert!(name.len() < 100, "entry names here fit the header: {name}");
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(kind);
        header.set_size(bytes.len() as u64);
        header.set_mode(0o755);
        if let Some(link) = link {
            assert!(link.len() < 100, "link targets here fit the header: {link}");
            header.as_gnu_mut().unwrap().linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_cksum();
        builder.append(&header, bytes).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

// ---- a proxy that cuts a download ----------------------------------------

/// What went through the proxy on one connection.
#[derive(Debug, Clone, Default)]
pub struct Proxied {
    /// The head of the first request (request line and headers).
    pub request_head: String,
    /// The head of the first response (status line and headers).
    pub response_head: String,
    /// Response body bytes passed on to the client.
    pub body_bytes: u64,
}

impl Proxied {
    /// A request header's value (names compare case-insensitively).
    pub fn request_header(&self, name: &str) -> Option<String> {
        self.request_head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// A TCP proxy on a free local port that forwards everything to one
/// upstream, except that the FIRST connection is closed after
/// `cut_after` bytes of the response body: a download cut in the middle.
/// It logs one [`Proxied`] per connection. Each download uses a fresh
/// connection here (the cut one is dead, and each attempt is a new
/// client), so "first request of a connection" is every request.
#[derive(Debug)]
pub struct CuttingProxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    listener: Option<TcpListener>,
    log: Arc<Mutex<Vec<Proxied>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl CuttingProxy {
    /// Binds the port, so the catalog can be told the URL before the
    /// proxy knows where to forward.
    pub async fn bind() -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        CuttingProxy {
            url: format!("http://{}", listener.local_addr().unwrap()),
            listener: Some(listener),
            log: Arc::default(),
            task: None,
        }
    }

    /// Starts forwarding to `upstream`.
    pub fn start(&mut self, upstream: SocketAddr, cut_after: u64) {
        let listener = self.listener.take().expect("started once");
        let log = self.log.clone();
        self.task = Some(tokio::spawn(async move {
            let mut first = true;
            while let Ok((client, _)) = listener.accept().await {
                let limit = first.then_some(cut_after);
                first = false;
                let slot = {
                    let mut log = log.lock().unwrap();
                    log.push(Proxied::default());
                    log.len() - 1
                };
                tokio::spawn(forward(client, upstream, limit, log.clone(), slot));
            }
        }));
    }

    /// Every connection so far.
    pub fn log(&self) -> Vec<Proxied> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The end of an HTTP head in `bytes`, just past the blank line.
fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

async fn forward(
    client: TcpStream,
    upstream: SocketAddr,
    limit: Option<u64>,
    log: Arc<Mutex<Vec<Proxied>>>,
    slot: usize,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let request_log = log.clone();
    let requests = tokio::spawn(async move {
        let mut head = Vec::new();
        let mut buf = vec![0u8; 16 << 10];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if head_end(&head).is_none() {
                head.extend_from_slice(&buf[..n]);
                if let Some(end) = head_end(&head) {
                    request_log.lock().unwrap()[slot].request_head =
                        String::from_utf8_lossy(&head[..end]).into_owned();
                }
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    });

    let mut head = Vec::new();
    let mut in_body = false;
    let mut buf = vec![0u8; 64 << 10];
    'copy: loop {
        let n = match server_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = &buf[..n];
        if !in_body {
            let before = head.len();
            head.extend_from_slice(chunk);
            let Some(end) = head_end(&head) else {
                if client_write.write_all(chunk).await.is_err() {
                    break;
                }
                continue;
            };
            log.lock().unwrap()[slot].response_head =
                String::from_utf8_lossy(&head[..end]).into_owned();
            in_body = true;
            let head_part = end - before;
            if client_write.write_all(&chunk[..head_part]).await.is_err() {
                break;
            }
            chunk = &chunk[head_part..];
        }
        let mut sent = log.lock().unwrap()[slot].body_bytes;
        if let Some(limit) = limit
            && sent + chunk.len() as u64 >= limit
        {
            let keep = (limit - sent) as usize;
            let _ = client_write.write_all(&chunk[..keep]).await;
            log.lock().unwrap()[slot].body_bytes = limit;
            break 'copy;
        }
        if client_write.write_all(chunk).await.is_err() {
            break;
        }
        sent += chunk.len() as u64;
        log.lock().unwrap()[slot].body_bytes = sent;
    }
    // Closing both directions is the cut: the client sees the connection
    // end before the `Content-Length` it was promised.
    requests.abort();
    let _ = client_write.shutdown().await;
}

// ---- what is on disk -----------------------------------------------------

/// Every path under `root` (relative, links not followed), sorted.
pub fn tree(root: &Path) -> BTreeSet<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            out.insert(path.strip_prefix(root).unwrap().to_owned());
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

/// The names directly inside `dir` (empty when it does not exist).
pub fn names_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
