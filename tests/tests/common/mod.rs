//! Shared helpers for the end-to-end tests: finding the real clients (and
//! skipping or failing when they are missing), starting the registry on
//! `127.0.0.1:0`, running client commands with a time limit, and building
//! small but real OCI content (an image index with two platforms) on disk.
//! CNCF Distribution, the publishing helpers (the pusher, the example
//! release) and the catalog server helpers live in the submodules.

// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

pub mod catalog;
pub mod distribution;
pub mod example_set;
pub mod faults;
pub mod hostile;
pub mod install;
pub mod publishing;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rbee_registry::RegistryConfig;
use rbee_registry::server::RunningRegistry;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The longest any single client command may run before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

// ---- tool discovery ------------------------------------------------------

/// True when the tests run in CI, where a missing client is a failure and
/// not a reason to skip.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Reports a missing prerequisite: panics in CI, otherwise prints why the
/// test is skipped. Returns `false` so callers can `return` early.
fn missing(what: &str) -> bool {
    report_missing(what, in_ci())
}

/// [`missing`], with the CI switch as a parameter so it can be tested.
pub fn report_missing(what: &str, ci: bool) -> bool {
    let hint = "run scripts/install-test-deps.sh to install the test clients";
    if ci {
        panic!("{what} is required when CI=true; {hint}");
    }
    // Written to the stderr handle and not with `eprintln!`, which the test
    // harness captures: a skip should be visible in a passing run.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {what} is not installed ({hint})"
    );
    false
}

/// Finds `name` on `PATH`, the way a shell would.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// True when the command-line tool `name` is installed. When it is not:
/// panics if `CI=true`, else prints a skip message and returns `false`.
pub fn require_tool(name: &str) -> bool {
    find_tool(name).is_some() || missing(&format!("`{name}`"))
}

/// Like [`require_tool`], for a Python module importable by `python3`.
pub fn require_python_module(module: &str) -> bool {
    if !require_tool("python3") {
        return false;
    }
    let found = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    found || missing(&format!("the Python module `{module}`"))
}

// ---- the registry under test --------------------------------------------

/// A registry serving a fresh data directory on a free local port.
#[derive(Debug)]
pub struct TestRegistry {
    pub running: RunningRegistry,
    /// `127.0.0.1:PORT`, the registry host clients are given.
    pub host: String,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pub http: reqwest::Client,
    /// Scratch space for the test: client configuration, layouts, pulls.
    pub scratch: tempfile::TempDir,
    _data: tempfile::TempDir,
    /// The S3 server of a registry on [`Backend::S3`], stopped with it.
    _s3: Option<rbee_registry::storage::s3_server::S3TestServer>,
}

/// Where a [`TestRegistry`] keeps its data: the same client tests run on
/// each (see [`on_each_backend!`]).
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    /// A data directory.
    Fs,
    /// A bucket of an `s3s-fs` on loopback, with 5 MiB parts.
    S3,
}

/// Turns `async fn name(backend: Backend)` test bodies into one test per
/// storage backend: `on_fs::name` and `on_s3::name`.
#[macro_export]
macro_rules! on_each_backend {
    ($($name:ident),* $(,)?) => {
        mod on_fs {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Fs).await
                }
            )*
        }
        mod on_s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::S3).await
                }
            )*
        }
    };
}

impl TestRegistry {
    pub async fn start() -> TestRegistry {
        Self::start_on(Backend::Fs).await
    }

