//! Helpers for the catalog API tests: the catalog server in-process on
//! `127.0.0.1:0` (embedded registry, or an external one such as CNCF
//! Distribution), publishing releases of the example worker to it, plain
//! HTTP calls that keep status, headers and body together (and a raw one
//! that sends a path byte for byte), reading the lists in a body, and the
//! normalisation that makes its JSON snapshot-stable.

use std::time::Duration;

use rbee_catalog::{CatalogConfig, RunningCatalog};
use rbee_pusher::auth::Credentials;
use rbee_pusher::client::{RegistryClient, RetryPolicy};
use rbee_pusher::progress::Reporter;
use rbee_pusher::publish::{PublishOptions, PublishSummary, publish};
use rbee_pusher::release::{Release, ReleaseFiles};
use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::publishing::{CATALOG_REPO, Fixture, PLATFORMS};

/// The example worker's id.
pub const WORKER: &str = "hello-worker-rbee-cpu";
/// The fixed `created` time of every release the helpers publish.
pub const CREATED: &str = "2026-01-01T00:00:00Z";

/// A catalog server with its own data directory.
#[derive(Debug)]
pub struct TestCatalog {
    running: RunningCatalog,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Where publishers push: the catalog itself when the registry is
    /// embedded, else the external registry.
    pub registry_url: String,
    pub http: reqwest::Client,
    _data: tempfile::TempDir,
}

impl TestCatalog {
    /// The default: the embedded registry under `/v2/`, default TTLs.
    pub async fn embedded() -> TestCatalog {
        TestCatalog::start(|_| {}).await
    }

    /// A catalog reading the registry at `registry_url` (e.g. CNCF
    /// Distribution), with `configure` applied on top.
    pub async fn external(
        registry_url: &str,
        configure: impl FnOnce(&mut CatalogConfig),
    ) -> TestCatalog {
        let registry_url = registry_url.to_owned();
        TestCatalog::start(move |config| {
            config.registry_url = Some(registry_url);
            configure(config);
        })
        .await
    }

    /// A catalog with the default configuration changed by `configure`.
    pub async fn start(configure: impl FnOnce(&mut CatalogConfig)) -> TestCatalog {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        TestCatalog::start_on(listener, configure).await
    }

    /// Like [`TestCatalog::start`], on a listener bound beforehand (so that
    /// a registry started first can be told the catalog's address).
    pub async fn start_on(
        listener: tokio::net::TcpListener,
        configure: impl FnOnce(&mut CatalogConfig),
    ) -> TestCatalog {
        let data = tempfile::tempdir().expect("catalog data dir");
        let mut config = CatalogConfig::new(data.path());
        // These tests publish anonymously over loopback: the development
        // switch (the access gate has its own tests, which leave it off).
        config.tokens.dev_open_loopback = true;
        configure(&mut config);
        let running = rbee_catalog::start(config, listener)
            .await
            .expect("the catalog starts");
        TestCatalog {
            url: running.url(),
            registry_url: running.state.registry_public_url.clone(),
            running,
            // A proxy from the environment must not see loopback traffic.
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("HTTP client"),
            _data: data,
        }
    }

    /// The server's shared state (its signer, its license store).
    pub fn state(&self) -> &std::sync::Arc<rbee_catalog::state::AppState> {
        &self.running.state
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.running.addr.to_string()
    }

    /// `GET <path>` (path and query).
    pub async fn get(&self, path: &str) -> Reply {
        self.get_with(path, &[]).await
    }

    /// `GET <path>` with extra request headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = self.http.get(format!("{}{path}", self.url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Reply::read(format!("GET {path}"), req).await
    }

    /// `<method> <path>` with a JSON body and optionally
    /// `Authorization: Bearer <bearer>`.
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: &Value,
    ) -> Reply {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .json(body);
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        Reply::read(format!("{method} {path}"), req).await
    }

    /// `GET <path>` written byte for byte on a fresh connection. Clients
    /// built on a URL parser resolve `.` and `..` segments, and `%2E%2E`
    /// with them, before anything is sent; this does not.
    pub async fn raw_get(&self, path: &str) -> Reply {
        raw_get(&self.host(), path).await
    }

    /// Publishes `fixture` to this catalog's registry.
    pub async fn publish(&self, fixture: &Fixture) -> PublishSummary {
        publish_files(&self.registry_url, &fixture.files()).await
    }

    /// Publishes the example worker at `version` to this catalog's
    /// registry, keeping the fixture (its builds are what was published).
    pub async fn publish_version(&self, version: &str) -> (Fixture, PublishSummary) {
        let fixture = Fixture::new(version);
        let summary = self.publish(&fixture).await;
        (fixture, summary)
    }

    /// Publishes premium worker `id` 1.0.0 (49 EUR at `purchase_url`) to
    /// this catalog's registry, anonymously over loopback; the fixture
    /// keeps its files.
    pub async fn publish_premium(&self, id: &str, purchase_url: &str) -> Fixture {
        let (fixture, files) = other_worker(id, "1.0.0", false);
        fixture.edit_metadata(|m| {
            m["distribution"]["requires_license"] = true.into();
            m["pricing"] = serde_json::json!({
                "amount": 49.0, "currency": "EUR", "purchase_url": purchase_url
            });
        });
        let summary = publish_files(&self.registry_url, &files).await;
        assert!(summary.repository.starts_with("rbee-premium/"));
        fixture
    }

    pub async fn stop(self) {
        self.running
            .stop()
            .await
            .expect("the catalog stops cleanly");
    }
}

