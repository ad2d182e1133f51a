//! Helpers for the publishing tests: building the real `rbee-pusher` and
//! `hello-worker-rbee` binaries, a release fixture made from the example
//! worker, running the pusher (as a process or through its library), the
//! registry a test body runs against (ours or CNCF Distribution) and the
//! macro that runs a body on both, reading what was published over plain
//! HTTP, and unpacking the tar.gz.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use rbee_pusher::PushError;
use rbee_pusher::auth::Credentials;
use rbee_pusher::client::{RegistryClient, RetryPolicy};
use rbee_pusher::progress::Reporter;
use rbee_pusher::publish::{PublishOptions, PublishSummary, publish};
use rbee_pusher::release::{Release, ReleaseFiles};
use rbee_registry::{Action, Event};
use serde_json::Value;

use super::distribution::Distribution;
use super::{OCI_INDEX, OCI_MANIFEST, TestRegistry, pseudo_random, sha256_digest};

/// The repository the example worker is published to.
pub const REPO: &str = "rbee/hello-worker-rbee-cpu";
/// The catalog index artifact's repository.
pub const CATALOG_REPO: &str = "rbee/catalog";
pub const WORKER_TYPE: &str = "application/vnd.rbee.worker.v1";
pub const WORKER_METADATA: &str = "application/vnd.rbee.worker.metadata.v1+json";
pub const WORKER_LAYER: &str = "application/vnd.rbee.worker.layer.v1.tar+gzip";
pub const PKGBUILD_TYPE: &str = "application/vnd.rbee.pkgbuild.v1";
pub const CATALOG_TYPE: &str = "application/vnd.rbee.catalog.v1";
pub const TITLE: &str = "org.opencontainers.image.title";

/// The longest one pusher run may take.
const PUSHER_TIMEOUT: Duration = Duration::from_secs(60);

/// The example worker's platforms: rbee name, OCI os, OCI architecture.
pub const PLATFORMS: [(&str, &str, &str); 4] = [
    ("linux-x86_64", "linux", "amd64"),
    ("linux-aarch64", "linux", "arm64"),
    ("macos-aarch64", "darwin", "arm64"),
    ("windows-x86_64", "windows", "amd64"),
];

/// The rbee name of the platform these tests run on, when the example
/// worker lists it (its build is then the real, runnable binary).
pub fn host_platform() -> Option<&'static str> {
    let name = match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => "linux-x86_64",
        ("linux", "aarch64") => "linux-aarch64",
        ("macos", "aarch64") => "macos-aarch64",
        ("windows", "x86_64") => "windows-x86_64",
        _ => return None,
    };
    Some(name)
}

// ---- the binaries --------------------------------------------------------

/// The real binaries, built by cargo from this workspace.
#[derive(Debug)]
pub struct Binaries {
    /// `rbee-pusher`.
    pub pusher: PathBuf,
    /// `rbee-worker`, the client's CLI.
    pub rbee_worker: PathBuf,
    /// `hello-worker-rbee`, the example worker.
    pub hello_worker: PathBuf,
}

/// Builds `rbee-pusher`, `rbee-worker` and `hello-worker-rbee` once per
/// test binary.
///
/// A test crate cannot see another package's `CARGO_BIN_EXE_*`, so this
/// runs `cargo build` and reads the `executable` paths from its JSON
/// messages: that honours `CARGO_TARGET_DIR` and any other target
/// directory setting without guessing. Cargo releases its build lock
/// before it runs tests, and after `cargo test` compiled the pusher the
/// build is a quick no-op or a link.
pub async fn binaries() -> &'static Binaries {
    static BINARIES: OnceLock<Binaries> = OnceLock::new();
    tokio::task::spawn_blocking(|| BINARIES.get_or_init(build_binaries))
        .await
        .expect("building the binaries")
}

fn build_binaries() -> Binaries {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = workspace_root().join("Cargo.toml");
    let out = std::process::Command::new(cargo)
        .arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .args([
            "-p",
            "rbee-pusher",
            "-p",
            "rbee-worker-client",
            "-p",
            "hello-worker-rbee",
            "--bins",
        ])
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null())
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo build failed\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let executable = |name: &str| -> PathBuf {
        stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .unwrap_or_else(|| panic!("cargo built no executable named {name}"))
    };
    Binaries {
        pusher: executable("rbee-pusher"),
        rbee_worker: executable("rbee-worker"),
        hello_worker: executable("hello-worker-rbee"),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the workspace")
        .to_owned()
}

