//! Hostile and malformed uploads: bytes that do not match their digest,
//! upload sessions used through other repositories or with forged ids,
//! malformed chunk headers, and blobs asked for through repositories that do
//! not link them.
//! Every case answers a 4xx with the right OCI error code, never a 500, and
//! nothing is written outside the data directory.

mod common;

use common::*;
use reqwest::StatusCode;

/// Asserts that neither `digests` nor any blob at all exists, and that no
/// upload session is left.
async fn assert_no_blob_and_no_session(reg: &TestRegistry, digests: &[&str]) {
    for digest in digests {
        expect_error(
            reg.get(&format!("/v2/rbee/w/blobs/{digest}"))
                .send()
                .await
                .unwrap(),
            404,
            "BLOB_UNKNOWN",
        )
        .await;
        assert!(
            !reg.blob_path(digest).exists(),
            "{digest} must not be stored"
        );
    }
    assert_eq!(reg.files_in("blobs"), Vec::<std::path::PathBuf>::new());
    assert_eq!(reg.stored_sessions(), Vec::<String>::new());
}

#[tokio::test]
async fn an_upload_that_does_not_match_its_digest_leaves_nothing() {
    let reg = TestRegistry::start().await;
    let data = pseudo_random(70_000, 11);
    let actual = sha256(&data);
    let claimed = sha256(b"something else entirely");

    // Monolithic POST.
    let resp = reg
        .post(&format!("/v2/rbee/w/blobs/uploads/?digest={claimed}"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "DIGEST_INVALID").await;
    assert_no_blob_and_no_session(&reg, &[&claimed, &actual]).await;

    // POST then PUT.
    let session = reg.start_upload("rbee/w").await;
    let resp = reg
        .put(&format!("{session}?digest={claimed}"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "DIGEST_INVALID").await;
    expect_error(
        reg.get(&session).send().await.unwrap(),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    assert_no_blob_and_no_session(&reg, &[&claimed, &actual]).await;

    // Chunked, then a final PUT without body.
    let session = reg.start_upload("rbee/w").await;
    let resp = reg
        .patch(&session)
        .header("content-range", "0-39999")
        .body(data[..40_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let resp = reg
        .patch(&session)
        .body(data[40_000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let resp = reg
        .put(&format!("{session}?digest={claimed}"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "DIGEST_INVALID").await;
    expect_error(
        reg.get(&session).send().await.unwrap(),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    assert_no_blob_and_no_session(&reg, &[&claimed, &actual]).await;

    // The same bytes with their true digest are then accepted.
    reg.push_blob("rbee/w", &data).await;
    assert_eq!(std::fs::read(reg.blob_path(&actual)).unwrap(), data);

    reg.assert_alive().await;
    reg.assert_nothing_outside_data_dir();
    reg.stop().await;
}

#[tokio::test]
async fn upload_sessions_are_bound_to_their_repository() {
    let reg = TestRegistry::start().await;
    let data = pseudo_random(3000, 12);
    let digest = sha256(&data);
    let session = reg.start_upload("rbee/a").await;
    let resp = reg
        .patch(&session)
        .header("content-range", "0-999")
        .body(data[..1000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let id = session.rsplit('/').next().unwrap().to_owned();

    // The same id under other repositories' paths, including a prefix and
    // an extension of the owner's name.
    for other in ["rbee/b", "rbee", "rbee/a/b"] {
        let path = format!("/v2/{other}/blobs/uploads/{id}");
        expect_error(
            reg.get(&path).send().await.unwrap(),
            404,
            "BLOB_UPLOAD_UNKNOWN",
        )
        .await;
        let resp = reg
            .patch(&path)
            .header("content-range", "1000-1999")
            .body(data[1000..2000].to_vec())
            .send()
            .await;
        expect_error(resp.unwrap(), 404, "BLOB_UPLOAD_UNKNOWN").await;
        let resp = reg
            .patch(&path)
            .body(data[1000..2000].to_vec())
            .send()
            .await
            .unwrap();
        expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
        let resp = reg
            .put(&format!("{path}?digest={digest}"))
            .body(data[1000..].to_vec())
            .send()
            .await
            .unwrap();
        expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
        expect_error(
            reg.delete(&path).send().await.unwrap(),
            404,
            "BLOB_UPLOAD_UNKNOWN",
        )
        .await;
    }
    expect_error(
        reg.get(&format!("/v2/rbee/b/blobs/{digest}"))
            .send()
            .await
            .unwrap(),
        404,
        "BLOB_UNKNOWN",
    )
    .await;

    // Ids that are not ids at all.
    let mut cases = Vec::new();
    for bad in [
        "..%2F..%2Fescaped",
        "%2e%2e",
        "not-a-session",
        &id.to_uppercase(),
        &id[..31],
        &format!("{id}0"),
    ] {
        for method in ["GET", "PATCH", "PUT", "DELETE"] {
            let target = format!("/v2/rbee/a/blobs/uploads/{bad}?digest={digest}");
            cases.push(case(method, target, 404, "BLOB_UPLOAD_UNKNOWN"));
        }
    }
    run_cases(&reg, cases).await;

    // The session still works in its own repository, untouched by the above.
    let resp = reg.get(&session).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&resp, "range").as_deref(), Some("0-999"));
    let resp = reg
        .put(&format!("{session}?digest={digest}"))
        .header("content-range", "1000-2999")
        .body(data[1000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(reg.blob_bytes("rbee/a", &digest).await, data);
    expect_error(
        reg.get(&format!("/v2/rbee/b/blobs/{digest}"))
            .send()
            .await
            .unwrap(),
        404,
        "BLOB_UNKNOWN",
    )
    .await;

    reg.assert_alive().await;
    reg.assert_nothing_outside_data_dir();
    reg.stop().await;
}

#[tokio::test]
async fn a_blob_is_invisible_through_repositories_that_do_not_link_it() {
    let reg = TestRegistry::start().await;
    let digest = reg.push_blob("rbee/a", b"private layer").await;
    reg.push_blob("rbee/b", b"something else").await;

    for repo in ["rbee/b", "rbee/never-pushed", "rbee"] {
        let path = format!("/v2/{repo}/blobs/{digest}");
        expect_error(reg.get(&path).send().await.unwrap(), 404, "BLOB_UNKNOWN").await;
        let resp = reg
            .get(&path)
            .header("range", "bytes=0-3")
            .send()
            .await
            .unwrap();
        expect_error(resp, 404, "BLOB_UNKNOWN").await;
        assert_eq!(
            reg.head(&path).send().await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
        expect_error(reg.delete(&path).send().await.unwrap(), 404, "BLOB_UNKNOWN").await;
    }
    // Still there for its own repository.
    let resp = reg
        .get(&format!("/v2/rbee/a/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap(), &b"private layer"[..]);

    reg.assert_alive().await;
    reg.assert_nothing_outside_data_dir();
    reg.stop().await;
}

#[tokio::test]
async fn malformed_chunk_headers_are_refused() {
    let reg = TestRegistry::start().await;
    let session = reg.start_upload("rbee/w").await;
    for range in ["abc", "5-1", "-3", "0-", "bytes=0-3"] {
        let resp = reg
            .patch(&session)
            .header("content-range", range)
            .body(b"abcd".to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::RANGE_NOT_SATISFIABLE,
            "Content-Range: {range}"
        );
        check_error_body(&resp.bytes().await.unwrap(), "BLOB_UPLOAD_INVALID", range);
    }
    // Content-Range and Content-Length disagree, also at the edge of u64
    // (where computing the range's length overflows).
    for range in ["0-9", "0-18446744073709551615", "1-18446744073709551615"] {
        for method in [reqwest::Method::PATCH, reqwest::Method::PUT] {
            let resp = reg
                .client
                .request(
                    method,
                    reg.url(&format!("{session}?digest={}", sha256(b"abcd"))),
                )
                .header("content-range", range)
                .body(b"abcd".to_vec())
                .send()
                .await
                .unwrap();
            expect_error(resp, 400, "SIZE_INVALID").await;
        }
    }
    let resp = reg
        .patch(&session)
        .header("content-range", "18446744073709551615-18446744073709551615")
        .body(b"a".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // Nothing was appended by any of it.
    let resp = reg.get(&session).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&resp, "range").as_deref(), Some("0-0"));
    let resp = reg
        .put(&format!("{session}?digest={}", sha256(b"abcd")))
        .body(b"abcd".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);

    reg.assert_alive().await;
    reg.assert_nothing_outside_data_dir();
    reg.stop().await;
}
