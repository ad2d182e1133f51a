//! Shared helpers for the registry's HTTP integration tests: a real server on
//! `127.0.0.1:0` in its own temporary directory, pushes of blobs and
//! manifests, OCI error-body checks, a raw HTTP/1.1 client for paths that
//! `reqwest` would normalise (`..`, `%2e%2e`), and tables of hostile
//! requests with the OCI error each must get.

// Each test file is its own crate and uses a different part of this module,
// so what one file leaves unused is not dead code. `#[expect]` cannot be
// used here: the lint fires in some of those crates and not in others.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rbee_registry::RegistryConfig;
use rbee_registry::server::RunningRegistry;
use rbee_registry::storage::s3_server::{self, S3TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The prefix of the bucket a registry of [`TestRegistry::start_on_s3`] uses.
pub const S3_PREFIX: &str = "registry";

/// The file name hostile paths try to write outside the data directory.
pub const ESCAPED: &str = "escaped";

/// The top-level entries the filesystem backend may create in its data dir.
pub const DATA_DIR_ENTRIES: [&str; 6] =
    ["blobs", "index", "lock", "repositories", "tmp", "uploads"];

/// A registry served in-process on a free port, with its data directory
/// nested two levels inside a temporary directory of its own, so that a
/// write escaping the data directory lands somewhere a test can see.
#[derive(Debug)]
pub struct TestRegistry {
    pub server: RunningRegistry,
    pub client: reqwest::Client,
    pub root: tempfile::TempDir,
    /// Where the content is on disk: the data directory, or on S3 the
    /// folder where `s3s-fs` keeps the registry's prefix of the bucket (one
    /// file per object, under the same keys), so `files_in` and
    /// `blob_path` see the content on either backend.
    pub data_dir: PathBuf,
    /// The S3 server the registry stores into, for [`Self::start_on_s3`].
    pub s3: Option<S3TestServer>,
}

/// The default configuration with the development switch on: these tests
/// exercise the registry, not its access gate (that is `access.rs`), so
/// loopback callers may do everything.
pub fn open_config(data_dir: &std::path::Path) -> RegistryConfig {
    let mut config = RegistryConfig::new(data_dir);
    config.access.dev_open_loopback = true;
    config
}

impl TestRegistry {
    /// A registry with the default configuration.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A registry whose configuration `configure` adjusts first.
    pub async fn start_with(configure: impl FnOnce(&mut RegistryConfig)) -> Self {
        let root = tempfile::tempdir().expect("temporary directory");
        let data_dir = root.path().join("outer").join("data");
        let mut config = open_config(&data_dir);
        configure(&mut config);
        let server = RunningRegistry::start(config, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("registry starts");
        TestRegistry {
            server,
            client: reqwest::Client::new(),
            root,
            data_dir,
            s3: None,
        }
    }

    /// A registry with the default configuration on a bucket of its own
    /// `s3s-fs` (which must be installed: a test that needs it fails
    /// without it).
    pub async fn start_on_s3() -> Self {
        Self::start_on_s3_with(|_| {}).await
    }

    /// [`Self::start_on_s3`], with the configuration adjusted by `configure`.
    pub async fn start_on_s3_with(configure: impl FnOnce(&mut RegistryConfig)) -> Self {
        let s3 = S3TestServer::start();
        let options = s3.options(S3_PREFIX);
        let data_dir = s3.root.path().join(s3_server::BUCKET).join(S3_PREFIX);
        let mut reg = Self::start_with(|config| {
            config.s3 = Some(options);
            configure(config);
        })
        .await;
        reg.data_dir = data_dir;
        reg.s3 = Some(s3);
        reg
    }

    /// Waits until what was written so far is older than "now" by the
    /// storage's own clock: S3's `Last-Modified` has whole seconds, and
    /// garbage collection counts an object of the current second as
    /// written after the collection started. A no-op on the filesystem.
    pub async fn let_writes_age(&self) {
        if self.s3.is_some() {
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
    }

    /// Files of the S3 server that belong to no object: the parts and
    /// records of multipart uploads not completed or aborted (`s3s-fs`
    /// keeps them next to the buckets, as `.upload_id-<id>.part-<n>` and
    /// `.upload-<id>.json`). Empty on the filesystem backend.
    pub fn multipart_leftovers(&self) -> Vec<String> {
        let Some(s3) = &self.s3 else {
            return Vec::new();
        };
        entries_of(s3.root.path())
            .into_iter()
            .filter(|name| name.starts_with(".upload"))
            .collect()
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `path` (or a `Location` header) as an absolute URL.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.server.url())
        }
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path))
    }

    pub fn head(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.head(self.url(path))
    }

    pub fn put(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.put(self.url(path))
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path))
    }

    pub fn patch(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.patch(self.url(path))
    }

    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.delete(self.url(path))
    }

    /// Pushes `data` into `repo` with a monolithic `POST ?digest=` and
    /// returns its digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        let resp = self
            .post(&format!("/v2/{repo}/blobs/uploads/?digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::CREATED,
            "pushing a blob into {repo}"
        );
        digest
    }

    /// Opens an upload session in `repo` and returns its `Location`.
    /// The body of `GET /v2/<repo>/blobs/<digest>`, whatever the status.
    pub async fn blob_bytes(&self, repo: &str, digest: &str) -> bytes::Bytes {
        self.get(&format!("/v2/{repo}/blobs/{digest}"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    }

    pub async fn start_upload(&self, repo: &str) -> String {
        let resp = self
            .post(&format!("/v2/{repo}/blobs/uploads/"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::ACCEPTED,
            "opening an upload in {repo}"
        );
        location(&resp)
    }

    /// PUTs a manifest under `reference` with `content_type`.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        content_type: &str,
        body: &[u8],
    ) -> reqwest::Response {
        self.put(&format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", content_type)
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    /// PUTs a manifest that must be accepted and returns its digest.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        content_type: &str,
        body: &[u8],
    ) -> String {
        let resp = self.put_manifest(repo, reference, content_type, body).await;
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(
            status,
            StatusCode::CREATED,
            "pushing manifest {repo}:{reference}: {text}"
        );
        sha256(body)
    }

    /// Pushes a config and one layer and an OCI manifest over them, tagged
    /// `tag`; returns the manifest's bytes and digest.
    pub async fn push_image(&self, repo: &str, tag: &str, layer: &[u8]) -> (Vec<u8>, String) {
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        self.push_blob(repo, config).await;
        self.push_blob(repo, layer).await;
        let body = json_bytes(&oci_manifest(
            descriptor("application/vnd.oci.image.config.v1+json", config),
            vec![descriptor(OCI_LAYER, layer)],
        ));
        let digest = self.push_manifest(repo, tag, OCI_MANIFEST, &body).await;
        (body, digest)
    }

    /// Where the filesystem backend keeps the bytes of `digest`.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.data_dir.join("blobs/sha256").join(&hex[..2]).join(hex)
    }

    /// Every file below `rel` in the data directory.
    pub fn files_in(&self, rel: &str) -> Vec<PathBuf> {
        files_under(&self.data_dir.join(rel))
    }

    /// The ids of the upload sessions stored in the data directory.
    pub fn stored_sessions(&self) -> Vec<String> {
        entries_of(&self.data_dir.join("uploads"))
    }

    /// Asserts that nothing was written outside the data directory: the
    /// temporary directory holds only the data directory's parents, and the
    /// data directory only the backend's own top-level entries.
    pub fn assert_nothing_outside_data_dir(&self) {
        assert_eq!(
            entries_of(self.root.path()),
            ["outer"],
            "entries next to the data dir's parent"
        );
        assert_eq!(
            entries_of(&self.root.path().join("outer")),
            ["data"],
            "entries next to the data dir"
        );
        for entry in entries_of(&self.data_dir) {
            assert!(
                DATA_DIR_ENTRIES.contains(&entry.as_str()),
                "unexpected `{entry}` in the data dir"
            );
        }
        // Hostile paths name their target `escaped`; it must not exist in
        // any directory above the data directory either (other tests share
        // the system temp directory, so only this name is checked there).
        for dir in self.data_dir.ancestors() {
            assert!(
                !dir.join(ESCAPED).exists(),
                "{} exists",
                dir.join(ESCAPED).display()
            );
        }
    }

    /// Asserts the server still answers the version check.
    pub async fn assert_alive(&self) {
        let resp = self
            .get("/v2/")
            .send()
            .await
            .expect("the registry still answers");
        assert_eq!(resp.status(), StatusCode::OK);
    }

    /// Sends bytes exactly as given; see [`raw_request`].
    pub async fn raw(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> RawResponse {
        raw_request(self.addr(), method, target, headers, body).await
    }

    pub async fn stop(self) {
        self.server.stop().await.expect("registry stops cleanly");
    }
}

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// Deterministic, incompressible-looking test content.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// The `Location` header of a response.
pub fn location(resp: &reqwest::Response) -> String {
    header(resp, "location")
        .unwrap_or_else(|| panic!("no Location in a {} response", resp.status()))
}

/// A response header as a string.
pub fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().expect("ASCII header").to_owned())
}

