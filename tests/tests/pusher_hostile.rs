//! The pusher against hostile or broken registries (issue 8): credentials
//! never leave the registry's origin (not to an upload `Location` on
//! another host, not across a redirect, not to a token realm nobody
//! trusted); a registry that stalls cannot hang it; an error answer of a
//! gigabyte costs 64 KiB.
//!
//! "Another host" is a second listener on 127.0.0.1: a different port is a
//! different origin. The hostile proxy forwards to a real registry, so a
//! publication can complete, and records which requests carried
//! `Authorization`.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use common::TestRegistry;
use common::publishing::{Fixture, REPO};
use futures_util::{StreamExt as _, TryStreamExt};
use rbee_pusher::PushError;
use rbee_pusher::auth::Credentials;
use rbee_pusher::client::{RegistryClient, RetryPolicy, Timeouts};
use rbee_pusher::progress::Reporter;
use rbee_pusher::publish::{PublishOptions, publish};
use rbee_pusher::release::Release;

const TOKEN: &str = "hostile-test-token";

fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("ci:s3cret")
    )
}

fn client(url: &str, credentials: Credentials) -> RegistryClient {
    RegistryClient::new(
        reqwest::Url::parse(url).unwrap(),
        credentials,
        RetryPolicy {
            attempts: 2,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(1),
        },
    )
    .unwrap()
}

fn options() -> PublishOptions {
    PublishOptions {
        namespace: None,
        catalog_repository: "rbee/catalog".into(),
        force: false,
        dry_run: false,
        compression: rbee_pusher::publish::Compression::Gzip(0),
        created: "2026-01-01T00:00:00Z".into(),
    }
}

// ---- the hostile proxy -----------------------------------------------------

/// How the registry origin asks for credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Challenge {
    /// `WWW-Authenticate: Basic`; expects `ci:s3cret`.
    Basic,
    /// `WWW-Authenticate: Bearer realm="<other>/token"`; expects [`TOKEN`].
    Bearer,
}

/// One request as a listener saw it.
#[derive(Debug, Clone)]
struct Seen {
    /// `registry` (the origin the pusher was given) or `other`.
    listener: &'static str,
    method: Method,
    path: String,
    authorization: Option<String>,
}

struct Shared {
    upstream: String,
    registry: String,
    other: String,
    challenge: Challenge,
    /// Upload `Location`s point at the other host.
    move_uploads: bool,
    /// Blob GETs redirect to the other host, manifest GETs to `/r/...` on
    /// the registry's own origin.
    redirect_reads: bool,
    seen: Mutex<Vec<Seen>>,
    http: reqwest::Client,
}

struct Hostile {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Hostile {
    async fn start(
        upstream: &str,
        challenge: Challenge,
        move_uploads: bool,
        redirect_reads: bool,
    ) -> Hostile {
        let registry = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            registry: format!("http://{}", registry.local_addr().unwrap()),
            other: format!("http://{}", other.local_addr().unwrap()),
            challenge,
            move_uploads,
            redirect_reads,
            seen: Mutex::new(Vec::new()),
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        });
        let mut tasks = Vec::new();
        for (listener, who) in [(registry, "registry"), (other, "other")] {
            let app = axum::Router::new()
                .fallback(handle)
                .with_state((shared.clone(), who));
            tasks.push(tokio::spawn(async move {
                axum::serve(listener, app).await.unwrap();
            }));
        }
        Hostile { shared, tasks }
    }

    fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// `127.0.0.1:PORT` of the other host.
    fn other_host(&self) -> String {
        self.shared.other.trim_start_matches("http://").to_owned()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn status(code: StatusCode) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = code;
    resp
}

fn redirect(to: String) -> Response {
    let mut resp = status(StatusCode::TEMPORARY_REDIRECT);
    resp.headers_mut()
        .insert("location", to.parse().expect("a header value"));
    resp
}

