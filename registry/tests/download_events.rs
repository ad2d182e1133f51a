//! What a blob pull's event says, as analytics needs it: the bytes the body
//! actually sent and whether that was all of them (a client that hangs up
//! part-way is not a download), the range of a ranged read, who asked
//! (address, user agent), the layer's media type; HEADs and manifest reads
//! kept apart; the process's own reads never announced; and a sink that
//! cannot keep up loses events, counted, without ever holding a download.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::TryStreamExt;
use rbee_registry::reference::{Digest, Reference, RepoName};
use rbee_registry::{Action, ByteRange, Event, QueueSink, RequestContext, Target};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::TryRecvError;

/// Waits (bounded) for the next event: a blob pull whose client hung up
/// is announced when the server notices, a moment after.
async fn next_event(rx: &mut Receiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event within 10 s")
        .expect("event bus")
}

fn nothing_more(rx: &mut Receiver<Event>) {
    match rx.try_recv() {
        Err(TryRecvError::Empty) => {}
        other => panic!("no further event expected: {other:?}"),
    }
}

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[tokio::test]
async fn a_complete_download_is_announced_with_every_byte_and_who_asked() {
    let reg = TestRegistry::start().await;
    let data = pseudo_random(300_000, 41);
    let digest = reg.push_blob("rbee/w", &data).await;
    let mut rx = reg.server.registry.events().subscribe();

    let resp = reg
        .get(&format!("/v2/rbee/w/blobs/{digest}"))
        .header("user-agent", "rbee-hive/0.3")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap(), data);

    let pull = next_event(&mut rx).await;
    nothing_more(&mut rx);
    assert_eq!((pull.action, pull.target), (Action::Pull, Target::Blob));
    assert_eq!(pull.digest, digest);
    assert_eq!(pull.size, Some(data.len() as u64));
    let transfer = pull.transfer.clone().expect("a pull says what it sent");
    assert_eq!(transfer.bytes_sent, data.len() as u64);
    assert!(transfer.completed);
    assert_eq!(transfer.range, None);
    assert!(pull.is_completed_download());

    assert_eq!(pull.context.client_addr, Some(LOCALHOST));
    assert_eq!(pull.context.user_agent.as_deref(), Some("rbee-hive/0.3"));
    assert_eq!(pull.context.subject, None, "no access gate yet");
    assert!(!pull.context.internal);
    // The address is for in-process sinks only: never logged or serialised.
    assert!(!format!("{pull:?}").contains("127.0.0.1"));
    let json = serde_json::to_string(&pull).unwrap();
    assert!(!json.contains("127.0.0.1"), "{json}");
    assert!(json.contains(r#""bytes_sent":300000"#), "{json}");
    reg.stop().await;
}

#[tokio::test]
async fn a_client_that_aborts_mid_body_is_announced_as_incomplete() {
    let reg = TestRegistry::start().await;
    // Larger than what the loopback's socket buffers can hold between a
    // client that stops reading and the server, so the server cannot have
    // sent it all before the client hangs up.
    let size = 32 << 20;
    let digest = reg.push_blob("rbee/w", &vec![7u8; size]).await;
    let mut rx = reg.server.registry.events().subscribe();

    let mut tcp = tokio::net::TcpStream::connect(reg.addr()).await.unwrap();
    tcp.write_all(
        format!(
            "GET /v2/rbee/w/blobs/{digest} HTTP/1.1\r\nHost: {}\r\nUser-Agent: curl/8.5\r\n\r\n",
            reg.addr()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // The head, then about 1 MiB of body.
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let body_read = loop {
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .expect("the server sends")
            .unwrap();
        assert!(n > 0, "the server closed early");
        received.extend_from_slice(&buf[..n]);
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]);
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            let body = received.len() - end - 4;
            if body >= 1 << 20 {
                break body as u64;
            }
        }
    };
    drop(tcp);

    let pull = next_event(&mut rx).await;
    nothing_more(&mut rx);
    assert_eq!((pull.action, pull.target), (Action::Pull, Target::Blob));
    let transfer = pull.transfer.clone().unwrap();
    assert!(!transfer.completed, "{transfer:?}");
    assert!(
        transfer.bytes_sent >= body_read && transfer.bytes_sent < size as u64,
        "sent {} of {size}, the client read {body_read}",
        transfer.bytes_sent
    );
    assert_eq!(pull.size, Some(size as u64));
    assert!(!pull.is_completed_download());
    assert_eq!(pull.context.user_agent.as_deref(), Some("curl/8.5"));
    reg.stop().await;
}