/// Publishes `files` to the registry at `registry_url`, anonymously, with
/// the fixed [`CREATED`] time and quick retries; panics on failure.
pub async fn publish_files(registry_url: &str, files: &ReleaseFiles) -> PublishSummary {
    publish_files_as(registry_url, files, Credentials::anonymous()).await
}

/// [`publish_files`] with `credentials` (a publisher key, for a registry
/// that requires tokens).
pub async fn publish_files_as(
    registry_url: &str,
    files: &ReleaseFiles,
    credentials: Credentials,
) -> PublishSummary {
    let release = Release::load(files).expect("the release is valid");
    let client = RegistryClient::new(
        reqwest::Url::parse(registry_url).expect("registry URL"),
        credentials,
        RetryPolicy {
            attempts: 2,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
        },
    )
    .expect("registry client");
    let opts = PublishOptions {
        namespace: None,
        catalog_repository: CATALOG_REPO.to_owned(),
        force: false,
        dry_run: false,
        // Gzip, as these tests read the layers; zstd: `pusher_streaming.rs`.
        compression: rbee_pusher::publish::Compression::Gzip(6),
        created: CREATED.to_owned(),
    };
    publish(&client, &release, &opts, &Reporter::new(true))
        .await
        .unwrap_or_else(|e| panic!("publishing to {registry_url} failed: {e}"))
}

/// Publishes `id` 1.0.0 as a premium worker (49 EUR, a purchase URL) into
/// `catalog`'s embedded registry, with a publisher key for `rbee-premium`
/// and the catalog index minted in its store, as the token tests need it.
/// The fixture keeps the files.
pub async fn publish_premium(catalog: &RunningCatalog, id: &str) -> Fixture {
    let (_, key) = catalog
        .state
        .store
        .create_publisher_key(
            "test",
            rbee_store::NewPublisherKey {
                owner: "ci".into(),
                grants: vec![
                    rbee_store::Grant::Namespace("rbee-premium".into()),
                    rbee_store::Grant::Worker("catalog".into()),
                ],
            },
        )
        .await
        .unwrap();
    let (fixture, files) = other_worker(id, "1.0.0", false);
    fixture.edit_metadata(|m| {
        m["distribution"]["requires_license"] = true.into();
        m["pricing"] = serde_json::json!({
            "amount": 49.0, "currency": "EUR", "purchase_url": "https://rbee.dev/buy"
        });
    });
    publish_files_as(
        &catalog.url(),
        &files,
        Credentials::basic("ci", key.expose()),
    )
    .await;
    fixture
}

/// A second worker, `id` (same backend, platforms and builds as the
/// example), with or without a PKGBUILD. The fixture keeps the files.
pub fn other_worker(id: &str, version: &str, with_pkgbuild: bool) -> (Fixture, ReleaseFiles) {
    let fixture = Fixture::new(version);
    fixture.edit_metadata(|m| {
        m["id"] = id.into();
        m["name"] = format!("{id} (test)").into();
        m["binary_name"] = id.into();
        m["install_path"] = format!("/usr/local/bin/{id}").into();
    });
    if with_pkgbuild {
        let text = std::fs::read_to_string(&fixture.pkgbuild).unwrap();
        std::fs::write(
            &fixture.pkgbuild,
            text.replace("pkgname=hello-worker-rbee-cpu", &format!("pkgname={id}")),
        )
        .unwrap();
    }
    let mut files = fixture.files();
    if !with_pkgbuild {
        files.pkgbuild = None;
    }
    (fixture, files)
}

/// The example worker's platforms, in the catalog's (and the fixture's) order.
pub fn platform_names() -> Vec<&'static str> {
    PLATFORMS.iter().map(|p| p.0).collect()
}