/// An OCI descriptor of `data`.
pub fn descriptor(media_type: &str, data: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": sha256(data), "size": data.len() })
}

/// An OCI image manifest over `config` and `layers`.
pub fn oci_manifest(config: Value, layers: Vec<Value>) -> Value {
    json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers })
}

pub fn json_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// Checks that `body` is an OCI error body whose first error has `code`,
/// and that every error has the `code`, `message` and `detail` members.
pub fn check_error_body(body: &[u8], code: &str, context: &str) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "{context}: error body is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    let errors = v["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{context}: no `errors` array in {v}"));
    assert!(!errors.is_empty(), "{context}: empty `errors` in {v}");
    for e in errors {
        assert!(e["code"].is_string(), "{context}: `code` missing in {e}");
        assert!(
            e["message"].is_string(),
            "{context}: `message` missing in {e}"
        );
        assert!(
            e.get("detail").is_some(),
            "{context}: `detail` missing in {e}"
        );
    }
    assert_eq!(errors[0]["code"], code, "{context}: {v}");
    v
}

/// Asserts `resp` is a `status` answer with the OCI error `code`.
pub async fn expect_error(resp: reqwest::Response, status: u16, code: &str) -> Value {
    let context = format!("{} {}", resp.status(), resp.url().path());
    assert_eq!(resp.status().as_u16(), status, "{context}");
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some("application/json"),
        "{context}"
    );
    let body = resp.bytes().await.unwrap();
    check_error_body(&body, code, &context)
}

