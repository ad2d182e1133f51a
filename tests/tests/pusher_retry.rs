//! The pusher's one retry policy (issue 10), counted against a scripted
//! peer: a storm of 503s stops at the attempt cap, for a request, a blob
//! upload and each chunk of a chunked upload alike (not the product of
//! nested loops); a 429's `Retry-After` is waited out, but never past the
//! longest delay; a 400 is not retried; a chunked upload whose session the
//! registry forgot goes on in a new one.
//!
//! Delays are measured only from below (a wait is at least what was asked
//! for), never from above: a slow machine cannot make these tests fail.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::Method;
use axum::response::Response;
use bytes::Bytes;
use rbee_pusher::PushError;
use rbee_pusher::auth::Credentials;
use rbee_pusher::client::{RegistryClient, RetryPolicy};

const ATTEMPTS: u32 = 3;

/// One request as the peer saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    at: Instant,
}

/// How the peer answers a request (its method, path, and how many requests
/// of that method it has seen, this one included): status, `Retry-After`
/// seconds, body.
type Script = fn(&Method, &str, usize) -> (u16, Option<u64>, &'static str);

/// A registry that answers from `script` and writes down every request.
struct Peer {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Peer {
    async fn start(script: Script) -> Peer {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        let app = axum::Router::new().fallback(move |req: Request| {
            let log = log.clone();
            async move {
                let method = req.method().clone();
                let path = req.uri().path().to_owned();
                // Read the whole body, as a registry would, before answering.
                let _ = axum::body::to_bytes(req.into_body(), 64 << 20).await;
                let nth = {
                    let mut log = log.lock().unwrap();
                    log.push(Seen {
                        method: method.clone(),
                        at: Instant::now(),
                    });
                    log.iter().filter(|s| s.method == method).count()
                };
                let (status, retry_after, body) = script(&method, &path, nth);
                let mut resp = Response::builder().status(status);
                if let Some(secs) = retry_after {
                    resp = resp.header("retry-after", secs.to_string());
                }
                if status == 202 {
                    resp = resp.header("location", "/v2/rbee/x/blobs/uploads/session");
                }
                if status == 204 {
                    resp = resp.header("range", "0-0");
                }
                resp.body(Body::from(body)).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Peer { url, seen, task }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self, method: Method) -> usize {
        self.seen().iter().filter(|s| s.method == method).count()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn client(url: &str, max_delay: Duration) -> RegistryClient {
    RegistryClient::new(
        reqwest::Url::parse(url).unwrap(),
        Credentials::anonymous(),
        RetryPolicy {
            attempts: ATTEMPTS,
            base_delay: Duration::from_millis(5),
            max_delay,
        },
    )
    .unwrap()
}

/// Uploads `size` pseudo-random bytes (from `seed`) as a blob of `rbee/x`.
async fn upload(client: &RegistryClient, seed: u64, size: usize) -> Result<(), PushError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    let data = common::pseudo_random(seed, size);
    std::fs::write(&path, &data).unwrap();
    let digest = common::sha256_digest(&data);
    client
        .upload_file(
            "rbee/x",
            Path::new(&path),
            &digest,
            data.len() as u64,
            Arc::new(|_| {}),
        )
        .await
}

/// Runs `fut`, failing the test if it takes a minute (a retry loop that
/// does not stop).
async fn bounded<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .expect("the retries did not stop")
}

fn assert_gave_up(err: &PushError, status: &str) {
    let text = err.to_string();
    assert!(matches!(err, PushError::Registry(_)), "{err:?}");
    assert!(text.contains(status), "{text}");
    assert!(
        text.contains(&format!("gave up after {ATTEMPTS} attempts")),
        "{text}"
    );
}

#[tokio::test]
async fn a_503_storm_stops_at_the_attempt_cap_with_a_clear_error() {
    let peer = Peer::start(|_, _, _| (503, None, "")).await;
    let client = client(&peer.url, Duration::from_millis(50));
    let err = bounded(client.get_manifest("rbee/x", "0.1.0", true))
        .await
        .unwrap_err();
    assert_gave_up(&err, "503");
    assert_eq!(peer.count(Method::GET), ATTEMPTS as usize);
}

#[tokio::test]
async fn a_blob_upload_in_a_503_storm_is_tried_attempts_times_in_all() {
    // Sessions open, but every upload PUT is refused: each attempt opens
    // a new session and sends the file once.
    let peer = Peer::start(|method, _, _| match *method {
        Method::POST => (202, None, ""),
        _ => (503, None, ""),
    })
    .await;
    let client = client(&peer.url, Duration::from_millis(50));
    let err = bounded(upload(&client, 1, 64 << 10)).await.unwrap_err();
    assert_gave_up(&err, "503");
    assert_eq!(peer.count(Method::POST), ATTEMPTS as usize);
    assert_eq!(peer.count(Method::PUT), ATTEMPTS as usize);
}

#[tokio::test]
async fn a_chunk_in_a_503_storm_is_tried_attempts_times_not_a_product_of_loops() {
    // The session opens and reports nothing received; every chunk is
    // refused. Before the fix this took up to attempts^3 requests.
    let peer = Peer::start(|method, _, _| match *method {
        Method::POST => (202, None, ""),
        Method::GET => (204, None, ""),
        _ => (503, None, ""),
    })
    .await;
    let client = client(&peer.url, Duration::from_millis(50)).with_chunking(1 << 10, 1 << 10);
    let err = bounded(upload(&client, 2, 8 << 10)).await.unwrap_err();
    assert_gave_up(&err, "503");
    // One session; the first chunk sent `ATTEMPTS` times, each retry after
    // asking where the upload stands; no restart of the whole upload.
    assert_eq!(peer.count(Method::POST), 1);
    assert_eq!(peer.count(Method::PATCH), ATTEMPTS as usize);
    assert_eq!(peer.count(Method::GET), ATTEMPTS as usize - 1);
}

#[tokio::test]
async fn a_429_is_retried_after_the_retry_after_it_names() {
    // Every manifest PUT is rate-limited for one second.
    let peer = Peer::start(|_, _, _| (429, Some(1), "")).await;
    let client = client(&peer.url, Duration::from_secs(5));
    let err = bounded(client.put_manifest(
        "rbee/x",
        "0.1.0",
        "application/vnd.oci.image.index.v1+json",
        Bytes::from_static(b"{}"),
    ))
    .await
    .unwrap_err();
    assert_gave_up(&err, "429");
    let seen = peer.seen();
    assert_eq!(seen.len(), ATTEMPTS as usize, "{seen:?}");
    // The base delay is 5 ms: only Retry-After explains a wait this long.
    for pair in seen.windows(2) {
        let waited = pair[1].at.duration_since(pair[0].at);
        assert!(
            waited >= Duration::from_millis(950),
            "retried after {waited:?}, before Retry-After"
        );
    }
}

#[tokio::test]
async fn a_retry_after_longer_than_the_longest_delay_is_cut_to_it() {
    // An hour's Retry-After must not park a publisher for an hour.
    let peer = Peer::start(|_, _, _| (429, Some(3600), "")).await;
    let client = client(&peer.url, Duration::from_millis(100));
    let err = bounded(client.blob_exists("rbee/x", &common::sha256_digest(b"x")))
        .await
        .unwrap_err();
    assert_gave_up(&err, "429");
    assert_eq!(peer.count(Method::HEAD), ATTEMPTS as usize);
}

#[tokio::test]
async fn a_400_is_not_retried() {
    let peer = Peer::start(|_, _, _| {
        (
            400,
            None,
            r#"{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid"}]}"#,
        )
    })
    .await;
    let client = client(&peer.url, Duration::from_millis(50));
    let err = bounded(client.put_manifest(
        "rbee/x",
        "0.1.0",
        "application/vnd.oci.image.index.v1+json",
        Bytes::from_static(b"{}"),
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, PushError::Rejected(_)), "{err:?}");
    assert!(err.to_string().contains("MANIFEST_INVALID"), "{err}");
    assert!(!err.to_string().contains("gave up"), "{err}");
    assert_eq!(peer.count(Method::PUT), 1);
}

#[tokio::test]
async fn a_refused_chunk_is_not_retried() {
    // 416: the registry does not accept this range. Asking again would get
    // the same answer.
    let peer = Peer::start(|method, _, _| match *method {
        Method::POST => (202, None, ""),
        _ => (416, None, ""),
    })
    .await;
    let client = client(&peer.url, Duration::from_millis(50)).with_chunking(1 << 10, 1 << 10);
    let err = bounded(upload(&client, 3, 4 << 10)).await.unwrap_err();
    assert!(matches!(err, PushError::Rejected(_)), "{err:?}");
    assert_eq!(peer.count(Method::PATCH), 1);
    assert_eq!(peer.count(Method::GET), 0, "no status request either");
}

#[tokio::test]
async fn a_chunked_upload_whose_session_was_forgotten_starts_a_new_one() {
    // The first chunk fails, and the registry no longer knows the session
    // when asked where it stands: the upload goes on in a new session,
    // from the start.
    let peer = Peer::start(|method, _, nth| match *method {
        Method::POST => (202, None, ""),
        Method::PATCH if nth == 1 => (503, None, ""),
        Method::PATCH => (202, None, ""),
        Method::GET => (404, None, ""),
        _ => (201, None, ""),
    })
    .await;
    let client = client(&peer.url, Duration::from_millis(50)).with_chunking(1 << 10, 1 << 10);
    bounded(upload(&client, 4, 3 << 10))
        .await
        .expect("the upload goes on in a new session");
    assert_eq!(peer.count(Method::POST), 2);
    assert_eq!(peer.count(Method::GET), 1);
    // The refused chunk, then the three chunks of the file in the new session.
    assert_eq!(peer.count(Method::PATCH), 4);
    assert_eq!(peer.count(Method::PUT), 1);
}
