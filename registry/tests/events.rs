//! Registry events: every push, pull (GET) and delete of a blob or manifest
//! is announced once on the event bus, with its repository, digest, tag,
//! media type and size; a HEAD is announced as a HEAD, never a pull; failed
//! requests announce nothing. (What a blob pull sent, and who asked, is
//! `download_events.rs`'s.)

mod common;

use chrono::Utc;
use common::*;
use rbee_registry::{Action, Event, Target};
use reqwest::StatusCode;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::TryRecvError;

/// Everything published so far. Events are published before the response
/// is sent (a blob pull's before its last chunk is), so after a request has
/// been answered its events are here.
fn drain(rx: &mut Receiver<Event>) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(e) => events.push(e),
            Err(TryRecvError::Empty) => return events,
            Err(e) => panic!("event bus: {e}"),
        }
    }
}

/// The one event published since the last drain.
fn single(rx: &mut Receiver<Event>) -> Event {
    let mut events = drain(rx);
    assert_eq!(events.len(), 1, "exactly one event: {events:?}");
    events.remove(0)
}

fn check(
    event: &Event,
    action: Action,
    target: Target,
    repo: &str,
    digest: &str,
    tag: Option<&str>,
) {
    assert_eq!(
        (
            event.action,
            event.target,
            event.repository.as_str(),
            event.digest.as_str(),
            event.tag.as_deref()
        ),
        (action, target, repo, digest, tag),
        "{event:?}"
    );
}

