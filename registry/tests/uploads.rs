//! Blob uploads over HTTP, as OCI clients make them: monolithic, POST then
//! PUT, chunked and streamed, checked against sha512, resumed after a dropped
//! connection; upload sessions and cross-repository mounts.

mod common;

use common::*;
use reqwest::StatusCode;

#[tokio::test]
async fn monolithic_post_with_digest_stores_a_readable_blob() {
    let reg = TestRegistry::start().await;
    let data = pseudo_random(10_000, 1);
    let digest = sha256(&data);

    let resp = reg
        .post(&format!("/v2/rbee/w/blobs/uploads/?digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(location(&resp), format!("/v2/rbee/w/blobs/{digest}"));
    assert_eq!(header(&resp, "docker-content-digest"), Some(digest.clone()));

    let resp = reg.get(&location(&resp)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "docker-content-digest"), Some(digest.clone()));
    assert_eq!(
        header(&resp, "content-length"),
        Some(data.len().to_string())
    );
    assert_eq!(header(&resp, "accept-ranges").as_deref(), Some("bytes"));
    assert_eq!(resp.bytes().await.unwrap(), data);

    let resp = reg
        .head(&format!("/v2/rbee/w/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "docker-content-digest"), Some(digest.clone()));
    assert_eq!(
        header(&resp, "content-length"),
        Some(data.len().to_string())
    );
    assert!(resp.bytes().await.unwrap().is_empty());

    // Content-addressed, once, where the layout says; no session is left.
    assert_eq!(std::fs::read(reg.blob_path(&digest)).unwrap(), data);
    assert!(reg.stored_sessions().is_empty());
    reg.stop().await;
}

#[tokio::test]
async fn post_then_put_uploads_a_blob_in_one_request() {
    let reg = TestRegistry::start().await;
    let data = b"post then put".to_vec();
    let digest = sha256(&data);

    let resp = reg.post("/v2/rbee/w/blobs/uploads/").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let session = location(&resp);
    assert!(
        session.starts_with("/v2/rbee/w/blobs/uploads/"),
        "{session}"
    );
    let id = session.rsplit('/').next().unwrap().to_owned();
    assert!(
        id.len() >= 32,
        "session ids carry at least 122 random bits: {id}"
    );
    assert_eq!(header(&resp, "range").as_deref(), Some("0-0"));

    let resp = reg
        .put(&format!("{session}?digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(location(&resp), format!("/v2/rbee/w/blobs/{digest}"));
    assert_eq!(
        reg.get(&location(&resp))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        data
    );

    // The finished session is gone.
    expect_error(
        reg.get(&session).send().await.unwrap(),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    reg.stop().await;
}

#[tokio::test]
async fn two_sessions_get_different_ids() {
    let reg = TestRegistry::start().await;
    let a = reg.start_upload("rbee/w").await;
    let b = reg.start_upload("rbee/w").await;
    assert_ne!(a, b);
    reg.stop().await;
}

#[tokio::test]
async fn chunked_upload_in_three_chunks_with_out_of_order_and_repeated_chunks_refused() {
    let reg = TestRegistry::start().await;
    let data = pseudo_random(3 * 1000 + 17, 2);
    let digest = sha256(&data);
    let chunks = [&data[..1000], &data[1000..2000], &data[2000..]];

    let resp = reg
        .post("/v2/rbee/w/blobs/uploads/")
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let mut session = location(&resp);

    let patch = |session: &str, range: String, body: &[u8]| {
        reg.patch(session)
            .header("content-type", "application/octet-stream")
            .header("content-range", range)
            .body(body.to_vec())
            .send()
    };

    // The second chunk first: out of order.
    let resp = patch(&session, "1000-1999".into(), chunks[1])
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&resp, "range").as_deref(), Some("0-0"));
    check_error_body(
        &resp.bytes().await.unwrap(),
        "BLOB_UPLOAD_INVALID",
        "out-of-order chunk",
    );

    let resp = patch(&session, "0-999".into(), chunks[0]).await.unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&resp, "range").as_deref(), Some("0-999"));
    session = location(&resp);

    // The first chunk again: repeated.
    let resp = patch(&session, "0-999".into(), chunks[0]).await.unwrap();
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&resp, "range").as_deref(), Some("0-999"));

    // The session reports where it stands.
    let resp = reg.get(&session).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&resp, "range").as_deref(), Some("0-999"));
    assert_eq!(location(&resp), session);

    let resp = patch(&session, "1000-1999".into(), chunks[1])
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&resp, "range").as_deref(), Some("0-1999"));
    let end = data.len() - 1;
    let resp = patch(&location(&resp), format!("2000-{end}"), chunks[2])
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&resp, "range"), Some(format!("0-{end}")));

    // Blob not visible before the final PUT.
    expect_error(
        reg.get(&format!("/v2/rbee/w/blobs/{digest}"))
            .send()
            .await
            .unwrap(),
        404,
        "BLOB_UNKNOWN",
    )
    .await;

    let resp = reg
        .put(&format!("{}?digest={digest}", location(&resp)))
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "docker-content-digest"), Some(digest.clone()));
    let got = reg.blob_bytes("rbee/w", &digest).await;
    assert_eq!(got, data);
    reg.stop().await;
}

