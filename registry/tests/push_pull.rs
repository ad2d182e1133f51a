//! Push and pull over HTTP, as OCI clients do them: monolithic, chunked and
//! streamed blob uploads, cross-repository mounts, blob reads with ranges,
//! manifests of every supported media type, referrers, and deletes.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

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
        "RANGE_INVALID",
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
    let got = reg
        .get(&format!("/v2/rbee/w/blobs/{digest}"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
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
    assert_eq!(
        reg.get(&format!("/v2/rbee/w/blobs/{digest}"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        data
    );
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
    assert_eq!(
        reg.get(&format!("/v2/rbee/w/blobs/{digest}"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        data
    );
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

/// GETs `reference` and checks it is served byte for byte with `media_type`.
async fn assert_manifest_served(
    reg: &TestRegistry,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) {
    let path = format!("/v2/{repo}/manifests/{reference}");
    let digest = sha256(body);
    let resp = reg
        .get(&path)
        .header("accept", media_type)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some(media_type),
        "{path}"
    );
    assert_eq!(
        header(&resp, "docker-content-digest"),
        Some(digest.clone()),
        "{path}"
    );
    assert_eq!(
        header(&resp, "content-length"),
        Some(body.len().to_string()),
        "{path}"
    );
    assert_eq!(resp.bytes().await.unwrap(), body, "{path}");

    let resp = reg.head(&path).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "HEAD {path}");
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some(media_type),
        "HEAD {path}"
    );
    assert_eq!(
        header(&resp, "docker-content-digest"),
        Some(digest),
        "HEAD {path}"
    );
    assert_eq!(
        header(&resp, "content-length"),
        Some(body.len().to_string()),
        "HEAD {path}"
    );
    assert!(
        resp.bytes().await.unwrap().is_empty(),
        "HEAD {path} has no body"
    );
}

#[tokio::test]
async fn manifests_are_served_with_their_stored_media_type() {
    let reg = TestRegistry::start().await;
    let repo = "rbee/llm-worker-rbee-cpu";

    // OCI image manifest and an OCI index over it.
    let (manifest, manifest_digest) = reg.push_image(repo, "amd64", b"linux amd64 build").await;
    let index = json_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": manifest.len(),
            "platform": {"os": "linux", "architecture": "amd64"}
        }],
        "annotations": {"org.opencontainers.image.version": "0.1.0"}
    }));
    let resp = reg.put_manifest(repo, "0.1.0", OCI_INDEX, &index).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(
        location(&resp),
        format!("/v2/{repo}/manifests/{}", sha256(&index))
    );
    assert_eq!(header(&resp, "docker-content-digest"), Some(sha256(&index)));
    assert!(header(&resp, "oci-subject").is_none());

    // Docker schema 2 manifest and manifest list over it, as skopeo pushes them.
    let config =
        br#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = b"docker layer bytes";
    reg.push_blob(repo, config).await;
    reg.push_blob(repo, layer).await;
    let docker = json_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor("application/vnd.docker.container.image.v1+json", config),
        "layers": [descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", layer)]
    }));
    let docker_digest = reg
        .push_manifest(repo, "docker-arm64", DOCKER_MANIFEST, &docker)
        .await;
    let list = json_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [{
            "mediaType": DOCKER_MANIFEST, "digest": docker_digest, "size": docker.len(),
            "platform": {"os": "linux", "architecture": "arm64"}
        }]
    }));
    reg.push_manifest(repo, "docker-list", DOCKER_MANIFEST_LIST, &list)
        .await;

    for (tag, media_type, body) in [
        ("amd64", OCI_MANIFEST, &manifest),
        ("0.1.0", OCI_INDEX, &index),
        ("docker-arm64", DOCKER_MANIFEST, &docker),
        ("docker-list", DOCKER_MANIFEST_LIST, &list),
    ] {
        assert_manifest_served(&reg, repo, tag, media_type, body).await;
        assert_manifest_served(&reg, repo, &sha256(body), media_type, body).await;
    }
    reg.stop().await;
}

#[tokio::test]
async fn manifest_put_by_digest_must_match_the_body() {
    let reg = TestRegistry::start().await;
    let (body, _) = reg.push_image("rbee/w", "t", b"layer").await;
    // The same manifest again, by digest.
    let digest = sha256(&body);
    let resp = reg
        .put_manifest("rbee/w", &digest, OCI_MANIFEST, &body)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(location(&resp), format!("/v2/rbee/w/manifests/{digest}"));

    // A body whose digest is not the one in the URL.
    let mut other: Value = serde_json::from_slice(&body).unwrap();
    other["annotations"] = json!({"a": "b"});
    let resp = reg
        .put_manifest("rbee/w", &digest, OCI_MANIFEST, &json_bytes(&other))
        .await;
    expect_error(resp, 400, "DIGEST_INVALID").await;
    assert_manifest_served(&reg, "rbee/w", &digest, OCI_MANIFEST, &body).await;
    reg.stop().await;
}