    /// A registry keeping its data on `backend`.
    pub async fn start_on(backend: Backend) -> TestRegistry {
        let data = tempfile::tempdir().expect("data dir");
        let mut config = RegistryConfig::new(data.path());
        let s3 = match backend {
            Backend::Fs => None,
            Backend::S3 => {
                let server = rbee_registry::storage::s3_server::S3TestServer::start();
                config.s3 = Some(server.options("registry"));
                Some(server)
            }
        };
        // These tests push anonymously over loopback: the development
        // switch (the access gate has its own tests, which leave it off).
        config.access.dev_open_loopback = true;
        let running = RunningRegistry::start(config, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("registry starts");
        let scratch = tempfile::tempdir().expect("scratch dir");
        TestRegistry {
            host: running.addr.to_string(),
            url: running.url(),
            running,
            // A proxy from the environment must not see loopback traffic.
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("HTTP client"),
            scratch,
            _data: data,
            _s3: s3,
        }
    }

    /// A new empty directory inside the scratch space.
    pub fn dir(&self, name: &str) -> PathBuf {
        let dir = self.scratch.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `GET /v2/<name>/manifests/<reference>` accepting every manifest type.
    pub async fn get_manifest(&self, name: &str, reference: &str) -> reqwest::Response {
        self.http
            .get(format!("{}/v2/{name}/manifests/{reference}", self.url))
            .header(
                "accept",
                [
                    OCI_MANIFEST,
                    OCI_INDEX,
                    DOCKER_MANIFEST,
                    DOCKER_MANIFEST_LIST,
                ]
                .join(", "),
            )
            .send()
            .await
            .expect("GET manifest")
    }

    /// `GET /v2/<name>/referrers/<digest>[?query]`, expecting 200 and an
    /// OCI index body.
    pub async fn referrers(
        &self,
        name: &str,
        digest: &str,
        query: &str,
    ) -> (reqwest::header::HeaderMap, Value) {
        let resp = self
            .http
            .get(format!("{}/v2/{name}/referrers/{digest}{query}", self.url))
            .send()
            .await
            .expect("GET referrers");
        assert_eq!(resp.status(), 200, "referrers of {digest}{query}");
        assert_eq!(header(&resp, "content-type"), OCI_INDEX);
        let headers = resp.headers().clone();
        let body: Value = resp.json().await.expect("referrers body is JSON");
        assert_eq!(body["schemaVersion"], 2);
        assert_eq!(body["mediaType"], OCI_INDEX);
        (headers, body)
    }

    /// Uploads `blob` into `name` in one request (`POST ?digest=`).
    pub async fn push_blob(&self, name: &str, blob: &Blob) {
        let resp = self
            .http
            .post(format!(
                "{}/v2/{name}/blobs/uploads/?digest={}",
                self.url, blob.digest
            ))
            .header("content-type", "application/octet-stream")
            .body(blob.bytes.clone())
            .send()
            .await
            .expect("POST blob");
        assert_eq!(resp.status(), 201, "monolithic upload of {}", blob.digest);
        assert_eq!(header(&resp, "docker-content-digest"), blob.digest);
    }

    /// `PUT /v2/<name>/manifests/<reference>` with `manifest`'s media type.
    pub async fn put_manifest(
        &self,
        name: &str,
        reference: &str,
        manifest: &Blob,
    ) -> reqwest::Response {
        self.http
            .put(format!("{}/v2/{name}/manifests/{reference}", self.url))
            .header("content-type", &manifest.media_type)
            .body(manifest.bytes.clone())
            .send()
            .await
            .expect("PUT manifest")
    }

    pub async fn stop(self) {
        self.running.stop().await.expect("registry stops cleanly");
    }
}

/// A response header as text ("" when absent).
pub fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

// ---- running clients -----------------------------------------------------

/// What a finished client command printed.
#[derive(Debug)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Output {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// All of stdout, parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("expected JSON, got {:?}: {e}", self.text()))
    }

    /// The last non-empty stdout line, parsed as JSON.
    pub fn last_json(&self) -> Value {
        let text = self.text();
        let line = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default();
        serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("expected a JSON line, got {text:?}: {e}"))
    }
}

/// Runs `program args...` (with extra environment `env`), fails the test
/// with everything it printed when it exits non-zero or runs too long.
pub async fn run(program: &str, args: &[&str], env: &[(&str, &Path)]) -> Output {
    run_expecting(true, program, args, env).await
}