// ---- replies --------------------------------------------------------------

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// What was asked, for messages.
    pub request: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    async fn read(request: String, req: reqwest::RequestBuilder) -> Reply {
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{request}: {e}"));
        Reply {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp
                .bytes()
                .await
                .unwrap_or_else(|e| panic!("{request}: body: {e}"))
                .to_vec(),
            request,
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header as text ("" when absent).
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    /// The body as JSON, which it must be.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: expected JSON ({e}), got {} {:?}",
                self.request,
                self.status,
                self.text()
            )
        })
    }

    /// The body deserialised into `T`.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: does not deserialise into {}: {e}\n{}",
                self.request,
                std::any::type_name::<T>(),
                self.text()
            )
        })
    }

    /// Asserts the status, showing the body when it differs.
    pub fn expect(self, status: u16) -> Reply {
        assert_eq!(
            self.status,
            status,
            "{}: status; body: {}",
            self.request,
            self.text()
        );
        self
    }

    /// Asserts a 200 with a JSON body and returns the body.
    pub fn ok_json(self) -> Value {
        let reply = self.expect(200);
        assert!(
            reply.header("content-type").starts_with("application/json"),
            "{}: content-type {:?}",
            reply.request,
            reply.header("content-type")
        );
        reply.json()
    }

    /// Asserts a JSON error `{"error", "message"}` with `status` (and the
    /// title `error` when given) and returns the body.
    pub fn error(self, status: u16, error: Option<&str>) -> Value {
        let reply = self.expect(status);
        assert!(
            reply.header("content-type").starts_with("application/json"),
            "{}: an error must be JSON; content-type {:?}, body {:?}",
            reply.request,
            reply.header("content-type"),
            reply.text()
        );
        let body = reply.json();
        assert!(
            body["error"].as_str().is_some_and(|s| !s.is_empty()),
            "{}: no `error` in {body}",
            reply.request
        );
        assert!(
            body["message"].as_str().is_some_and(|s| !s.is_empty()),
            "{}: no `message` in {body}",
            reply.request
        );
        if let Some(error) = error {
            assert_eq!(body["error"], error, "{}: {body}", reply.request);
        }
        body
    }
}

/// `GET <path>` on `host` over a plain TCP connection, the request line
/// exactly as given.
pub async fn raw_get(host: &str, path: &str) -> Reply {
    let request = format!("GET {path}");
    let mut tcp = tokio::net::TcpStream::connect(host)
        .await
        .unwrap_or_else(|e| panic!("{request}: connect: {e}"));
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw))
        .await
        .unwrap_or_else(|_| panic!("{request}: no answer"))
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "{request}: no header end in {:?}",
                String::from_utf8_lossy(&raw)
            )
        });
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{request}: bad status line in {head:?}"));
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Some((k, v)) = line.split_once(':')
            && let (Ok(k), Ok(v)) = (
                reqwest::header::HeaderName::from_bytes(k.trim().as_bytes()),
                reqwest::header::HeaderValue::from_str(v.trim()),
            )
        {
            headers.append(k, v);
        }
    }
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        request,
        status,
        headers,
        body,
    }
}

/// Decodes a chunked HTTP/1.1 body.
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("a chunk size");
        data = &data[end + 2..];
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
    out
}

// ---- reading bodies -------------------------------------------------------

/// The versions listed by `/v1/workers/:id/versions`, in order.
pub fn listed_versions(body: &Value) -> Vec<String> {
    body["versions"]
        .as_array()
        .expect("a versions array")
        .iter()
        .map(|v| v["version"].as_str().unwrap().to_owned())
        .collect()
}

// ---- snapshots --------------------------------------------------------------

/// Makes `value` stable across runs for a snapshot: every `sha256:<hex>`
/// becomes `sha256:[digest]` (also inside URLs and references) and every
/// `127.0.0.1:<port>` becomes `127.0.0.1:[port]`. Dates and sizes are left
/// to insta's redactions.
pub fn normalise(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(normalise_text(s)),
        Value::Array(items) => Value::Array(items.iter().map(normalise).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (normalise_text(k), normalise(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

pub fn normalise_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    loop {
        let digest = rest.find("sha256:").map(|i| (i, "sha256:"));
        let host = rest.find("127.0.0.1:").map(|i| (i, "127.0.0.1:"));
        let next = match (digest, host) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        };
        let Some((at, marker)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at + marker.len()]);
        rest = &rest[at + marker.len()..];
        let (class, keep): (fn(char) -> bool, &str) = if marker == "sha256:" {
            (|c| c.is_ascii_hexdigit(), "[digest]")
        } else {
            (|c| c.is_ascii_digit(), "[port]")
        };
        let len = rest.find(|c: char| !class(c)).unwrap_or(rest.len());
        if len > 0 {
            out.push_str(keep);
        }
        rest = &rest[len..];
    }
}
