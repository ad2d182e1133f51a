//! Reading blobs over HTTP: GET and HEAD, byte ranges, empty blobs, deletes
//! that unlink a blob from one repository, and the OCI errors for what is
//! missing or not a route at all (with the `/v2/` version check).

mod common;

use common::*;
use reqwest::StatusCode;

#[tokio::test]
async fn version_check_answers_with_the_api_version_header() {
    let reg = TestRegistry::start().await;
    let resp = reg.get("/v2/").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(&resp, "docker-distribution-api-version").as_deref(),
        Some("registry/2.0")
    );
    reg.stop().await;
}

#[tokio::test]
async fn blob_ranges() {
    let reg = TestRegistry::start().await;
    let data = pseudo_random(1000, 5);
    let digest = reg.push_blob("rbee/w", &data).await;
    let path = format!("/v2/rbee/w/blobs/{digest}");

    for (range, start, end) in [
        ("bytes=2-5", 2, 5),
        ("bytes=990-", 990, 999),
        ("bytes=-10", 990, 999),
        ("bytes=900-5000", 900, 999),
    ] {
        let resp = reg.get(&path).header("range", range).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            header(&resp, "content-range"),
            Some(format!("bytes {start}-{end}/1000")),
            "{range}"
        );
        assert_eq!(
            header(&resp, "content-length"),
            Some((end - start + 1).to_string()),
            "{range}"
        );
        assert_eq!(header(&resp, "docker-content-digest"), Some(digest.clone()));
        assert_eq!(resp.bytes().await.unwrap(), data[start..=end], "{range}");
    }

    for range in ["bytes=1000-", "bytes=5000-6000"] {
        let resp = reg.get(&path).header("range", range).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(
            header(&resp, "content-range").as_deref(),
            Some("bytes */1000"),
            "{range}"
        );
    }

    // Not a byte range we serve: the whole blob, as RFC 9110 allows.
    let resp = reg
        .get(&path)
        .header("range", "bytes=0-1,5-6")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap(), data);
    reg.stop().await;
}

#[tokio::test]
async fn missing_blobs_and_manifests_are_404_with_their_codes() {
    let reg = TestRegistry::start().await;
    reg.push_image("rbee/w", "1.0.0", b"layer").await;
    let missing = sha256(b"nothing");
    expect_error(
        reg.get(&format!("/v2/rbee/w/blobs/{missing}"))
            .send()
            .await
            .unwrap(),
        404,
        "BLOB_UNKNOWN",
    )
    .await;
    let head = reg
        .head(&format!("/v2/rbee/w/blobs/{missing}"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
    expect_error(
        reg.get("/v2/rbee/w/manifests/9.9.9").send().await.unwrap(),
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;
    expect_error(
        reg.get(&format!("/v2/rbee/w/manifests/{missing}"))
            .send()
            .await
            .unwrap(),
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;
    let head = reg.head("/v2/rbee/w/manifests/9.9.9").send().await.unwrap();
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
    // A blob is not a manifest, even in the repository that links it.
    let layer = sha256(b"layer");
    expect_error(
        reg.get(&format!("/v2/rbee/w/manifests/{layer}"))
            .send()
            .await
            .unwrap(),
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;
    reg.stop().await;
}

#[tokio::test]
async fn deleting_a_blob_unlinks_it_from_that_repository_only() {
    let reg = TestRegistry::start().await;
    let digest = reg.push_blob("rbee/a", b"shared layer").await;
    reg.push_blob("rbee/b", b"shared layer").await;

    let resp = reg
        .delete(&format!("/v2/rbee/a/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    expect_error(
        reg.get(&format!("/v2/rbee/a/blobs/{digest}"))
            .send()
            .await
            .unwrap(),
        404,
        "BLOB_UNKNOWN",
    )
    .await;
    assert_eq!(
        reg.head(&format!("/v2/rbee/a/blobs/{digest}"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    let resp = reg
        .get(&format!("/v2/rbee/b/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap(), &b"shared layer"[..]);
    expect_error(
        reg.delete(&format!("/v2/rbee/a/blobs/{digest}"))
            .send()
            .await
            .unwrap(),
        404,
        "BLOB_UNKNOWN",
    )
    .await;

    // Pushed again, it is back.
    reg.push_blob("rbee/a", b"shared layer").await;
    let resp = reg
        .get(&format!("/v2/rbee/a/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap(), &b"shared layer"[..]);
    reg.stop().await;
}

#[tokio::test]
async fn unknown_methods_and_routes_get_oci_errors() {
    let reg = TestRegistry::start().await;
    expect_error(
        reg.post("/v2/rbee/w/manifests/latest")
            .send()
            .await
            .unwrap(),
        405,
        "UNSUPPORTED",
    )
    .await;
    expect_error(
        reg.get("/v2/rbee/w/unknown/thing").send().await.unwrap(),
        404,
        "UNSUPPORTED",
    )
    .await;
    expect_error(
        reg.get("/elsewhere").send().await.unwrap(),
        404,
        "UNSUPPORTED",
    )
    .await;
    reg.stop().await;
}

#[tokio::test]
async fn empty_blobs_are_blobs_too() {
    let reg = TestRegistry::start().await;
    let digest = sha256(b"");
    let resp = reg
        .post(&format!("/v2/rbee/w/blobs/uploads/?digest={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let session = reg.start_upload("rbee/x").await;
    let resp = reg
        .put(&format!("{session}?digest={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);

    for repo in ["rbee/w", "rbee/x"] {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let resp = reg.get(&path).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(header(&resp, "content-length").as_deref(), Some("0"));
        assert!(resp.bytes().await.unwrap().is_empty());
        let resp = reg.head(&path).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(header(&resp, "content-length").as_deref(), Some("0"));
        // No range that starts at a byte can be satisfied...
        for range in ["bytes=0-", "bytes=0-0"] {
            let resp = reg.get(&path).header("range", range).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
            assert_eq!(
                header(&resp, "content-range").as_deref(),
                Some("bytes */0"),
                "{range}"
            );
        }
        // ...and a suffix is served as the whole, empty, blob.
        let resp = reg
            .get(&path)
            .header("range", "bytes=-5")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.bytes().await.unwrap().is_empty());
    }
    reg.assert_alive().await;
    reg.stop().await;
}