/// `examples/hello-worker`: metadata.json, PKGBUILD, LICENSE, README.md,
/// release.toml.
pub fn example_dir() -> PathBuf {
    workspace_root().join("examples/hello-worker")
}

// ---- a release on disk ---------------------------------------------------

/// A copy of the example release at some version, with a small stand-in
/// build per platform, that a test can change file by file.
#[derive(Debug)]
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub version: String,
    pub metadata: PathBuf,
    pub pkgbuild: PathBuf,
    pub license: PathBuf,
    pub readme: PathBuf,
    /// `(platform, path)`, in [`PLATFORMS`] order.
    pub builds: Vec<(String, PathBuf)>,
}

impl Fixture {
    /// The example release at `version` (metadata `version` and
    /// `source.tag`, PKGBUILD `pkgver` changed to match), with distinct
    /// pseudo-random stand-in builds of a few KiB.
    pub fn new(version: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("fixture dir");
        let example = example_dir();
        let mut metadata: Value = serde_json::from_slice(
            &std::fs::read(example.join("metadata.json")).expect("example metadata"),
        )
        .expect("example metadata is JSON");
        metadata["version"] = version.into();
        metadata["source"]["tag"] = format!("v{version}").into();
        let metadata_path = dir.path().join("metadata.json");
        std::fs::write(
            &metadata_path,
            serde_json::to_vec_pretty(&metadata).unwrap(),
        )
        .unwrap();
        let pkgbuild = std::fs::read_to_string(example.join("PKGBUILD")).expect("example PKGBUILD");
        assert!(pkgbuild.contains("\npkgver=0.1.0\n"), "{pkgbuild}");
        let pkgbuild_path = dir.path().join("PKGBUILD");
        std::fs::write(
            &pkgbuild_path,
            pkgbuild.replace("\npkgver=0.1.0\n", &format!("\npkgver={version}\n")),
        )
        .unwrap();
        let license = dir.path().join("LICENSE");
        std::fs::copy(example.join("LICENSE"), &license).unwrap();
        let readme = dir.path().join("README.md");
        std::fs::copy(example.join("README.md"), &readme).unwrap();
        let builds = PLATFORMS
            .iter()
            .map(|(platform, _, _)| {
                let path = dir.path().join(format!("build-{platform}"));
                std::fs::write(&path, stand_in(platform, 0)).unwrap();
                make_executable(&path);
                ((*platform).to_owned(), path)
            })
            .collect();
        Fixture {
            dir,
            version: version.to_owned(),
            metadata: metadata_path,
            pkgbuild: pkgbuild_path,
            license,
            readme,
            builds,
        }
    }

    /// The build file of `platform`.
    pub fn build(&self, platform: &str) -> &Path {
        &self
            .builds
            .iter()
            .find(|(p, _)| p == platform)
            .unwrap_or_else(|| panic!("no build for {platform}"))
            .1
    }

    /// Replaces the build of `platform` with `bytes`.
    pub fn set_build(&self, platform: &str, bytes: &[u8]) {
        std::fs::write(self.build(platform), bytes).unwrap();
    }

    /// Changes the metadata document with `edit`.
    pub fn edit_metadata(&self, edit: impl FnOnce(&mut Value)) {
        let mut metadata: Value =
            serde_json::from_slice(&std::fs::read(&self.metadata).unwrap()).unwrap();
        edit(&mut metadata);
        std::fs::write(
            &self.metadata,
            serde_json::to_vec_pretty(&metadata).unwrap(),
        )
        .unwrap();
    }