/// Like [`run`], but `success` says whether the command must succeed or
/// must fail.
pub async fn run_expecting(
    success: bool,
    program: &str,
    args: &[&str],
    env: &[(&str, &Path)],
) -> Output {
    let line = format!("{program} {}", args.join(" "));
    eprintln!("+ {line}");
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    // Python's requests would send even 127.0.0.1 through a proxy set in
    // the environment; the tests never talk to anything else.
    cmd.env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(COMMAND_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("`{line}` did not finish within {COMMAND_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("`{line}` could not start: {e}"));
    let output = Output {
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(
        out.status.success(),
        success,
        "`{line}` exited with {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        output.text(),
        output.stderr
    );
    output
}

/// Runs skopeo isolated from the machine's configuration: no signature
/// policy (the content is ours) and an empty `registries.conf`, so no
/// mirror or short-name rule can send it anywhere but 127.0.0.1.
pub async fn skopeo(reg: &TestRegistry, args: &[&str]) -> Output {
    skopeo_expecting(true, reg, args).await
}

/// Runs skopeo like [`skopeo`], expecting it to fail.
pub async fn skopeo_fails(reg: &TestRegistry, args: &[&str]) -> Output {
    skopeo_expecting(false, reg, args).await
}

async fn skopeo_expecting(success: bool, reg: &TestRegistry, args: &[&str]) -> Output {
    skopeo_in(success, reg.scratch.path(), args).await
}

/// Runs skopeo like [`skopeo`] against any registry (CNCF Distribution
/// too), keeping its isolated configuration in `scratch`; `success` says
/// whether it must succeed or fail.
pub async fn skopeo_in(success: bool, scratch: &Path, args: &[&str]) -> Output {
    let conf = scratch.join("registries.conf");
    if !conf.exists() {
        std::fs::write(&conf, "").unwrap();
    }
    let auth = scratch.join("auth.json");
    if !auth.exists() {
        std::fs::write(&auth, "{}").unwrap();
    }
    let mut full = vec!["--insecure-policy"];
    full.extend_from_slice(args);
    run_expecting(
        success,
        "skopeo",
        &full,
        &[
            ("CONTAINERS_REGISTRIES_CONF", &conf),
            ("REGISTRY_AUTH_FILE", &auth),
        ],
    )
    .await
}

/// Runs `tests/scripts/oras_client.py` (the oras-py front) with `args`.
pub async fn oras(args: &[&str]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/oras_client.py");
    let script = script.to_str().unwrap();
    let mut full = vec![script];
    full.extend_from_slice(args);
    run("python3", &full, &[]).await
}

// ---- content -------------------------------------------------------------

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

/// Content with its media type and digest.
#[derive(Debug, Clone)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.to_owned(),
            digest: sha256_digest(&bytes),
            bytes,
        }
    }

    pub fn json(media_type: &str, value: &Value) -> Blob {
        Blob::new(media_type, serde_json::to_vec(value).unwrap())
    }

    /// The OCI descriptor of this content.
    pub fn descriptor(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len() })
    }
}

/// One platform's image: a config, a single layer and the manifest.
#[derive(Debug, Clone)]
pub struct PlatformImage {
    /// OCI architecture name: `amd64`, `arm64`.
    pub architecture: String,
    pub config: Blob,
    pub layer: Blob,
    pub manifest: Blob,
}

/// A release: an OCI image index over one image per platform.
#[derive(Debug, Clone)]
pub struct Release {
    pub images: Vec<PlatformImage>,
    pub index: Blob,
}

impl Release {
    /// Builds a two-platform (`linux/amd64`, `linux/arm64`) release of
    /// `worker` at `version`. Every platform gets distinct layer bytes, so a
    /// client that picks the wrong platform is caught.
    pub fn build(worker: &str, version: &str) -> Release {
        Release::with_payload(worker, version, 0)
    }

    /// Like [`Release::build`], with `payload` extra (incompressible) bytes
    /// in each layer, to make clients stream.
    pub fn with_payload(worker: &str, version: &str, payload: usize) -> Release {
        let images: Vec<PlatformImage> = ["amd64", "arm64"]
            .iter()
            .zip(1u64..)
            .map(|(arch, seed)| platform_image(worker, version, arch, pseudo_random(seed, payload)))
            .collect();
        let index = Blob::json(
            OCI_INDEX,
            &json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": images.iter().map(|i| {
                    let mut d = i.manifest.descriptor();
                    d["platform"] = json!({ "os": "linux", "architecture": i.architecture });
                    d
                }).collect::<Vec<_>>(),
                "annotations": {
                    "org.opencontainers.image.version": version,
                    "org.opencontainers.image.description": format!("{worker} test release"),
                },
            }),
        );
        Release { images, index }
    }

    pub fn image(&self, architecture: &str) -> &PlatformImage {
        self.images
            .iter()
            .find(|i| i.architecture == architecture)
            .expect("platform")
    }

    /// Every blob and manifest of the release, index first.
    pub fn all_content(&self) -> Vec<&Blob> {
        let mut all = vec![&self.index];
        for i in &self.images {
            all.extend([&i.manifest, &i.config, &i.layer]);
        }
        all
    }

    /// Writes an OCI image layout at `dir`. `index.json` names the index
    /// `ref_name` and, for single-image copies, each platform's manifest
    /// `<ref_name>-<architecture>`.
    pub fn write_layout(&self, dir: &Path, ref_name: &str) {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        for blob in self.all_content() {
            std::fs::write(blobs.join(hex_of(&blob.digest)), &blob.bytes).unwrap();
        }
        let named = |blob: &Blob, name: String| {
            let mut d = blob.descriptor();
            d["annotations"] = json!({ "org.opencontainers.image.ref.name": name });
            d
        };
        let mut entries = vec![named(&self.index, ref_name.to_owned())];
        for i in &self.images {
            entries.push(named(&i.manifest, format!("{ref_name}-{}", i.architecture)));
        }
        let index_json =
            json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries });
        std::fs::write(
            dir.join("index.json"),
            serde_json::to_vec_pretty(&index_json).unwrap(),
        )
        .unwrap();
    }
}