async fn handle(
    State((shared, who)): State<(Arc<Shared>, &'static str)>,
    req: Request,
) -> Response {
    let method = req.method().clone();
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    shared.seen.lock().unwrap().push(Seen {
        listener: who,
        method: method.clone(),
        path: pq.clone(),
        authorization: authorization.clone(),
    });
    if who == "other" {
        if req.uri().path() == "/token" {
            return Response::new(Body::from(format!(r#"{{"token":"{TOKEN}"}}"#)));
        }
        return forward(&shared, req, &pq).await;
    }
    if let Some(rest) = pq.strip_prefix("/r/") {
        // A read redirected within the registry's origin.
        let rest = format!("/{rest}");
        return forward(&shared, req, &rest).await;
    }
    let expected = match shared.challenge {
        Challenge::Basic => basic(),
        Challenge::Bearer => format!("Bearer {TOKEN}"),
    };
    if authorization.as_deref() != Some(expected.as_str()) {
        let mut resp = status(StatusCode::UNAUTHORIZED);
        let challenge = match shared.challenge {
            Challenge::Basic => r#"Basic realm="hostile""#.to_owned(),
            Challenge::Bearer => {
                format!(r#"Bearer realm="{}/token",service="hostile""#, shared.other)
            }
        };
        resp.headers_mut()
            .insert("www-authenticate", challenge.parse().unwrap());
        return resp;
    }
    if shared.redirect_reads && method == Method::GET {
        if pq.contains("/blobs/sha256:") {
            return redirect(format!("{}{pq}", shared.other));
        }
        if pq.contains("/manifests/") {
            return redirect(format!("/r{pq}"));
        }
    }
    let mut resp = forward(&shared, req, &pq).await;
    if shared.move_uploads
        && resp.status() == StatusCode::ACCEPTED
        && let Some(location) = resp.headers().get("location").and_then(|v| v.to_str().ok())
    {
        let path = match reqwest::Url::parse(location) {
            Ok(url) => format!("{}?{}", url.path(), url.query().unwrap_or("")),
            Err(_) => location.to_owned(),
        };
        let moved = format!("{}{path}", shared.other);
        resp.headers_mut()
            .insert("location", moved.parse().unwrap());
    }
    resp
}

/// Forwards `req` to the real registry (anonymously: it allows that) and
/// streams the answer back.
async fn forward(shared: &Shared, req: Request, pq: &str) -> Response {
    let mut out = shared
        .http
        .request(req.method().clone(), format!("{}{pq}", shared.upstream));
    for (name, value) in req.headers() {
        if name != "host" && name != "authorization" {
            out = out.header(name, value);
        }
    }
    let body = reqwest::Body::wrap_stream(req.into_body().into_data_stream());
    let upstream = out.body(body).send().await.expect("the registry answers");
    let mut resp = Response::builder().status(upstream.status().as_u16());
    for (name, value) in upstream.headers() {
        resp = resp.header(name, value);
    }
    resp.body(Body::from_stream(
        upstream.bytes_stream().map_err(std::io::Error::other),
    ))
    .unwrap()
}

// ---- credentials -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_leave_the_registry_origin() {
    let reg = TestRegistry::start().await;
    let hostile = Hostile::start(&reg.url, Challenge::Basic, true, true).await;
    let fixture = Fixture::new("0.1.0");
    let release = Release::load(&fixture.files()).unwrap();
    let client = client(&hostile.shared.registry, Credentials::basic("ci", "s3cret"));
    let summary = publish(&client, &release, &options(), &Reporter::new(true))
        .await
        .expect("published through the hostile registry");

    let seen = hostile.seen();
    let shown = |s: &&Seen| format!("{} {} {}", s.listener, s.method, s.path);
    // The registry's origin got the credentials...
    assert!(
        seen.iter()
            .any(|s| s.listener == "registry" && s.authorization == Some(basic()))
    );
    // ...the other host got the uploads and the redirected blob reads,
    // and never a credential (the pusher sent Basic to every moved
    // upload before: five times per release).
    let other: Vec<&Seen> = seen.iter().filter(|s| s.listener == "other").collect();
    assert!(
        other
            .iter()
            .any(|s| s.method == Method::PUT && s.path.contains("/blobs/uploads/")),
        "{:?}",
        other.iter().map(shown).collect::<Vec<_>>()
    );
    assert!(
        other
            .iter()
            .any(|s| s.method == Method::GET && s.path.contains("/blobs/sha256:"))
    );
    let leaked: Vec<String> = other
        .iter()
        .filter(|s| s.authorization.is_some())
        .map(shown)
        .collect();
    assert!(
        leaked.is_empty(),
        "credentials sent to another origin: {leaked:?}"
    );
    // A redirect within the registry's origin is followed without them too.
    let redirected: Vec<&Seen> = seen.iter().filter(|s| s.path.starts_with("/r/")).collect();
    assert!(!redirected.is_empty());
    let leaked: Vec<String> = redirected
        .iter()
        .filter(|s| s.authorization.is_some())
        .map(shown)
        .collect();
    assert!(
        leaked.is_empty(),
        "credentials sent across a redirect: {leaked:?}"
    );

    let resp = reg.get_manifest(REPO, "0.1.0").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        common::header(&resp, "docker-content-digest"),
        summary.index_digest
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_realm_on_another_origin_gets_credentials_only_when_trusted() {
    let reg = TestRegistry::start().await;
    let hostile = Hostile::start(&reg.url, Challenge::Bearer, false, false).await;
    let fixture = Fixture::new("0.1.0");
    let release = Release::load(&fixture.files()).unwrap();

    // Plain http, another port: not trusted, so refused with the flag
    // that would trust it, and nothing was sent there.
    let untrusted = client(&hostile.shared.registry, Credentials::basic("ci", "s3cret"));
    let err = publish(&untrusted, &release, &options(), &Reporter::new(true))
        .await
        .unwrap_err();
    assert!(matches!(err, PushError::Auth(_)), "{err}");
    assert_eq!(err.exit_code(), 6);
    let message = err.to_string();
    assert!(
        message.contains("--trust-token-realm") && message.contains(&hostile.other_host()),
        "{message}"
    );
    assert!(
        hostile
            .seen()
            .iter()
            .all(|s| s.listener == "registry" || s.authorization.is_none()),
        "{:?}",
        hostile.seen()
    );

    // Trusted by the publisher: the token service gets them, once per
    // scope, and the release is published with the token.
    let trusted = client(&hostile.shared.registry, Credentials::basic("ci", "s3cret"))
        .trust_token_realms([hostile.other_host()]);
    publish(&trusted, &release, &options(), &Reporter::new(true))
        .await
        .expect("published with a trusted token realm");
    let token_requests: Vec<Seen> = hostile
        .seen()
        .into_iter()
        .filter(|s| s.listener == "other")
        .collect();
    assert!(!token_requests.is_empty());
    assert!(
        token_requests
            .iter()
            .all(|s| s.path.starts_with("/token?") && s.authorization == Some(basic())),
        "{token_requests:?}"
    );
    assert_eq!(reg.get_manifest(REPO, "0.1.0").await.status(), 200);
}

// ---- stalls and huge answers -------------------------------------------------

/// Short budgets, so that a stall fails the request in about a second.
fn impatient(url: &str) -> RegistryClient {
    client(url, Credentials::anonymous())
        .with_timeouts(Timeouts {
            connect: Duration::from_secs(2),
            read_idle: Duration::from_secs(1),
            request: Duration::from_secs(3),
        })
        .unwrap()
}

/// A registry that answers manifest GETs with headers and then nothing,
/// takes uploads and never reads them, and refuses manifest PUTs with an
/// endless error body; `sent` counts the 1 MiB pieces of that body it
/// produced.
async fn broken_registry(sent: Arc<AtomicUsize>) -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().fallback(move |req: Request| {
        let sent = sent.clone();
        async move {
            let path = req.uri().path().to_owned();
            match (req.method().clone(), path) {
                (Method::GET, p) if p.contains("/manifests/") => Response::builder()
                    .header("content-type", "application/vnd.oci.image.index.v1+json")
                    .header("content-length", "1000")
                    .body(Body::from_stream(futures_util::stream::pending::<
                        Result<Bytes, std::io::Error>,
                    >()))
                    .unwrap(),
                (Method::POST, p) if p.ends_with("/blobs/uploads/") => Response::builder()
                    .status(StatusCode::ACCEPTED)
                    .header("location", "/upload/stalled")
                    .body(Body::empty())
                    .unwrap(),
                // Never reads the body, never answers.
                (Method::PUT, p) if p.starts_with("/upload/") => {
                    std::future::pending::<()>().await;
                    unreachable!()
                }
                (Method::PUT, p) if p.contains("/manifests/") => {
                    // 256 MiB of error body, produced only as it is read.
                    let piece = Bytes::from(vec![b'x'; 1 << 20]);
                    let body = futures_util::stream::iter(0..256).map(move |_| {
                        sent.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, std::io::Error>(piece.clone())
                    });
                    Response::builder()
                        .status(StatusCode::BAD_REQUEST)
                        .body(Body::from_stream(body))
                        .unwrap()
                }
                _ => status(StatusCode::NOT_FOUND),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, task)
}

/// Runs `fut`, failing the test if it takes 30 s (it hung before).
async fn bounded<T>(fut: impl std::future::Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .expect("the pusher hung on a stalled registry");
    (out, started.elapsed())
}

#[tokio::test]
async fn a_registry_that_stalls_after_headers_times_out() {
    let (url, task) = broken_registry(Arc::default()).await;
    let client = impatient(&url);
    let (result, took) = bounded(client.get_manifest("rbee/x", "0.1.0", true)).await;
    let err = result.unwrap_err();
    assert!(matches!(err, PushError::Registry(_)), "{err}");
    // Two attempts, each cut off by the 1 s idle or 3 s total budget.
    assert!(took < Duration::from_secs(10), "{took:?}");
    task.abort();
}

#[tokio::test]
async fn an_upload_the_registry_stops_reading_times_out() {
    let (url, task) = broken_registry(Arc::default()).await;
    let client = impatient(&url);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    // More than the socket buffers hold, so the sender has to wait.
    let data = common::pseudo_random(7, 32 << 20);
    std::fs::write(&path, &data).unwrap();
    let digest = common::sha256_digest(&data);
    let upload = client.upload_file(
        "rbee/x",
        Path::new(&path),
        &digest,
        data.len() as u64,
        Arc::new(|_| {}),
    );
    let (result, took) = bounded(upload).await;
    let err = result.unwrap_err();
    assert!(err.to_string().contains("read timeout"), "{err}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    task.abort();
}

#[tokio::test]
async fn a_huge_error_body_is_read_only_up_to_a_cap() {
    let sent = Arc::new(AtomicUsize::new(0));
    let (url, task) = broken_registry(sent.clone()).await;
    let client = impatient(&url);
    let (result, _) = bounded(client.put_manifest(
        "rbee/x",
        "0.1.0",
        "application/vnd.oci.image.index.v1+json",
        Bytes::from_static(b"{}"),
    ))
    .await;
    let err = result.unwrap_err();
    assert!(matches!(err, PushError::Rejected(_)), "{err}");
    assert!(err.to_string().len() < 400, "{err}");
    // The pusher read 64 KiB and hung up: the server produced a few
    // pieces for the socket buffers, not the 256 MiB it had (it produced
    // all of them before).
    let produced = sent.load(Ordering::SeqCst);
    assert!(
        produced < 32,
        "{produced} MiB of the error body were produced"
    );
    task.abort();
}