#[tokio::test]
async fn final_put_may_carry_the_last_chunk() {
    let reg = TestRegistry::start().await;
    let data = pseudo_random(5000, 3);
    let digest = sha256(&data);
    let session = reg.start_upload("rbee/w").await;
    let resp = reg
        .patch(&session)
        .header("content-range", "0-2999")
        .body(data[..3000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let resp = reg
        .put(&format!("{}?digest={digest}", location(&resp)))
        .header("content-range", "3000-4999")
        .body(data[3000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(reg.blob_bytes("rbee/w", &digest).await, data);
    reg.stop().await;
}

#[tokio::test]
async fn streamed_patches_without_content_range_append() {
    let reg = TestRegistry::start().await;
    let data = pseudo_random(4096, 4);
    let digest = sha256(&data);
    let session = reg.start_upload("rbee/w").await;

    // Two streamed PATCHes (chunked transfer encoding, no Content-Range).
    let mut next = session.clone();
    for (part, end) in [(&data[..1500], 1499), (&data[1500..], 4095)] {
        let body = reqwest::Body::wrap_stream(futures_util::stream::iter(
            part.chunks(100)
                .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
                .collect::<Vec<_>>(),
        ));
        let resp = reg.patch(&next).body(body).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        assert_eq!(header(&resp, "range"), Some(format!("0-{end}")));
        next = location(&resp);
    }
    let resp = reg
        .put(&format!("{next}?digest={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(reg.blob_bytes("rbee/w", &digest).await, data);
    reg.stop().await;
}

#[tokio::test]
async fn deleting_an_upload_session_forgets_it() {
    let reg = TestRegistry::start().await;
    let session = reg.start_upload("rbee/w").await;
    let resp = reg
        .patch(&session)
        .body(b"some bytes".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(reg.stored_sessions().len(), 1);

    let resp = reg.delete(&session).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(
        reg.stored_sessions().is_empty(),
        "the session's files are gone"
    );

    expect_error(
        reg.get(&session).send().await.unwrap(),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    expect_error(
        reg.patch(&session)
            .body(b"more".to_vec())
            .send()
            .await
            .unwrap(),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    let put = reg
        .put(&format!("{session}?digest={}", sha256(b"some bytes")))
        .send()
        .await
        .unwrap();
    expect_error(put, 404, "BLOB_UPLOAD_UNKNOWN").await;
    expect_error(
        reg.delete(&session).send().await.unwrap(),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    assert!(
        reg.stored_sessions().is_empty(),
        "requests on a deleted session recreate nothing"
    );
    reg.stop().await;
}

#[tokio::test]
async fn cross_repository_mount() {
    let reg = TestRegistry::start().await;
    let data = b"a layer shared by two workers".to_vec();
    let digest = reg.push_blob("rbee/a", &data).await;

    let resp = reg
        .post(&format!(
            "/v2/rbee/b/blobs/uploads/?mount={digest}&from=rbee/a"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(location(&resp), format!("/v2/rbee/b/blobs/{digest}"));
    assert_eq!(header(&resp, "docker-content-digest"), Some(digest.clone()));
    assert_eq!(
        reg.get(&location(&resp))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        data
    );
    assert_eq!(reg.files_in("blobs").len(), 1, "a mount does not copy");

    // Unknown blob: a normal upload session is opened instead, and it works.
    let other = b"not pushed anywhere".to_vec();
    let other_digest = sha256(&other);
    let resp = reg
        .post(&format!(
            "/v2/rbee/b/blobs/uploads/?mount={other_digest}&from=rbee/a"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let session = location(&resp);
    assert!(
        session.starts_with("/v2/rbee/b/blobs/uploads/"),
        "{session}"
    );
    let resp = reg
        .put(&format!("{session}?digest={other_digest}"))
        .body(other.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);

    // Without `from`, nothing is mounted (no automatic content discovery).
    let resp = reg
        .post(&format!("/v2/rbee/c/blobs/uploads/?mount={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    expect_error(
        reg.get(&format!("/v2/rbee/c/blobs/{digest}"))
            .send()
            .await
            .unwrap(),
        404,
        "BLOB_UNKNOWN",
    )
    .await;

    // A blob cannot be mounted from a repository that does not link it.
    let resp = reg
        .post(&format!(
            "/v2/rbee/c/blobs/uploads/?mount={other_digest}&from=rbee/a"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    expect_error(
        reg.get(&format!("/v2/rbee/c/blobs/{other_digest}"))
            .send()
            .await
            .unwrap(),
        404,
        "BLOB_UNKNOWN",
    )
    .await;
    reg.stop().await;
}

#[tokio::test]
async fn sha512_digests_are_verified_and_served() {
    let reg = TestRegistry::start().await;
    let data = pseudo_random(3000, 6);
    let digest = format!(
        "sha512:{}",
        hex::encode(<sha2::Sha512 as sha2::Digest>::digest(&data))
    );
    let resp = reg
        .post(&format!("/v2/rbee/w/blobs/uploads/?digest={digest}"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "docker-content-digest"), Some(digest.clone()));
    let resp = reg
        .get(&format!("/v2/rbee/w/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&resp, "docker-content-digest"), Some(digest.clone()));
    assert_eq!(resp.bytes().await.unwrap(), data);

    // A chunked upload checked against sha512 at the end.
    let session = reg.start_upload("rbee/x").await;
    let resp = reg
        .patch(&session)
        .body(data[..1000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let wrong = format!("sha512:{}", "0".repeat(128));
    let resp = reg
        .put(&format!("{session}?digest={wrong}"))
        .body(data[1000..].to_vec())
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "DIGEST_INVALID").await;
    let session = reg.start_upload("rbee/x").await;
    let resp = reg
        .patch(&session)
        .body(data[..1000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let resp = reg
        .put(&format!("{session}?digest={digest}"))
        .body(data[1000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(reg.blob_bytes("rbee/x", &digest).await, data);
    reg.stop().await;
}

#[tokio::test]
async fn a_client_that_drops_mid_patch_can_resume() {
    let reg = TestRegistry::start().await;
    let data = pseudo_random(5 << 20, 7);
    let digest = sha256(&data);
    let session = reg.start_upload("rbee/w").await;

    // The body fails after 3 MiB: the connection is cut without the last chunk.
    let parts: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(data[..1 << 20].to_vec()),
        Ok(data[1 << 20..3 << 20].to_vec()),
        Err(std::io::Error::other("the client gives up")),
    ];
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(parts));
    assert!(reg.patch(&session).body(body).send().await.is_err());

    // The status answers at once with the acknowledged range, which may
    // not yet include what the dropped PATCH stored (the registry may not
    // have noticed the drop). A resume from a stale range is answered 416
    // with the true end, from which the client resumes; `Range: 0-0` (the
    // only form the header has for an empty upload) means 0 or 1 byte.
    let resp = reg.get(&session).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let mut range = header(&resp, "range").unwrap();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let end: usize = range.strip_prefix("0-").unwrap().parse().unwrap();
        assert!(end < 3 << 20, "Range {range}");
        let starts = if end == 0 { vec![1, 0] } else { vec![end + 1] };
        for stored in starts {
            let resp = reg
                .put(&format!("{session}?digest={digest}"))
                .header("content-range", format!("{stored}-{}", data.len() - 1))
                .body(data[stored..].to_vec())
                .send()
                .await
                .unwrap();
            statuses.push(resp.status());
            if resp.status() != StatusCode::RANGE_NOT_SATISFIABLE {
                break;
            }
            range = header(&resp, "range").unwrap_or(range);
        }
        if statuses.last() != Some(&StatusCode::RANGE_NOT_SATISFIABLE) {
            break;
        }
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::CREATED),
        "resumed from Range {range}: {statuses:?}"
    );
    assert_eq!(reg.blob_bytes("rbee/w", &digest).await, data);
    reg.stop().await;
}