fn platform_image(
    worker: &str,
    version: &str,
    architecture: &str,
    payload: Vec<u8>,
) -> PlatformImage {
    let file = format!("{worker}-{version}-linux-{architecture}");
    let mut contents =
        format!("#!/bin/sh\necho '{worker} {version} for linux/{architecture}'\nexit 0\n")
            .into_bytes();
    contents.extend_from_slice(&payload);
    let tar = tar_with_file(&file, &contents);
    let layer = Blob::new(OCI_LAYER_GZIP, gzip_stored(&tar));
    let config = Blob::json(
        OCI_CONFIG,
        &json!({
            "architecture": architecture,
            "os": "linux",
            "config": { "Entrypoint": [format!("/{file}")] },
            "rootfs": { "type": "layers", "diff_ids": [sha256_digest(&tar)] },
        }),
    );
    let mut layer_descriptor = layer.descriptor();
    layer_descriptor["annotations"] =
        json!({ "org.opencontainers.image.title": format!("{file}.tar.gz") });
    let manifest = Blob::json(
        OCI_MANIFEST,
        &json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [layer_descriptor],
            "annotations": { "org.opencontainers.image.version": version },
        }),
    );
    PlatformImage {
        architecture: architecture.to_owned(),
        config,
        layer,
        manifest,
    }
}

/// The hex part of `sha256:<hex>`.
pub fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").expect("a sha256 digest")
}

/// A POSIX (ustar) archive holding one regular file.
pub fn tar_with_file(name: &str, contents: &[u8]) -> Vec<u8> {
    assert!(name.len() < 100, "ustar names are limited to 99 bytes");
    let mut header = [0u8; 512];
    let mut field =
        |offset: usize, value: &[u8]| header[offset..offset + value.len()].copy_from_slice(value);
    field(0, name.as_bytes());
    field(100, b"0000755\0"); // mode
    field(108, b"0000000\0"); // uid
    field(116, b"0000000\0"); // gid
    field(124, format!("{:011o}\0", contents.len()).as_bytes());
    field(136, b"00000000000\0"); // mtime
    field(148, b"        "); // the checksum counts itself as spaces
    field(156, b"0"); // regular file
    field(257, b"ustar\0");
    field(263, b"00");
    let checksum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{checksum:06o}\0 ").as_bytes());
    let mut tar = header.to_vec();
    tar.extend_from_slice(contents);
    tar.resize(tar.len().next_multiple_of(512), 0);
    // Two zero blocks end the archive.
    tar.resize(tar.len() + 1024, 0);
    tar
}

/// A gzip member holding `data` in stored (uncompressed) deflate blocks:
/// valid gzip for every reader, without a compression dependency.
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut chunks = data.chunks(0xffff).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none())); // BFINAL, BTYPE=00
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// CRC-32 (IEEE), as gzip's trailer wants it.
fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (n, entry) in (0u32..).zip(table.iter_mut()) {
        *entry = (0..8).fold(n, |c, _| {
            if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            }
        });
    }
    !data.iter().fold(!0u32, |crc, &b| {
        table[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8)
    })
}

/// Deterministic filler bytes, different for each `seed`.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

// ---- reading what clients wrote -------------------------------------------

/// An OCI image layout a client wrote.
#[derive(Debug)]
pub struct Layout {
    pub dir: PathBuf,
    pub index_json: Value,
}

impl Layout {
    pub fn open(dir: &Path) -> Layout {
        let raw = std::fs::read(dir.join("index.json")).expect("layout has index.json");
        Layout {
            dir: dir.to_owned(),
            index_json: serde_json::from_slice(&raw).expect("index.json is JSON"),
        }
    }

    /// The descriptor `index.json` holds for `ref_name`.
    pub fn descriptor(&self, ref_name: &str) -> &Value {
        self.index_json["manifests"]
            .as_array()
            .expect("index.json has manifests")
            .iter()
            .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == ref_name)
            .unwrap_or_else(|| panic!("no {ref_name} in {}", self.index_json))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_file()
    }

    /// A blob's bytes, checked against its digest.
    pub fn blob(&self, digest: &str) -> Vec<u8> {
        let bytes =
            std::fs::read(self.blob_path(digest)).unwrap_or_else(|e| panic!("blob {digest}: {e}"));
        assert_eq!(
            sha256_digest(&bytes),
            digest,
            "blob file content matches its name"
        );
        bytes
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir.join("blobs/sha256").join(hex_of(digest))
    }
}
