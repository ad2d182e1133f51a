//! Deliberately hostile peers for the installer's tests, on
//! `127.0.0.1:0`: a fake catalog whose every answer a test can bend (a
//! version that is a path, another worker, an absurd size, a URL on
//! another origin, a body that stalls or never ends) and a fake OCI
//! registry serving one release whose manifest a test can bend. Both log
//! every request with its `Authorization` header.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use super::publishing::example_dir;
use super::{gzip_stored, sha256_digest, tar_with_file};

/// The platform the hostile tests install for, whatever the host.
pub const PLATFORM: &str = "linux-x86_64";

/// One request a peer received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub authorization: Option<String>,
}

/// A server on a free local port; stops when dropped.
#[derive(Debug)]
pub struct Peer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    log: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Peer {
    /// Serves `router`, logging every request.
    pub async fn serve(router: Router) -> Peer {
        let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let logged = log.clone();
        let router = router.layer(middleware::from_fn(move |req: Request, next: Next| {
            logged.lock().unwrap().push(Seen {
                path: req.uri().to_string(),
                authorization: req
                    .headers()
                    .get(header::AUTHORIZATION)
                    .map(|v| v.to_str().unwrap_or("<binary>").to_owned()),
            });
            next.run(req)
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Peer { url, log, task }
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    /// The requests whose path starts with `prefix`.
    pub fn seen_under(&self, prefix: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path.starts_with(prefix))
            .collect()
    }
}

/// The tar.gz of `worker` `version`: one executable script.
pub fn worker_archive(worker: &str, version: &str) -> Vec<u8> {
    gzip_stored(&tar_with_file(
        "hello-worker-rbee",
        format!("#!/bin/sh\necho '{worker} {version}'\n").as_bytes(),
    ))
}

/// How the fake catalog sends a build's bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum BlobMode {
    /// The archive, as announced.
    Honest,
    /// The archive, then zeros forever.
    Endless,
    /// The headers and the first `n` bytes, then silence.
    StallAfter(usize),
    /// One byte every interval.
    Trickle(Duration),
    /// A 302 to this URL.
    RedirectTo(String),
}

/// Bends the honest download answer for `(answer, worker, version)`.
pub type Edit = Box<dyn Fn(&mut Value, &str, &str) + Send + Sync>;

/// What the fake catalog answers; tests change it between installs.
pub struct Script {
    /// `latest` in the version list.
    pub latest: String,
    /// Every published version.
    pub versions: Vec<String>,
    /// Bends the honest download answer for `(worker, version)`.
    pub edit: Edit,
    /// How builds are sent.
    pub blob: BlobMode,
    /// Stall the version list after its headers.
    pub stall_versions: bool,
}

impl Script {
    /// Honest answers for `versions` (the last one is `latest`).
    pub fn honest(versions: &[&str]) -> Script {
        Script {
            latest: versions.last().unwrap().to_string(),
            versions: versions.iter().map(|v| v.to_string()).collect(),
            edit: Box::new(|_, _, _| {}),
            blob: BlobMode::Honest,
            stall_versions: false,
        }
    }
}

/// A fake catalog serving any worker id with [`worker_archive`] builds.
pub struct FakeCatalog {
    pub peer: Peer,
    pub script: Arc<Mutex<Script>>,
}

type Shared = (Arc<Mutex<Script>>, Arc<Mutex<String>>);

impl FakeCatalog {
    pub async fn start(script: Script) -> FakeCatalog {
        let script = Arc::new(Mutex::new(script));
        let base: Arc<Mutex<String>> = Arc::default();
        let router = Router::new()
            .route("/v1/workers/{id}/versions", get(versions))
            .route("/v1/workers/{id}/{version}/download", get(download))
            .route("/blobs/{id}/{version}", get(blob))
            .with_state((script.clone(), base.clone()));
        let peer = Peer::serve(router).await;
        *base.lock().unwrap() = peer.url.clone();
        FakeCatalog { peer, script }
    }

    pub fn url(&self) -> &str {
        &self.peer.url
    }

    /// Changes the script.
    pub fn set(&self, change: impl FnOnce(&mut Script)) {
        change(&mut self.script.lock().unwrap());
    }

    /// Requests for builds so far.
    pub fn blob_requests(&self) -> Vec<Seen> {
        self.peer.seen_under("/blobs/")
    }
}

async fn versions(
    State((script, _)): State<Shared>,
    axum::extract::Path(_id): axum::extract::Path<String>,
) -> Response {
    let (body, stall) = {
        let s = script.lock().unwrap();
        let body = json!({
            "versions": s.versions.iter().map(|v| json!({ "version": v, "index_digest": sha256_digest(v.as_bytes()), "platforms": [] })).collect::<Vec<_>>(),
            "latest": s.latest,
        });
        (body, s.stall_versions)
    };
    if stall {
        let first = futures_util::stream::once(async {
            Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"{"))
        });
        let stream = first.chain(futures_util::stream::pending());
        return json_head(Body::from_stream(stream));
    }
    axum::Json(body).into_response()
}

