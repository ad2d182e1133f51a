//! Manifests over HTTP: every supported media type served as it was stored,
//! puts by digest, tags that follow their latest push, referrers and their
//! `artifactType` filter, and deletes by tag and by digest (or switched off).

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

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
