//! Large blobs stream through: a 64 MiB blob sent with chunked transfer
//! encoding (no `Content-Length`) round-trips with the right digest. The
//! memory bound on 1 GiB blobs is measured by the benchmark, not here.

mod common;

use common::*;
use futures_util::StreamExt;
use reqwest::StatusCode;
use sha2::Digest as _;
use std::sync::{Arc, Mutex};

const CHUNK: usize = 1 << 20;
const CHUNKS: usize = 64;

/// Chunk `i` of the test blob, made on demand so the test holds at most one.
fn chunk(i: usize) -> Vec<u8> {
    let mut data = vec![0u8; CHUNK];
    for (j, word) in data.chunks_mut(8).enumerate() {
        let v = ((i * CHUNK / 8 + j) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        word.copy_from_slice(&v.to_le_bytes());
    }
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_blob_streams_in_and_out() {
    let reg = TestRegistry::start().await;
    let size = CHUNK * CHUNKS;

    // The client hashes what it sends while it sends it, as a pusher that
    // streams from disk would; the registry hashes what it receives.
    let hasher = Arc::new(Mutex::new(sha2::Sha256::new()));
    let sent = {
        let hasher = hasher.clone();
        futures_util::stream::iter(0..CHUNKS).map(move |i| {
            let data = chunk(i);
            hasher.lock().unwrap().update(&data);
            Ok::<_, std::io::Error>(data)
        })
    };
    let session = reg.start_upload("rbee/big").await;
    let resp = reg
        .patch(&session)
        .body(reqwest::Body::wrap_stream(sent))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&resp, "range"), Some(format!("0-{}", size - 1)));
    let digest = format!(
        "sha256:{}",
        hex::encode(hasher.lock().unwrap().clone().finalize())
    );
    let resp = reg
        .put(&format!("{}?digest={digest}", location(&resp)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::CREATED,
        "the registry computed the same digest"
    );
    assert_eq!(reg.files_in("blobs"), [reg.blob_path(&digest)]);
    assert_eq!(
        std::fs::metadata(reg.blob_path(&digest)).unwrap().len(),
        size as u64
    );

    // Read back as a stream and compared as it arrives.
    let resp = reg
        .get(&format!("/v2/rbee/big/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-length"), Some(size.to_string()));
    assert_eq!(header(&resp, "docker-content-digest"), Some(digest.clone()));
    let mut offset = 0;
    let mut expected = chunk(0);
    let mut body = resp.bytes_stream();
    while let Some(part) = body.next().await {
        let mut part = &part.unwrap()[..];
        while !part.is_empty() {
            let (i, at) = (offset / CHUNK, offset % CHUNK);
            if at == 0 && i > 0 {
                expected = chunk(i);
            }
            let n = part.len().min(CHUNK - at);
            assert!(
                part[..n] == expected[at..at + n],
                "content differs at byte {offset}"
            );
            part = &part[n..];
            offset += n;
        }
    }
    assert_eq!(offset, size);

    // A range deep inside it.
    let resp = reg
        .get(&format!("/v2/rbee/big/blobs/{digest}"))
        .header(
            "range",
            format!("bytes={}-{}", 48 * CHUNK + 5, 48 * CHUNK + 12),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.bytes().await.unwrap(), chunk(48)[5..13]);
    reg.stop().await;
}
