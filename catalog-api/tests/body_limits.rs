//! Request bodies on the catalog, against the real server on
//! `127.0.0.1:0`: an oversized webhook body gets a JSON 413, a sender
//! without the secret is answered before its body is read, and webhook
//! payloads and the embedded registry's manifests share one memory budget
//! (503 + `Retry-After` past it, JSON or OCI body by route, all of it back
//! once the clients leave).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rbee_catalog::{CatalogConfig, RunningCatalog};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "s3cret";
const MIB: usize = 1 << 20;
/// The longest any test here waits for the server to act.
const BOUND: Duration = Duration::from_secs(20);

async fn start(configure: impl FnOnce(&mut CatalogConfig)) -> (RunningCatalog, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let mut config = CatalogConfig::new(data.path());
    // Publishes anonymously over loopback: the development switch.
    config.tokens.dev_open_loopback = true;
    config.webhook_secret = Some(SECRET.into());
    configure(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    (rbee_catalog::start(config, listener).await.unwrap(), data)
}

/// Checks a catalog error: the status, a JSON `{"error","message"}` body
/// with `title` as the error.
async fn expect_json_error(resp: reqwest::Response, status: StatusCode, title: &str) {
    assert_eq!(resp.status(), status);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], title, "{body}");
    assert!(body["message"].is_string(), "{body}");
}

/// Opens a connection and sends `bytes`, leaving the request unfinished.
async fn send_partial(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    stream
}

/// A webhook request head declaring a body of `length` bytes.
fn webhook_head(addr: SocketAddr, length: usize, auth: bool) -> String {
    let auth = if auth {
        format!("Authorization: Bearer {SECRET}\r\n")
    } else {
        String::new()
    };
    format!(
        "POST /v1/webhooks/registry HTTP/1.1\r\nHost: {addr}\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{"
    )
}

/// The first read of an answer, if one comes within `wait`.
async fn answer_within(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(wait, stream.read(&mut buf)).await {
        Err(_) => None,
        Ok(n) => Some(String::from_utf8_lossy(&buf[..n.unwrap()]).into_owned()),
    }
}

/// Polls `done` until it holds; the budget has no change signal to await.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < BOUND, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn an_oversized_webhook_body_gets_a_json_413() {
    let (catalog, _data) = start(|_| {}).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/webhooks/registry", catalog.url());
    let oversized = vec![b' '; MIB + 1];
    // Refused from its Content-Length ...
    let resp = http
        .post(&url)
        .bearer_auth(SECRET)
        .body(oversized.clone())
        .send()
        .await
        .unwrap();
    expect_json_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "Payload too large").await;
    // ... and, when chunked, as soon as it grows past the limit.
    let stream = futures_util::stream::iter(
        oversized
            .chunks(64 << 10)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let resp = http
        .post(&url)
        .bearer_auth(SECRET)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    expect_json_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "Payload too large").await;
    // A body at the limit is read (and is not an envelope).
    let resp = http
        .post(&url)
        .bearer_auth(SECRET)
        .body(vec![b' '; MIB])
        .send()
        .await
        .unwrap();
    expect_json_error(resp, StatusCode::BAD_REQUEST, "Bad request").await;
}

#[tokio::test]
async fn a_webhook_without_the_secret_is_answered_before_its_body_is_read() {
    let (catalog, _data) = start(|_| {}).await;
    let mut stream = send_partial(
        catalog.addr,
        webhook_head(catalog.addr, MIB, false).as_bytes(),
    )
    .await;
    let answer = answer_within(&mut stream, BOUND).await.expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert_eq!(catalog.body_budget.available(), catalog.body_budget.total());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_and_manifests_share_the_memory_budget_and_get_503_past_it() {
    let (catalog, _data) = start(|c| c.limits.buffered_body_bytes = 4 * MIB).await;
    let budget = catalog.body_budget.clone();
    // Ten senders declare 1 MiB webhook bodies and send one byte: four
    // fit the budget and are held, six are refused at once with JSON.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..10 {
        let mut stream = send_partial(
            catalog.addr,
            webhook_head(catalog.addr, MIB, true).as_bytes(),
        )
        .await;
        match answer_within(&mut stream, Duration::from_millis(500)).await {
            None => held.push(stream),
            Some(answer) => {
                assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
                let lower = answer.to_ascii_lowercase();
                assert!(lower.contains("retry-after: 1\r\n"), "{answer}");
                assert!(answer.contains(r#""error":"Server busy""#), "{answer}");
                refused += 1;
            }
        }
    }
    assert_eq!((held.len(), refused), (4, 6));
    assert_eq!(budget.available(), 0);

    // The embedded registry draws on the same budget, with an OCI body.
    let http = reqwest::Client::new();
    let resp = http
        .put(format!("{}/v2/rbee/busy/manifests/v1", catalog.url()))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAVAILABLE", "{body}");

    // The whole budget is back once the senders leave.
    drop(held);
    eventually("the budget is whole again", || {
        budget.available() == 4 * MIB
    })
    .await;
    let resp = http
        .post(format!("{}/v1/webhooks/registry", catalog.url()))
        .bearer_auth(SECRET)
        .body(r#"{"events":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_webhook_body_that_stops_sending_is_aborted() {
    let idle = Duration::from_millis(300);
    let (catalog, _data) = start(|c| c.limits.body_idle_timeout = idle).await;
    let mut stream = send_partial(
        catalog.addr,
        webhook_head(catalog.addr, 1000, true).as_bytes(),
    )
    .await;
    let started = Instant::now();
    let answer = answer_within(&mut stream, BOUND).await.expect("an answer");
    assert!(started.elapsed() >= idle);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("sent nothing"), "{answer}");
    assert_eq!(catalog.body_budget.available(), catalog.body_budget.total());
}