#[tokio::test]
async fn manifest_without_media_type_field_takes_the_content_type() {
    let reg = TestRegistry::start().await;
    let config = b"{}";
    reg.push_blob("rbee/w", config).await;
    let body = json_bytes(&json!({
        "schemaVersion": 2,
        "config": descriptor(OCI_EMPTY, config),
        "layers": []
    }));
    reg.push_manifest("rbee/w", "no-layers", OCI_MANIFEST, &body)
        .await;
    assert_manifest_served(&reg, "rbee/w", "no-layers", OCI_MANIFEST, &body).await;
    reg.stop().await;
}

/// An artifact manifest that refers to `subject`.
fn referrer(
    artifact_type: Option<&str>,
    config_type: &str,
    subject: &Value,
    note: &str,
) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(config_type, b"{}"),
        "layers": [descriptor("text/plain", b"PKGBUILD contents")],
        "subject": subject,
        "annotations": {"org.example.note": note}
    });
    if let Some(t) = artifact_type {
        m["artifactType"] = json!(t);
    }
    json_bytes(&m)
}

#[tokio::test]
async fn referrers_are_listed_and_filtered_by_artifact_type() {
    let reg = TestRegistry::start().await;
    let repo = "rbee/w";
    let (subject_body, subject_digest) = reg.push_image(repo, "1.0.0", b"worker build").await;
    let subject =
        json!({"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": subject_body.len()});
    reg.push_blob(repo, b"{}").await;
    reg.push_blob(repo, b"PKGBUILD contents").await;

    let pkgbuild = referrer(
        Some("application/vnd.rbee.pkgbuild"),
        OCI_EMPTY,
        &subject,
        "pkgbuild",
    );
    let sbom = referrer(None, "application/vnd.example.sbom", &subject, "sbom");
    for body in [&pkgbuild, &sbom] {
        let digest = sha256(body);
        let resp = reg.put_manifest(repo, &digest, OCI_MANIFEST, body).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert_eq!(header(&resp, "oci-subject"), Some(subject_digest.clone()));
    }

    let resp = reg
        .get(&format!("/v2/{repo}/referrers/{subject_digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-type").as_deref(), Some(OCI_INDEX));
    assert!(header(&resp, "oci-filters-applied").is_none());
    let index: Value = resp.json().await.unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], OCI_INDEX);
    let mut listed: Vec<Value> = index["manifests"].as_array().unwrap().clone();
    listed.sort_by_key(|d| {
        d["annotations"]["org.example.note"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    assert_eq!(
        listed,
        [
            json!({"mediaType": OCI_MANIFEST, "digest": sha256(&pkgbuild), "size": pkgbuild.len(),
                   "artifactType": "application/vnd.rbee.pkgbuild",
                   "annotations": {"org.example.note": "pkgbuild"}}),
            // Without `artifactType`, the config media type stands in for it.
            json!({"mediaType": OCI_MANIFEST, "digest": sha256(&sbom), "size": sbom.len(),
                   "artifactType": "application/vnd.example.sbom",
                   "annotations": {"org.example.note": "sbom"}}),
        ]
    );

    let resp = reg
        .get(&format!(
            "/v2/{repo}/referrers/{subject_digest}?artifactType=application/vnd.rbee.pkgbuild"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(&resp, "oci-filters-applied").as_deref(),
        Some("artifactType")
    );
    let index: Value = resp.json().await.unwrap();
    let listed = index["manifests"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["digest"], sha256(&pkgbuild));

    // Nothing refers to an unknown digest: an empty index, not a 404.
    let resp = reg
        .get(&format!("/v2/{repo}/referrers/{}", sha256(b"x")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-type").as_deref(), Some(OCI_INDEX));
    assert_eq!(resp.json::<Value>().await.unwrap()["manifests"], json!([]));

    // Deleting a referrer takes it off the list.
    let resp = reg
        .delete(&format!("/v2/{repo}/manifests/{}", sha256(&sbom)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let index: Value = reg
        .get(&format!("/v2/{repo}/referrers/{subject_digest}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    reg.stop().await;
}

#[tokio::test]
async fn a_referrer_may_name_a_subject_that_is_not_there_yet() {
    let reg = TestRegistry::start().await;
    reg.push_blob("rbee/w", b"{}").await;
    reg.push_blob("rbee/w", b"PKGBUILD contents").await;
    let missing = json!({"mediaType": OCI_MANIFEST, "digest": sha256(b"future"), "size": 6});
    let body = referrer(
        Some("application/vnd.rbee.pkgbuild"),
        OCI_EMPTY,
        &missing,
        "early",
    );
    let resp = reg
        .put_manifest("rbee/w", &sha256(&body), OCI_MANIFEST, &body)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "oci-subject"), Some(sha256(b"future")));
    let index: Value = reg
        .get(&format!("/v2/rbee/w/referrers/{}", sha256(b"future")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(index["manifests"][0]["digest"], sha256(&body));
    reg.stop().await;
}

#[tokio::test]
async fn deleting_a_tag_keeps_the_manifest_and_deleting_the_digest_removes_it() {
    let reg = TestRegistry::start().await;
    let repo = "rbee/w";
    let (body, digest) = reg.push_image(repo, "1.0.0", b"layer").await;
    reg.push_manifest(repo, "latest", OCI_MANIFEST, &body).await;
    reg.push_manifest(repo, "stable", OCI_MANIFEST, &body).await;

    let resp = reg
        .delete(&format!("/v2/{repo}/manifests/latest"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    expect_error(
        reg.get(&format!("/v2/{repo}/manifests/latest"))
            .send()
            .await
            .unwrap(),
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;
    assert_manifest_served(&reg, repo, "1.0.0", OCI_MANIFEST, &body).await;
    assert_manifest_served(&reg, repo, &digest, OCI_MANIFEST, &body).await;
    let tags: Value = reg
        .get(&format!("/v2/{repo}/tags/list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], json!(["1.0.0", "stable"]));

    // By digest: the manifest and every tag pointing at it go; a tag of
    // another manifest stays.
    let (other, _) = reg.push_image(repo, "other", b"another layer").await;
    let resp = reg
        .delete(&format!("/v2/{repo}/manifests/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    for reference in [digest.as_str(), "1.0.0", "stable"] {
        let path = format!("/v2/{repo}/manifests/{reference}");
        expect_error(
            reg.get(&path).send().await.unwrap(),
            404,
            "MANIFEST_UNKNOWN",
        )
        .await;
        assert_eq!(
            reg.head(&path).send().await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
    }
    let tags: Value = reg
        .get(&format!("/v2/{repo}/tags/list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], json!(["other"]));
    assert_manifest_served(&reg, repo, "other", OCI_MANIFEST, &other).await;
    let resp = reg
        .delete(&format!("/v2/{repo}/manifests/{digest}"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "MANIFEST_UNKNOWN").await;
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
async fn deletes_can_be_switched_off() {
    let reg = TestRegistry::start_with(|c| c.delete_enabled = false).await;
    let repo = "rbee/w";
    let (body, digest) = reg.push_image(repo, "1.0.0", b"layer").await;
    let layer = sha256(b"layer");

    for path in [
        format!("/v2/{repo}/manifests/1.0.0"),
        format!("/v2/{repo}/manifests/{digest}"),
        format!("/v2/{repo}/blobs/{layer}"),
    ] {
        expect_error(reg.delete(&path).send().await.unwrap(), 405, "UNSUPPORTED").await;
    }
    assert_manifest_served(&reg, repo, "1.0.0", OCI_MANIFEST, &body).await;
    assert_eq!(
        reg.get(&format!("/v2/{repo}/blobs/{layer}"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
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
        "NOT_FOUND",
    )
    .await;
    expect_error(
        reg.get("/elsewhere").send().await.unwrap(),
        404,
        "NOT_FOUND",
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
    assert_eq!(
        reg.get(&format!("/v2/rbee/x/blobs/{digest}"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        data
    );
    reg.stop().await;
}

#[tokio::test]
async fn a_tag_follows_its_latest_push() {
    let reg = TestRegistry::start().await;
    let (first, first_digest) = reg.push_image("rbee/w", "latest", b"first build").await;
    assert_manifest_served(&reg, "rbee/w", "latest", OCI_MANIFEST, &first).await;
    let (second, second_digest) = reg.push_image("rbee/w", "latest", b"second build").await;
    assert_ne!(first_digest, second_digest);
    assert_manifest_served(&reg, "rbee/w", "latest", OCI_MANIFEST, &second).await;
    // The first stays reachable by digest.
    assert_manifest_served(&reg, "rbee/w", &first_digest, OCI_MANIFEST, &first).await;
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

    let resp = reg.get(&session).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let range = header(&resp, "range").unwrap();
    let stored: usize = range.strip_prefix("0-").unwrap().parse::<usize>().unwrap() + 1;
    assert!(stored <= 3 << 20, "Range {range}");
    let resp = reg
        .put(&format!("{session}?digest={digest}"))
        .header("content-range", format!("{stored}-{}", data.len() - 1))
        .body(data[stored..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(
        reg.get(&format!("/v2/rbee/w/blobs/{digest}"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        data
    );
    reg.stop().await;
}
