//! Concurrent clients: pushes of the same blob or manifest all succeed and
//! leave one copy; requests racing on one upload session are serialised,
//! so the session's content stays consistent and nothing is left behind.

mod common;

use std::time::Duration;

use common::*;
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn concurrent_pushes_of_one_blob_all_succeed_and_store_one_copy() {
    let reg = TestRegistry::start().await;
    let data = pseudo_random(1 << 20, 21);
    let digest = sha256(&data);

    // Eight monolithic pushes into one repository, eight into as many others.
    let pushes = (0..16).map(|i| {
        let repo = if i < 8 {
            "rbee/w".to_owned()
        } else {
            format!("rbee/w{i}")
        };
        reg.post(&format!("/v2/{repo}/blobs/uploads/?digest={digest}"))
            .body(data.clone())
            .send()
    });
    for resp in join_all(pushes).await {
        let resp = resp.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert_eq!(header(&resp, "docker-content-digest"), Some(digest.clone()));
    }

    assert_eq!(
        reg.files_in("blobs"),
        [reg.blob_path(&digest)],
        "exactly one copy of the content"
    );
    assert_eq!(std::fs::read(reg.blob_path(&digest)).unwrap(), data);
    assert!(
        reg.stored_sessions().is_empty(),
        "no session is left behind"
    );
    assert!(
        reg.files_in("tmp").is_empty(),
        "no temporary file is left behind"
    );
    for i in 8..16 {
        let resp = reg
            .get(&format!("/v2/rbee/w{i}/blobs/{digest}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.bytes().await.unwrap(), data);
    }
    reg.stop().await;
}

#[tokio::test]
async fn concurrent_puts_of_one_manifest_all_succeed_and_store_one_copy() {
    let reg = TestRegistry::start().await;
    let (body, digest) = reg.push_image("rbee/w", "seed", b"layer").await;

    let same_tag = (0..8).map(|_| reg.put_manifest("rbee/w", "1.0.0", OCI_MANIFEST, &body));
    let tags: Vec<String> = (0..8).map(|i| format!("t{i}")).collect();
    let other_tags = tags
        .iter()
        .map(|tag| reg.put_manifest("rbee/w", tag, OCI_MANIFEST, &body));
    let by_digest = (0..8).map(|_| reg.put_manifest("rbee/w", &digest, OCI_MANIFEST, &body));
    for resp in join_all(same_tag.chain(other_tags))
        .await
        .into_iter()
        .chain(join_all(by_digest).await)
    {
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert_eq!(header(&resp, "docker-content-digest"), Some(digest.clone()));
    }

    let copies: Vec<_> = reg
        .files_in("blobs")
        .into_iter()
        .filter(|p| p.ends_with(&digest[7..]))
        .collect();
    assert_eq!(copies, [reg.blob_path(&digest)]);
    assert_eq!(std::fs::read(reg.blob_path(&digest)).unwrap(), body);
    let listed: Value = reg
        .get("/v2/rbee/w/tags/list")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut want = vec!["1.0.0".to_owned(), "seed".to_owned()];
    want.extend(tags);
    assert_eq!(listed["tags"], json!(want));
    for tag in ["1.0.0", "t7"] {
        let resp = reg
            .get(&format!("/v2/rbee/w/manifests/{tag}"))
            .send()
            .await
            .unwrap();
        assert_eq!(header(&resp, "docker-content-digest"), Some(digest.clone()));
        assert_eq!(resp.bytes().await.unwrap(), body);
    }
    assert!(reg.files_in("tmp").is_empty());
    reg.stop().await;
}

#[tokio::test]
async fn racing_chunks_for_the_same_offset_one_wins() {
    let reg = TestRegistry::start().await;
    let session = reg.start_upload("rbee/w").await;
    let chunks: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 100_000]).collect();

    let patches = chunks.iter().map(|chunk| {
        reg.patch(&session)
            .header("content-range", "0-99999")
            .body(chunk.clone())
            .send()
    });
    let statuses: Vec<StatusCode> = join_all(patches)
        .await
        .into_iter()
        .map(|r| r.unwrap().status())
        .collect();
    let winners: Vec<usize> = (0..8)
        .filter(|&i| statuses[i] == StatusCode::ACCEPTED)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one chunk lands: {statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::ACCEPTED || *s == StatusCode::RANGE_NOT_SATISFIABLE),
        "the others are told the range is taken: {statuses:?}"
    );

    let resp = reg.get(&session).send().await.unwrap();
    assert_eq!(header(&resp, "range").as_deref(), Some("0-99999"));
    let winner = &chunks[winners[0]];
    let digest = sha256(winner);
    let resp = reg
        .put(&format!("{session}?digest={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::CREATED,
        "the content is exactly the winning chunk"
    );
    assert_eq!(reg.blob_bytes("rbee/w", &digest).await, winner[..]);
    reg.stop().await;
}

