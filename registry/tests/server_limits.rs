//! What hostile clients can hold on the registry, against the real server
//! on `127.0.0.1:0`: slow headers are cut off at the header timeout and
//! connections past the cap are queued, buffered manifest bodies share one
//! memory budget (503 + `Retry-After` past it, all of it back once the
//! clients leave), and a body that stops sending is aborted without
//! leaving an upload session inconsistent; and shutdown waits for open
//! requests no longer than its grace.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// The longest any test here waits for the server to act.
const BOUND: Duration = Duration::from_secs(20);

/// Waits until the server closes `stream` (EOF or reset) and returns the
/// bytes it sent before.
async fn read_until_closed(mut stream: TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(BOUND, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server closes the connection in time");
    seen
}

/// The status code of the raw response `raw`.
fn status_of(raw: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(raw);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

/// The body of the raw (non-chunked) response `raw`.
fn body_of(raw: &[u8]) -> &[u8] {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    &raw[split + 4..]
}

/// Polls `done` until it holds; the budget has no change signal to await.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < BOUND, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Opens a connection and sends `bytes`, leaving the request unfinished.
async fn send_partial(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    stream
}

fn slow_manifest_head(addr: SocketAddr, length: Option<usize>) -> String {
    let framing = match length {
        Some(n) => format!("Content-Length: {n}"),
        None => "Transfer-Encoding: chunked".to_owned(),
    };
    format!(
        "PUT /v2/slow/manifests/v1 HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: {OCI_MANIFEST}\r\n{framing}\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_connections_are_closed_and_those_past_the_cap_queued() {
    const SLOW: usize = 200;
    const CAP: usize = 64;
    let timeout = Duration::from_millis(500);
    let reg = TestRegistry::start_with(|c| {
        c.limits.max_connections = CAP;
        c.limits.header_read_timeout = timeout;
    })
    .await;
    let addr = reg.addr();
    let started = Instant::now();
    let mut slow = JoinSet::new();
    for i in 0..SLOW {
        slow.spawn(async move {
            // Most send an unfinished head; every tenth sends nothing at all.
            let partial: &[u8] = if i % 10 == 0 {
                b""
            } else {
                b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: "
            };
            let seen = read_until_closed(send_partial(addr, partial).await).await;
            (seen, started.elapsed())
        });
    }
    // A well-behaved client, queued behind them, is still served.
    let resp = tokio::time::timeout(BOUND, reg.get("/v2/").send())
        .await
        .expect("a normal request is served in time")
        .unwrap();
    assert_eq!(resp.status(), 200);

    let mut last_close = Duration::ZERO;
    while let Some(closed) = slow.join_next().await {
        let (seen, at) = closed.unwrap();
        assert!(seen.is_empty(), "no answer to an unfinished head: {seen:?}");
        assert!(at >= timeout, "closed before the header timeout: {at:?}");
        last_close = last_close.max(at);
    }
    // At most CAP connections are served at once and each is held for the
    // timeout, so 200 need at least four rounds; without the cap all would
    // close after about one.
    let rounds = SLOW.div_ceil(CAP) as u32;
    assert!(
        last_close >= timeout * (rounds - 1),
        "the last slow connection closed after {last_close:?}: the cap did not hold",
    );
    reg.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_request_is_served_while_slow_clients_hold_connections() {
    let timeout = Duration::from_secs(3);
    let reg = TestRegistry::start_with(|c| c.limits.header_read_timeout = timeout).await;
    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..200 {
        slow.push(send_partial(reg.addr(), b"GET /v2/ HTTP/1.1\r\nHost: x\r\n").await);
    }
    let resp = reg.get("/v2/").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        started.elapsed() < timeout,
        "the normal request must be served while the slow ones are still open",
    );
    for stream in slow {
        assert!(read_until_closed(stream).await.is_empty());
    }
    assert!(started.elapsed() >= timeout);
}

#[tokio::test]
async fn a_client_dribbling_its_headers_is_cut_off_at_the_header_timeout() {
    let timeout = Duration::from_millis(300);
    let reg = TestRegistry::start_with(|c| c.limits.header_read_timeout = timeout).await;
    let mut stream = send_partial(reg.addr(), b"GET /v2/ HTTP/1.1\r\nHost: x\r\n").await;
    let started = Instant::now();
    let mut buf = [0u8; 64];
    // One header byte every 50 ms, as a slow-loris does, until the server
    // hangs up (or a bound far past the timeout).
    let closed = loop {
        if started.elapsed() > BOUND || stream.write_all(b"X").await.is_err() {
            break false;
        }
        match tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break true,
            Ok(Ok(n)) => panic!("unexpected answer {:?}", &buf[..n]),
            Err(_) => {}
        }
    };
    assert!(closed, "the server did not close the dribbling connection");
    assert!(started.elapsed() >= timeout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_that_pause_longer_than_the_header_timeout_are_not_cut_off() {
    let timeout = Duration::from_millis(200);
    let pause = timeout * 4;
    let reg = TestRegistry::start_with(|c| c.limits.header_read_timeout = timeout).await;
    // An upload whose body pauses mid-way (the body idle timeout is 30 s).
    let data = pseudo_random(16 << 20, 3);
    let digest = sha256(&data);
    let (first, second) = data.split_at(data.len() / 2);
    let (first, second) = (first.to_vec(), second.to_vec());
    let body = futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(
        futures_util::stream::once(async move {
            tokio::time::sleep(pause).await;
            Ok(second)
        }),
    );
    let resp = reg
        .post(&format!("/v2/pause/blobs/uploads/?digest={digest}"))
        .header("content-type", "application/octet-stream")
        .header("content-length", data.len())
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());

    // A download whose reader pauses while the server waits to write.
    let mut resp = reg
        .get(&format!("/v2/pause/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut got = resp.chunk().await.unwrap().expect("a first chunk").to_vec();
    tokio::time::sleep(pause).await;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        got.extend_from_slice(&chunk);
    }
    assert!(got == data, "the download is complete and intact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_bodies_past_the_memory_budget_get_503_and_the_memory_returns() {
    const MIB: usize = 1 << 20;
    let reg = TestRegistry::start_with(|c| c.limits.buffered_body_bytes = 8 * MIB).await;
    let budget = reg.server.body_budget.clone();
    assert_eq!(budget.available(), 8 * MIB);

    // Twenty clients declare 1 MiB manifests and send one byte of them.
    let head = slow_manifest_head(reg.addr(), Some(MIB));
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(send_partial(reg.addr(), format!("{head}{{").as_bytes()).await);
    }
    // Eight fit the budget and are held; the other twelve are refused at
    // once, without their bodies being read.
    let mut held = Vec::new();
    let mut refused = 0;
    for mut stream in clients {
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await {
            Err(_) => held.push(stream),
            Ok(n) => {
                let n = n.unwrap();
                let raw = [&buf[..n], &read_until_closed(stream).await].concat();
                assert_eq!(status_of(&raw), 503, "{}", String::from_utf8_lossy(&raw));
                let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
                assert!(text.contains("retry-after: 1\r\n"), "{text}");
                check_error_body(body_of(&raw), "UNAVAILABLE", "refused slow manifest");
                refused += 1;
            }
        }
    }
    assert_eq!((held.len(), refused), (8, 12));
    assert_eq!(budget.available(), 0);

    // A normal push is refused too while the budget is spent ...
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    reg.push_blob("busy", config).await;
    let manifest = json_bytes(&oci_manifest(
        descriptor("application/vnd.oci.image.config.v1+json", config),
        vec![],
    ));
    let resp = reg
        .put_manifest("busy", "v1", OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(header(&resp, "retry-after").as_deref(), Some("1"));
    expect_error(resp, 503, "UNAVAILABLE").await;

    // ... and the whole budget comes back once the slow clients leave.
    drop(held);
    eventually("the budget is whole again", || {
        budget.available() == 8 * MIB
    })
    .await;
    reg.push_manifest("busy", "v1", OCI_MANIFEST, &manifest)
        .await;
}

#[tokio::test]
async fn a_manifest_body_that_stops_sending_is_aborted_and_its_memory_returned() {
    let idle = Duration::from_millis(300);
    let reg = TestRegistry::start_with(|c| c.limits.body_idle_timeout = idle).await;
    let budget = reg.server.body_budget.clone();
    let total = budget.total();
    // A chunked body: 64 KiB arrive, then nothing.
    let chunk = vec![b' '; 64 << 10];
    let mut request = slow_manifest_head(reg.addr(), None).into_bytes();
    request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
    request.extend_from_slice(&chunk);
    request.extend_from_slice(b"\r\n");
    let stream = send_partial(reg.addr(), &request).await;
    let started = Instant::now();
    let raw = read_until_closed(stream).await;
    assert!(started.elapsed() >= idle);
    assert_eq!(status_of(&raw), 400, "{}", String::from_utf8_lossy(&raw));
    let body = check_error_body(body_of(&raw), "MANIFEST_INVALID", "stalled manifest");
    assert!(
        body.to_string().contains("sent nothing"),
        "the message names the idle timeout: {body}"
    );
    eventually("the budget is whole again", || budget.available() == total).await;
    reg.assert_alive().await;
}

#[tokio::test]
async fn an_upload_patch_that_stops_sending_leaves_the_session_consistent() {
    let idle = Duration::from_millis(300);
    let reg = TestRegistry::start_with(|c| c.limits.body_idle_timeout = idle).await;
    let data = pseudo_random(200_000, 7);
    let session = reg.start_upload("stall").await;
    let path = session
        .strip_prefix(&reg.server.url())
        .unwrap_or(&session)
        .to_owned();

    // The PATCH declares all of it, sends half, and goes quiet.
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n\r\n",
        reg.addr(),
        data.len()
    );
    let half = data.len() / 2;
    let stream = send_partial(reg.addr(), &[head.as_bytes(), &data[..half]].concat()).await;
    let raw = read_until_closed(stream).await;
    assert_eq!(status_of(&raw), 400, "{}", String::from_utf8_lossy(&raw));
    check_error_body(body_of(&raw), "BLOB_UPLOAD_INVALID", "stalled PATCH");

    // The session stays at what it stored, a prefix of what was sent ...
    let resp = reg.get(&path).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let range = header(&resp, "range").expect("a Range header");
    let end: usize = range
        .strip_prefix("0-")
        .and_then(|e| e.parse().ok())
        .unwrap_or_else(|| panic!("odd Range {range}"));
    let stored = end + 1;
    assert!(stored <= half, "stored {stored} of {half} bytes sent");

    // ... so the client resumes from there and the digest verifies.
    let resp = reg
        .patch(&path)
        .header("content-type", "application/octet-stream")
        .header("content-range", format!("{stored}-{}", data.len() - 1))
        .body(data[stored..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let digest = sha256(&data);
    let resp = reg
        .put(&format!("{}?digest={digest}", location(&resp)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    assert_eq!(reg.blob_bytes("stall", &digest).await, data);
}

#[tokio::test]
async fn other_methods_on_the_base_route_get_an_oci_error() {
    let reg = TestRegistry::start().await;
    let resp = reg.post("/v2/").json(&json!({})).send().await.unwrap();
    expect_error(resp, 405, "UNSUPPORTED").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_past_its_grace_for_a_client_that_stops_reading() {
    let grace = Duration::from_millis(300);
    let reg = TestRegistry::start_with(|c| c.limits.shutdown_grace = grace).await;
    // Larger than the socket buffers, so the server is stuck writing while
    // the client reads nothing after the first chunk.
    let data = pseudo_random(32 << 20, 7);
    let digest = reg.push_blob("stall", &data).await;
    let mut resp = reg
        .get(&format!("/v2/stall/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let _first = resp.chunk().await.unwrap().expect("a first chunk");

    let started = Instant::now();
    tokio::time::timeout(BOUND, reg.server.stop())
        .await
        .expect("stop returns although a download is stalled")
        .unwrap();
    assert!(
        started.elapsed() >= grace,
        "open requests were given their grace"
    );
    drop(resp);
}