fn json_head(body: Body) -> Response {
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

async fn download(
    State((script, base)): State<Shared>,
    axum::extract::Path((id, version)): axum::extract::Path<(String, String)>,
) -> Response {
    let archive = worker_archive(&id, &version);
    let mut answer = json!({
        "worker_id": id,
        "version": version,
        "platform": PLATFORM,
        "download_url": format!("{}/blobs/{id}/{version}", base.lock().unwrap()),
        "checksum": sha256_digest(&archive),
        "size": archive.len(),
        "filename": format!("{id}-{version}-{PLATFORM}.tar.gz"),
        "oci_reference": format!("127.0.0.1/rbee/{id}@{}", sha256_digest(b"m")),
    });
    (script.lock().unwrap().edit)(&mut answer, &id, &version);
    axum::Json(answer).into_response()
}

async fn blob(
    State((script, _)): State<Shared>,
    axum::extract::Path((id, version)): axum::extract::Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let archive = worker_archive(&id, &version);
    let mode = script.lock().unwrap().blob.clone();
    let bytes = |b: Vec<u8>| Ok::<_, std::io::Error>(axum::body::Bytes::from(b));
    let body = match mode {
        BlobMode::Honest => {
            let from = headers
                .get(header::RANGE)
                .and_then(|r| r.to_str().ok())
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(from) = from.filter(|&f| f <= archive.len()) {
                let range = format!("bytes {from}-{}/{}", archive.len() - 1, archive.len());
                let mut resp = Response::new(Body::from(archive[from..].to_vec()));
                *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
                resp.headers_mut()
                    .insert(header::CONTENT_RANGE, range.parse().unwrap());
                return resp;
            }
            Body::from(archive)
        }
        BlobMode::Endless => {
            let zeros = futures_util::stream::repeat_with(move || bytes(vec![0u8; 64 << 10]));
            Body::from_stream(
                futures_util::stream::once(async move { bytes(archive) }).chain(zeros),
            )
        }
        BlobMode::StallAfter(n) => {
            let head = archive[..n.min(archive.len())].to_vec();
            Body::from_stream(
                futures_util::stream::once(async move { bytes(head) })
                    .chain(futures_util::stream::pending()),
            )
        }
        BlobMode::Trickle(every) => Body::from_stream(futures_util::stream::iter(archive).then(
            move |b| async move {
                tokio::time::sleep(every).await;
                bytes(vec![b])
            },
        )),
        BlobMode::RedirectTo(to) => {
            return (StatusCode::FOUND, [(header::LOCATION, to)]).into_response();
        }
    };
    Response::new(body)
}

// ---- a fake OCI registry ---------------------------------------------------

/// The example worker's metadata at `version`, as the pusher writes it.
pub fn worker_metadata(version: &str) -> Value {
    let mut metadata: Value = serde_json::from_slice(
        &std::fs::read(example_dir().join("metadata.json")).expect("example metadata"),
    )
    .expect("example metadata is JSON");
    metadata["version"] = version.into();
    metadata["source"]["tag"] = format!("v{version}").into();
    metadata
}

/// A fake registry holding one release of `rbee/<worker>`: an index for
/// [`PLATFORM`], its manifest (which a test may bend), the metadata
/// config and the layer.
pub struct FakeRegistry {
    pub peer: Peer,
}

#[derive(Clone)]
struct Release {
    tags: Value,
    /// `(reference, media type, bytes)` of every manifest and blob.
    content: Arc<Vec<(String, &'static str, Vec<u8>)>>,
}

impl FakeRegistry {
    /// Serves `worker` `version` with `metadata` as config and `layer`,
    /// after `edit` bent the platform manifest.
    pub async fn start(
        worker: &str,
        version: &str,
        metadata: &Value,
        layer: &[u8],
        edit: impl FnOnce(&mut Value),
    ) -> FakeRegistry {
        let config = serde_json::to_vec(metadata).unwrap();
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.rbee.worker.v1",
            "config": {
                "mediaType": "application/vnd.rbee.worker.metadata.v1+json",
                "digest": sha256_digest(&config),
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.rbee.worker.layer.v1.tar+gzip",
                "digest": sha256_digest(layer),
                "size": layer.len(),
            }],
        });
        edit(&mut manifest);
        let manifest = serde_json::to_vec(&manifest).unwrap();
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": sha256_digest(&manifest),
                "size": manifest.len(),
                "platform": { "os": "linux", "architecture": "amd64" },
            }],
        }))
        .unwrap();
        let content = vec![
            (
                version.to_owned(),
                "application/vnd.oci.image.index.v1+json",
                index,
            ),
            (
                sha256_digest(&manifest),
                "application/vnd.oci.image.manifest.v1+json",
                manifest,
            ),
            (sha256_digest(&config), "application/octet-stream", config),
            (
                sha256_digest(layer),
                "application/octet-stream",
                layer.to_vec(),
            ),
        ];
        let release = Release {
            tags: json!({ "name": format!("rbee/{worker}"), "tags": [version] }),
            content: Arc::new(content),
        };
        let router = Router::new()
            .route("/v2/", get(|| async { axum::Json(json!({})) }))
            .route(
                "/v2/rbee/{worker}/tags/list",
                get(|State(r): State<Release>| async move { axum::Json(r.tags) }),
            )
            .route("/v2/rbee/{worker}/manifests/{reference}", get(registry_get))
            .route("/v2/rbee/{worker}/blobs/{reference}", get(registry_get))
            .with_state(release);
        FakeRegistry {
            peer: Peer::serve(router).await,
        }
    }

    /// Requests for blobs so far.
    pub fn blob_requests(&self) -> Vec<Seen> {
        self.peer
            .seen()
            .into_iter()
            .filter(|s| s.path.contains("/blobs/"))
            .collect()
    }
}

async fn registry_get(
    State(release): State<Release>,
    axum::extract::Path((_worker, reference)): axum::extract::Path<(String, String)>,
) -> Response {
    match release.content.iter().find(|(r, _, _)| *r == reference) {
        Some((_, media_type, bytes)) => (
            [
                (header::CONTENT_TYPE, media_type.to_string()),
                (
                    header::HeaderName::from_static("docker-content-digest"),
                    sha256_digest(bytes),
                ),
            ],
            bytes.clone(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "errors": [{ "code": "MANIFEST_UNKNOWN", "message": "unknown" }] })),
        )
            .into_response(),
    }
}

// ---- what must not change ---------------------------------------------------

/// Every file under `root` with its contents, to prove nothing changed.
pub fn contents(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = super::install::tree(root)
        .into_iter()
        .map(|rel| {
            let path = root.join(&rel);
            let bytes = if path.is_file() {
                std::fs::read(&path).unwrap()
            } else {
                Vec::new()
            };
            (rel.to_string_lossy().into_owned(), bytes)
        })
        .collect();
    out.sort();
    out
}