#[tokio::test]
async fn racing_streamed_patches_append_one_after_another() {
    let reg = TestRegistry::start().await;
    let session = reg.start_upload("rbee/w").await;
    let chunks: Vec<Vec<u8>> = (0..8u8)
        .map(|i| vec![i; 50_000 + usize::from(i) * 1000])
        .collect();

    let patches = chunks
        .iter()
        .map(|chunk| reg.patch(&session).body(chunk.clone()).send());
    let mut landed = Vec::new();
    for (i, resp) in join_all(patches).await.into_iter().enumerate() {
        let resp = resp.unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "chunk {i}");
        let range = header(&resp, "range").unwrap();
        let end: usize = range.strip_prefix("0-").unwrap().parse().unwrap();
        landed.push((end, i));
    }
    // Each chunk ended where the ones before it plus itself end: no
    // interleaving, no loss.
    landed.sort();
    let mut content = Vec::new();
    for (end, i) in landed {
        content.extend_from_slice(&chunks[i]);
        assert_eq!(end + 1, content.len(), "chunk {i} was appended whole");
    }
    let digest = sha256(&content);
    let resp = reg
        .put(&format!("{session}?digest={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(reg.blob_bytes("rbee/w", &digest).await, content);
    reg.stop().await;
}

#[tokio::test]
async fn racing_finishes_of_one_session_complete_it_once() {
    let reg = TestRegistry::start().await;
    let data = pseudo_random(200_000, 22);
    let digest = sha256(&data);
    let session = reg.start_upload("rbee/w").await;
    let resp = reg
        .patch(&session)
        .body(data[..100_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);

    let finishes = (0..6).map(|_| {
        reg.put(&format!("{session}?digest={digest}"))
            .header("content-range", "100000-199999")
            .body(data[100_000..].to_vec())
            .send()
    });
    let mut created = 0;
    for resp in join_all(finishes).await {
        let resp = resp.unwrap();
        if resp.status() == StatusCode::CREATED {
            created += 1;
        } else {
            expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
        }
    }
    assert_eq!(
        created, 1,
        "one PUT finishes the session, the others find it gone"
    );
    assert!(
        reg.stored_sessions().is_empty(),
        "nothing of the session is left: {:?}",
        reg.files_in("uploads")
    );
    assert_eq!(reg.blob_bytes("rbee/w", &digest).await, data);
    reg.stop().await;
}

#[tokio::test]
async fn requests_queued_behind_a_cancel_find_the_session_gone() {
    let reg = TestRegistry::start().await;
    let session = reg.start_upload("rbee/w").await;

    // A PATCH whose body stalls holds the session while the others queue.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let stalled = reqwest::Body::wrap_stream(tokio_stream(rx));
    let first = tokio::spawn(reg.patch(&session).body(stalled).send());
    // Enough that the storage writes some of it, whatever its batching.
    let head = vec![1; 4 << 20];
    tx.send(Ok(head.clone())).await.unwrap();
    wait_for_stored_bytes(&reg).await;

    let cancel = tokio::spawn(reg.delete(&session).send());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let late_patch = tokio::spawn(reg.patch(&session).body(vec![2; 10]).send());
    let late_put = tokio::spawn(
        reg.put(&format!("{session}?digest={}", sha256(&head)))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(tx);

    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::ACCEPTED);
    assert_eq!(
        cancel.await.unwrap().unwrap().status(),
        StatusCode::NO_CONTENT
    );
    // Whatever order they ran in, the session ends up gone and no request
    // saw anything but a normal answer.
    for late in [late_patch, late_put] {
        let resp = late.await.unwrap().unwrap();
        if !resp.status().is_success() {
            expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
        }
    }
    expect_error(
        reg.get(&session).send().await.unwrap(),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    assert!(
        reg.stored_sessions().is_empty(),
        "nothing of the session is left: {:?}",
        reg.files_in("uploads")
    );
    reg.stop().await;
}

/// A stream over what `rx` receives.
fn tokio_stream<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Waits until the open session has some bytes on disk.
async fn wait_for_stored_bytes(reg: &TestRegistry) {
    for _ in 0..500 {
        let stored = reg
            .files_in("uploads")
            .iter()
            .any(|p| p.ends_with("data") && p.metadata().is_ok_and(|m| m.len() > 0));
        if stored {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the registry never stored any byte of the upload");
}