#[tokio::test]
async fn a_range_request_is_announced_with_its_range() {
    let reg = TestRegistry::start().await;
    let data = pseudo_random(5000, 42);
    let digest = reg.push_blob("rbee/w", &data).await;
    let path = format!("/v2/rbee/w/blobs/{digest}");
    let mut rx = reg.server.registry.events().subscribe();

    // A probe of the first bytes: complete, but no download.
    let resp = reg
        .get(&path)
        .header("range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.bytes().await.unwrap(), data[..100]);
    let probe = next_event(&mut rx).await;
    let transfer = probe.transfer.clone().unwrap();
    assert_eq!(transfer.range, Some(ByteRange { start: 0, end: 100 }));
    assert_eq!(transfer.bytes_sent, 100);
    assert!(transfer.completed, "the whole range was sent");
    assert_eq!(probe.size, Some(5000), "the size is the blob's");
    assert!(!probe.is_completed_download());

    // A download resumed at byte 4000 completes with its last range.
    let resp = reg
        .get(&path)
        .header("range", "bytes=4000-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap(), data[4000..]);
    let resumed = next_event(&mut rx).await;
    nothing_more(&mut rx);
    let transfer = resumed.transfer.clone().unwrap();
    assert_eq!(
        transfer.range,
        Some(ByteRange {
            start: 4000,
            end: 5000
        })
    );
    assert_eq!((transfer.bytes_sent, transfer.completed), (1000, true));
    assert!(resumed.is_completed_download());
    let json = serde_json::to_value(&resumed).unwrap();
    assert_eq!(
        json["transfer"]["range"],
        serde_json::json!({"start": 4000, "end": 5000})
    );
    reg.stop().await;
}

#[tokio::test]
async fn a_lagging_sink_counts_drops_and_never_blocks_a_download() {
    let reg = TestRegistry::start().await;
    let data = pseudo_random(100_000, 43);
    let digest = reg.push_blob("rbee/w", &data).await;
    let events = reg.server.registry.events();
    // A database writer that has stopped writing: its queue holds one
    // event and nobody takes it.
    let (sink, mut stuck) = QueueSink::new(1);
    events.add_sink(Arc::new(sink));
    let mut rx = events.subscribe();
    assert_eq!(events.dropped(), 0);

    for _ in 0..5 {
        let download = async {
            reg.get(&format!("/v2/rbee/w/blobs/{digest}"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        };
        let body = tokio::time::timeout(Duration::from_secs(10), download)
            .await
            .expect("a download is never held by a full sink");
        assert_eq!(body, data);
        // Its event reached the subscriber, so the sink was offered it.
        assert_eq!(next_event(&mut rx).await.action, Action::Pull);
    }
    assert_eq!(events.dropped(), 4, "the first fit, four were lost");
    assert_eq!(stuck.try_recv().unwrap().digest, digest);
    reg.stop().await;
}

#[tokio::test]
async fn heads_and_manifest_reads_are_events_of_their_own() {
    let reg = TestRegistry::start().await;
    let layer = pseudo_random(2000, 44);
    let (_, manifest) = reg.push_image("rbee/w", "1.0.0", &layer).await;
    let layer_digest = sha256(&layer);
    let mut rx = reg.server.registry.events().subscribe();

    let blob = format!("/v2/rbee/w/blobs/{layer_digest}");
    assert_eq!(reg.head(&blob).send().await.unwrap().status(), 200);
    let head = next_event(&mut rx).await;
    assert_eq!((head.action, head.target), (Action::Head, Target::Blob));
    assert_eq!((head.size, head.transfer.clone()), (Some(2000), None));

    assert_eq!(
        reg.head("/v2/rbee/w/manifests/1.0.0")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let head = next_event(&mut rx).await;
    assert_eq!((head.action, head.target), (Action::Head, Target::Manifest));
    assert_eq!(head.tag.as_deref(), Some("1.0.0"));

    let resp = reg.get("/v2/rbee/w/manifests/1.0.0").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let read = next_event(&mut rx).await;
    assert_eq!((read.action, read.target), (Action::Pull, Target::Manifest));
    assert_eq!(read.digest, manifest);
    assert_eq!(read.transfer, None);

    for event in [&head, &read] {
        assert!(!event.is_completed_download(), "{event:?}");
    }
    nothing_more(&mut rx);
    reg.stop().await;
}

#[tokio::test]
async fn a_layer_pull_carries_the_media_type_its_manifest_gives_it() {
    let reg = TestRegistry::start().await;
    let layer = pseudo_random(2000, 45);
    reg.push_image("rbee/w", "1.0.0", &layer).await;
    let loose = reg.push_blob("rbee/w", b"in no manifest").await;
    let mut rx = reg.server.registry.events().subscribe();

    reg.blob_bytes("rbee/w", &sha256(&layer)).await;
    let pull = next_event(&mut rx).await;
    assert_eq!(pull.media_type.as_deref(), Some(OCI_LAYER));

    reg.blob_bytes("rbee/w", &loose).await;
    let pull = next_event(&mut rx).await;
    assert_eq!(pull.digest, loose);
    assert_eq!(pull.media_type, None, "no manifest names it");
    reg.stop().await;
}

#[tokio::test]
async fn the_processs_own_reads_are_not_announced_and_its_writes_are_marked() {
    let reg = TestRegistry::start().await;
    let layer = pseudo_random(2000, 46);
    reg.push_image("rbee/w", "1.0.0", &layer).await;
    let registry = &reg.server.registry;
    let mut rx = registry.events().subscribe();
    let own = RequestContext::internal();
    let name = RepoName::parse("rbee/w").unwrap();
    let digest = Digest::parse(&sha256(&layer)).unwrap();

    let (_, body) = registry
        .pull_manifest(&own, &name, &Reference::parse("1.0.0").unwrap())
        .await
        .unwrap();
    assert!(!body.is_empty());
    registry.head_blob(&own, &name, &digest).await.unwrap();
    let read: Vec<bytes::Bytes> = registry
        .pull_blob(&own, &name, &digest, 2000, None)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(read.concat(), layer);
    nothing_more(&mut rx);

    // A write by the process is announced (caches follow it), marked.
    registry
        .put_manifest(
            &own,
            &name,
            &Reference::parse("copy").unwrap(),
            Some(OCI_MANIFEST),
            body,
        )
        .await
        .unwrap();
    let push = next_event(&mut rx).await;
    assert_eq!((push.action, push.target), (Action::Push, Target::Manifest));
    assert!(push.context.internal);
    assert_eq!(push.context.client_addr, None);
    reg.stop().await;
}