/// The recursive list of files below `dir` (empty if it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The sorted names directly in `dir` (empty if it does not exist).
pub fn entries_of(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A response read off the wire by [`raw_request`].
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the status and the OCI error code.
    pub fn expect_error(&self, status: u16, code: &str, context: &str) {
        assert_eq!(
            self.status,
            status,
            "{context}: unexpected status, body {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{context}"
        );
        check_error_body(&self.body, code, context);
    }
}

/// Sends one HTTP/1.1 request with `target` written byte for byte, so that
/// `..` and percent-encoded slashes reach the server unnormalised.
pub async fn raw_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .expect("write request head");
    stream.write_all(body).await.expect("write request body");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("the server answers in time")
        .expect("read response");
    parse_response(&raw, method == "HEAD")
}

fn parse_response(raw: &[u8], head_request: bool) -> RawResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no complete response head in {:?}",
                String::from_utf8_lossy(raw)
            )
        });
    let head = std::str::from_utf8(&raw[..split]).expect("ASCII response head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if head_request {
        rest.to_vec()
    } else if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    RawResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = std::str::from_utf8(&data[..eol]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
    out
}

/// One request and the answer it must get, for [`run_cases`].
#[derive(Debug)]
pub struct Case {
    pub method: &'static str,
    pub target: String,
    pub body: Vec<u8>,
    pub status: u16,
    pub code: &'static str,
}

/// A [`Case`] without a body.
pub fn case(
    method: &'static str,
    target: impl Into<String>,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        method,
        target: target.into(),
        body: Vec::new(),
        status,
        code,
    }
}

/// Sends each case through the raw client and checks its answer: the
/// status and OCI error code, or for a HEAD the status and an empty body.
pub async fn run_cases(reg: &TestRegistry, cases: Vec<Case>) {
    for c in cases {
        let context = format!("{} {}", c.method, c.target);
        let headers: &[(&str, &str)] = if c.target.contains("/manifests/") && c.method == "PUT" {
            &[("Content-Type", OCI_MANIFEST)]
        } else {
            &[]
        };
        let resp = reg.raw(c.method, &c.target, headers, &c.body).await;
        if c.method == "HEAD" {
            assert_eq!(resp.status, c.status, "{context}");
            assert!(
                resp.body.is_empty(),
                "{context}: HEAD answers carry no body"
            );
        } else {
            resp.expect_error(c.status, c.code, &context);
        }
    }
}