    /// The release as `rbee-pusher` flags.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--metadata".to_owned(),
            path_arg(&self.metadata),
            "--pkgbuild".to_owned(),
            path_arg(&self.pkgbuild),
            "--license".to_owned(),
            path_arg(&self.license),
            "--readme".to_owned(),
            path_arg(&self.readme),
        ];
        for (platform, path) in &self.builds {
            args.push("--platform".to_owned());
            args.push(format!("{platform}={}", path.display()));
        }
        args
    }

    /// The release as the library takes it.
    pub fn files(&self) -> ReleaseFiles {
        ReleaseFiles {
            metadata: self.metadata.clone(),
            builds: self.builds.clone(),
            pkgbuild: Some(self.pkgbuild.clone()),
            license: Some(self.license.clone()),
            readme: Some(self.readme.clone()),
        }
    }
}

/// Builds are executables: `rbee-pusher validate` checks the mode.
fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A stand-in build of `platform`: recognisable text, then 8 KiB of
/// incompressible bytes, different for every platform and `generation`
/// (0 for the fixture's builds; a higher one for a changed build).
pub fn stand_in(platform: &str, generation: u64) -> Vec<u8> {
    let index = PLATFORMS
        .iter()
        .position(|p| p.0 == platform)
        .unwrap_or_else(|| panic!("unknown platform {platform}"));
    let mut bytes =
        format!("stand-in build of hello-worker-rbee for {platform} ({generation})\n").into_bytes();
    bytes.extend(pseudo_random(1 + index as u64 + 16 * generation, 8 << 10));
    bytes
}

pub fn path_arg(path: &Path) -> String {
    path.to_str().expect("UTF-8 path").to_owned()
}

// ---- running the pusher --------------------------------------------------