#[tokio::test]
async fn blob_push_pull_and_delete_are_announced() {
    let reg = TestRegistry::start().await;
    let mut rx = reg.server.registry.events().subscribe();
    let before = Utc::now();
    let data = pseudo_random(5000, 31);

    let digest = reg.push_blob("rbee/w", &data).await;
    let push = single(&mut rx);
    check(&push, Action::Push, Target::Blob, "rbee/w", &digest, None);
    assert_eq!(push.size, Some(5000));
    assert!(push.timestamp >= before && push.timestamp <= Utc::now());

    let path = format!("/v2/rbee/w/blobs/{digest}");
    assert_eq!(
        reg.head(&path).send().await.unwrap().status(),
        StatusCode::OK
    );
    let head = single(&mut rx);
    check(&head, Action::Head, Target::Blob, "rbee/w", &digest, None);
    assert_ne!(head.action, Action::Pull, "a HEAD is not a pull");

    assert_eq!(
        reg.get(&path).send().await.unwrap().bytes().await.unwrap(),
        data
    );
    let pull = single(&mut rx);
    check(&pull, Action::Pull, Target::Blob, "rbee/w", &digest, None);
    assert_eq!(pull.size, Some(5000));

    // A ranged read is a pull too (resumed downloads).
    let resp = reg
        .get(&path)
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.bytes().await.unwrap(), data[..10]);
    check(
        &single(&mut rx),
        Action::Pull,
        Target::Blob,
        "rbee/w",
        &digest,
        None,
    );

    // A mount is a push into the target repository.
    let resp = reg
        .post(&format!(
            "/v2/rbee/x/blobs/uploads/?mount={digest}&from=rbee/w"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    check(
        &single(&mut rx),
        Action::Push,
        Target::Blob,
        "rbee/x",
        &digest,
        None,
    );

    let resp = reg.delete(&path).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    check(
        &single(&mut rx),
        Action::Delete,
        Target::Blob,
        "rbee/w",
        &digest,
        None,
    );

    // The event is plain data a webhook sink can send as it is.
    let json = serde_json::to_value(&push).unwrap();
    assert_eq!(json["action"], "push");
    assert_eq!(json["target"], "blob");
    assert_eq!(json["repository"], "rbee/w");
    assert_eq!(json["digest"], digest);
    reg.stop().await;
}

#[tokio::test]
async fn a_chunked_upload_is_announced_once_when_finished() {
    let reg = TestRegistry::start().await;
    let mut rx = reg.server.registry.events().subscribe();
    let data = pseudo_random(3000, 32);
    let digest = sha256(&data);
    let session = reg.start_upload("rbee/w").await;
    for (range, part) in [("0-999", &data[..1000]), ("1000-2999", &data[1000..])] {
        let resp = reg
            .patch(&session)
            .header("content-range", range)
            .body(part.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
    }
    assert!(
        drain(&mut rx).is_empty(),
        "nothing is announced before the upload completes"
    );
    let resp = reg
        .put(&format!("{session}?digest={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let push = single(&mut rx);
    check(&push, Action::Push, Target::Blob, "rbee/w", &digest, None);
    assert_eq!(push.size, Some(3000));
    reg.stop().await;
}

#[tokio::test]
async fn manifest_push_pull_and_delete_are_announced() {
    let reg = TestRegistry::start().await;
    let (body, digest) = reg.push_image("rbee/w", "seed", b"layer").await;
    let mut rx = reg.server.registry.events().subscribe();

    reg.push_manifest("rbee/w", "1.0.0", OCI_MANIFEST, &body)
        .await;
    let push = single(&mut rx);
    check(
        &push,
        Action::Push,
        Target::Manifest,
        "rbee/w",
        &digest,
        Some("1.0.0"),
    );
    assert_eq!(push.media_type.as_deref(), Some(OCI_MANIFEST));
    assert_eq!(push.size, Some(body.len() as u64));

    reg.push_manifest("rbee/w", &digest, OCI_MANIFEST, &body)
        .await;
    check(
        &single(&mut rx),
        Action::Push,
        Target::Manifest,
        "rbee/w",
        &digest,
        None,
    );

    assert_eq!(
        reg.head("/v2/rbee/w/manifests/1.0.0")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let head = single(&mut rx);
    check(
        &head,
        Action::Head,
        Target::Manifest,
        "rbee/w",
        &digest,
        Some("1.0.0"),
    );
    assert_ne!(head.action, Action::Pull, "a HEAD is not a pull");

    let resp = reg.get("/v2/rbee/w/manifests/1.0.0").send().await.unwrap();
    assert_eq!(resp.bytes().await.unwrap(), body);
    let pull = single(&mut rx);
    check(
        &pull,
        Action::Pull,
        Target::Manifest,
        "rbee/w",
        &digest,
        Some("1.0.0"),
    );
    assert_eq!(pull.media_type.as_deref(), Some(OCI_MANIFEST));
    assert_eq!(pull.size, Some(body.len() as u64));

    let resp = reg
        .get(&format!("/v2/rbee/w/manifests/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    check(
        &single(&mut rx),
        Action::Pull,
        Target::Manifest,
        "rbee/w",
        &digest,
        None,
    );

    let resp = reg
        .delete("/v2/rbee/w/manifests/1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    check(
        &single(&mut rx),
        Action::Delete,
        Target::Manifest,
        "rbee/w",
        &digest,
        Some("1.0.0"),
    );

    let resp = reg
        .delete(&format!("/v2/rbee/w/manifests/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let delete = single(&mut rx);
    check(
        &delete,
        Action::Delete,
        Target::Manifest,
        "rbee/w",
        &digest,
        None,
    );
    assert_eq!(delete.media_type.as_deref(), Some(OCI_MANIFEST));
    reg.stop().await;
}

#[tokio::test]
async fn failed_requests_announce_nothing() {
    let reg = TestRegistry::start().await;
    let (body, _) = reg.push_image("rbee/w", "seed", b"layer").await;
    let mut rx = reg.server.registry.events().subscribe();

    let wrong = sha256(b"other");
    let resp = reg
        .post(&format!("/v2/rbee/w/blobs/uploads/?digest={wrong}"))
        .body(b"data".to_vec())
        .send()
        .await;
    expect_error(resp.unwrap(), 400, "DIGEST_INVALID").await;
    expect_error(
        reg.put_manifest("rbee/other", "1.0.0", OCI_MANIFEST, &body)
            .await,
        400,
        "MANIFEST_BLOB_UNKNOWN",
    )
    .await;
    expect_error(
        reg.get(&format!("/v2/rbee/w/blobs/{wrong}"))
            .send()
            .await
            .unwrap(),
        404,
        "BLOB_UNKNOWN",
    )
    .await;
    expect_error(
        reg.get("/v2/rbee/w/manifests/missing")
            .send()
            .await
            .unwrap(),
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;
    expect_error(
        reg.delete("/v2/rbee/w/manifests/missing")
            .send()
            .await
            .unwrap(),
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;
    let resp = reg
        .get(&format!("/v2/rbee/w/blobs/{}", sha256(b"layer")))
        .header("range", "bytes=99-")
        .send()
        .await;
    assert_eq!(resp.unwrap().status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert!(drain(&mut rx).is_empty());
    reg.stop().await;
}