/// What a finished `rbee-pusher` run printed, and its exit code.
#[derive(Debug)]
pub struct PusherRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl PusherRun {
    /// stdout parsed as JSON (the `--json` summary).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("expected JSON on stdout: {e}\n{self:?}"))
    }

    /// Asserts the exit code, showing everything printed when it differs.
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "rbee-pusher exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs the real `rbee-pusher` with `args` and `env`. It never sees the
/// machine's `~/.docker/config.json` (`DOCKER_CONFIG` points at an empty
/// directory unless `env` sets it) nor a proxy for 127.0.0.1.
pub async fn pusher(args: &[&str], env: &[(&str, &str)]) -> PusherRun {
    let bins = binaries().await;
    let no_docker_config = tempfile::tempdir().unwrap();
    let line = format!("rbee-pusher {}", args.join(" "));
    eprintln!("+ {line}");
    let mut cmd = tokio::process::Command::new(&bins.pusher);
    cmd.args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("DOCKER_CONFIG", no_docker_config.path())
        .env_remove("RBEE_PUSHER_USERNAME")
        .env_remove("RBEE_PUSHER_PASSWORD")
        .env_remove("RBEE_REGISTRY_USERNAME")
        .env_remove("RBEE_REGISTRY_PASSWORD")
        .env_remove("SOURCE_DATE_EPOCH")
        // These tests read the layers as tar.gz; zstd layers have their
        // own tests (`pusher_streaming.rs`). `env` may override it.
        .env("RBEE_PUSHER_COMPRESSION", "gzip");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(PUSHER_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("`{line}` did not finish within {PUSHER_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("`{line}` could not start: {e}"));
    let run = PusherRun {
        code: out.status.code().expect("rbee-pusher exited, not killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("{}", run.stderr);
    run
}

/// `rbee-pusher push --registry <url> <args> --json`, expecting success;
/// returns the summary.
pub async fn push_json(url: &str, args: &[String]) -> Value {
    let mut all = vec!["push", "--registry", url];
    all.extend(args.iter().map(String::as_str));
    all.push("--json");
    pusher(&all, &[]).await.expect_code(0).json()
}

/// Publishes `fixture` through the pusher's library, anonymously, with a
/// fixed `created` time and quick retries.
pub async fn publish_with_library(
    url: &str,
    fixture: &Fixture,
    force: bool,
) -> Result<PublishSummary, PushError> {
    let release = Release::load(&fixture.files())?;
    let client = RegistryClient::new(
        reqwest::Url::parse(url).expect("registry URL"),
        Credentials::anonymous(),
        RetryPolicy {
            attempts: 2,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
        },
    )?;
    let opts = PublishOptions {
        namespace: None,
        catalog_repository: CATALOG_REPO.to_owned(),
        force,
        dry_run: false,
        // Gzip, as these tests read the layers; zstd: `pusher_streaming.rs`.
        compression: rbee_pusher::publish::Compression::Gzip(6),
        created: "2026-01-01T00:00:00Z".to_owned(),
    };
    publish(&client, &release, &opts, &Reporter::new(true)).await
}

// ---- the registry under test ---------------------------------------------

/// Generates `mod <body> { fn ours(); fn distribution(); }`, two tests
/// that run the async fn `<body>(UnderTest)` against each registry.
/// Distribution is skipped locally (and fails the test in CI) when it is
/// not installed.
// Only the publishing tests run bodies on both registries; the other test
// binaries compile this module without using the macro or its `use`.
#[allow(unused_macros)]
macro_rules! on_both_registries {
    ($($body:ident),* $(,)?) => {$(
        mod $body {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ours() {
                super::$body($crate::common::publishing::UnderTest::ours().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn distribution() {
                if let Some(reg) = $crate::common::publishing::UnderTest::distribution().await {
                    super::$body(reg).await;
                }
            }
        }
    )*};
}
#[allow(unused_imports)]
pub(crate) use on_both_registries;

/// The registry a shared test body runs against.
#[derive(Debug)]
pub enum UnderTest {
    /// Ours, in-process: it has the referrers API and an event bus.
    Ours(TestRegistry),
    /// CNCF Distribution 2.8: no referrers API.
    Distribution(Distribution, tempfile::TempDir),
}

/// A manifest as served.
#[derive(Debug)]
pub struct Served {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
    pub json: Value,
}

impl UnderTest {
    pub async fn ours() -> UnderTest {
        UnderTest::Ours(TestRegistry::start().await)
    }

    /// CNCF Distribution; `None` when it is not installed (skipped
    /// locally, a failure in CI).
    pub async fn distribution() -> Option<UnderTest> {
        let registry = Distribution::start().await?;
        Some(UnderTest::Distribution(
            registry,
            tempfile::tempdir().unwrap(),
        ))
    }

    /// Wraps a Distribution started by the test (e.g. with auth).
    pub fn wrap(registry: Distribution) -> UnderTest {
        UnderTest::Distribution(registry, tempfile::tempdir().unwrap())
    }

    pub fn url(&self) -> &str {
        match self {
            UnderTest::Ours(r) => &r.url,
            UnderTest::Distribution(r, _) => &r.url,
        }
    }

    pub fn host(&self) -> &str {
        match self {
            UnderTest::Ours(r) => &r.host,
            UnderTest::Distribution(r, _) => &r.host,
        }
    }

    /// True for our registry, which serves the referrers API.
    pub fn has_referrers_api(&self) -> bool {
        matches!(self, UnderTest::Ours(_))
    }

    /// Scratch space for clients' configuration and output.
    pub fn scratch(&self) -> &Path {
        match self {
            UnderTest::Ours(r) => r.scratch.path(),
            UnderTest::Distribution(_, scratch) => scratch.path(),
        }
    }

    /// A new empty directory inside the scratch space.
    pub fn dir(&self, name: &str) -> PathBuf {
        let dir = self.scratch().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A subscription to our registry's events (`None` on Distribution).
    pub fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<Event>> {
        match self {
            UnderTest::Ours(r) => Some(r.running.registry.events().subscribe()),
            UnderTest::Distribution(..) => None,
        }
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let req = http.get(format!("{}{path}", self.url()));
        match self {
            UnderTest::Distribution(
                Distribution {
                    credentials: Some((user, password)),
                    ..
                },
                _,
            ) => req.basic_auth(user, Some(password)),
            _ => req,
        }
    }

    /// `GET /v2/<repo>/manifests/<reference>`; `None` on 404.
    pub async fn manifest(&self, repo: &str, reference: &str) -> Option<Served> {
        let resp = self
            .get(&format!("/v2/{repo}/manifests/{reference}"))
            .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
            .send()
            .await
            .expect("GET manifest");
        if resp.status() == 404 {
            return None;
        }
        assert_eq!(resp.status(), 200, "GET {repo}:{reference}");
        let media_type = super::header(&resp, "content-type");
        let bytes = resp.bytes().await.unwrap().to_vec();
        Some(Served {
            media_type,
            digest: sha256_digest(&bytes),
            json: serde_json::from_slice(&bytes).expect("manifest is JSON"),
            bytes,
        })
    }

    /// Like [`UnderTest::manifest`], failing when it is absent.
    pub async fn expect_manifest(&self, repo: &str, reference: &str) -> Served {
        self.manifest(repo, reference)
            .await
            .unwrap_or_else(|| panic!("{repo}:{reference} does not exist"))
    }

    /// `GET /v2/<repo>/blobs/<digest>`, checked against the digest.
    pub async fn blob(&self, repo: &str, digest: &str) -> Vec<u8> {
        let resp = self
            .get(&format!("/v2/{repo}/blobs/{digest}"))
            .send()
            .await
            .expect("GET blob");
        assert_eq!(resp.status(), 200, "GET blob {repo}@{digest}");
        let bytes = resp.bytes().await.unwrap().to_vec();
        assert_eq!(sha256_digest(&bytes), digest, "the blob matches its digest");
        bytes
    }

    /// The tags of `repo`, sorted (empty when the repository is unknown).
    pub async fn tags(&self, repo: &str) -> Vec<String> {
        let resp = self
            .get(&format!("/v2/{repo}/tags/list"))
            .send()
            .await
            .expect("GET tags");
        if resp.status() == 404 {
            return Vec::new();
        }
        let body: Value = resp.json().await.expect("tag list is JSON");
        let mut tags: Vec<String> = body["tags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        tags
    }

    /// Every tag of `repo` with the digest it points at.
    pub async fn tag_digests(&self, repo: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for tag in self.tags(repo).await {
            let digest = self.expect_manifest(repo, &tag).await.digest;
            out.push((tag, digest));
        }
        out
    }

    /// `GET /v2/_catalog`: the repositories that hold anything.
    pub async fn repositories(&self) -> Vec<String> {
        let resp = self.get("/v2/_catalog").send().await.expect("GET _catalog");
        assert_eq!(resp.status(), 200, "GET /v2/_catalog");
        let body: Value = resp.json().await.expect("catalog is JSON");
        body["repositories"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|r| r.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The catalog index document `rbee/catalog:latest` holds.
    pub async fn catalog_document(&self) -> Value {
        let manifest = self.expect_manifest(CATALOG_REPO, "latest").await;
        assert_eq!(manifest.json["artifactType"], CATALOG_TYPE);
        let layer = &manifest.json["layers"][0];
        assert_eq!(layer["annotations"][TITLE], "catalog.json");
        let bytes = self
            .blob(CATALOG_REPO, layer["digest"].as_str().unwrap())
            .await;
        serde_json::from_slice(&bytes).expect("catalog.json is JSON")
    }

    pub async fn stop(self) {
        if let UnderTest::Ours(r) = self {
            r.stop().await;
        }
    }
}

/// The push and delete events received so far (pulls and HEADs are
/// ignored: reading is allowed).
pub fn writes(events: &mut Option<tokio::sync::broadcast::Receiver<Event>>) -> Vec<Event> {
    let Some(events) = events else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while let Ok(event) = events.try_recv() {
        if matches!(event.action, Action::Push | Action::Delete) {
            out.push(event);
        }
    }
    out
}

// ---- reading the archives ------------------------------------------------

/// One entry of a tar archive.
#[derive(Debug)]
pub struct TarEntry {
    pub name: String,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub bytes: Vec<u8>,
}

/// The entries of a tar.gz, in archive order.
pub fn untar_gz(tar_gz: &[u8]) -> Vec<TarEntry> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tar_gz));
    archive
        .entries()
        .expect("a tar.gz")
        .map(|entry| {
            let mut entry = entry.expect("a tar entry");
            let header = entry.header().clone();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).expect("entry content");
            TarEntry {
                name: entry.path().unwrap().to_string_lossy().into_owned(),
                mode: header.mode().unwrap() & 0o7777,
                uid: header.uid().unwrap(),
                gid: header.gid().unwrap(),
                mtime: header.mtime().unwrap(),
                bytes,
            }
        })
        .collect()
}
