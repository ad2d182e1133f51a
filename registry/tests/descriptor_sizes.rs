//! Descriptor sizes in a manifest PUT: every descriptor that names content
//! in the repository (config, layers, index children, and the subject when
//! it is here) must declare the size of what is stored, else 400
//! `SIZE_INVALID`, and nothing is stored. A manifest once went in with a
//! layer size wrong by 1,000,000 bytes, and the catalog then announced that
//! wrong `Content-Length` for the download.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const CONFIG: &[u8] = br#"{"architecture":"amd64","os":"linux"}"#;
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &[u8] = b"the worker binary";

/// `descriptor(media_type, data)` with its size moved by `delta`.
fn off_by(media_type: &str, data: &[u8], delta: i64) -> Value {
    let mut d = descriptor(media_type, data);
    d["size"] = json!(data.len() as i64 + delta);
    d
}

/// Asserts the PUT was refused with `SIZE_INVALID` naming `digest`, and that
/// the manifest is not readable by digest.
async fn assert_refused_for_size(
    reg: &TestRegistry,
    repo: &str,
    tag: &str,
    media_type: &str,
    body: &[u8],
    digest: &str,
) {
    let resp = reg.put_manifest(repo, tag, media_type, body).await;
    let err = expect_error(resp, 400, "SIZE_INVALID").await;
    let message = err["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(digest),
        "the message names the descriptor: {err}"
    );
    let resp = reg
        .get(&format!("/v2/{repo}/manifests/{}", sha256(body)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "nothing was stored");
    let resp = reg
        .get(&format!("/v2/{repo}/manifests/{tag}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "no tag was written");
}

#[tokio::test]
async fn a_layer_whose_declared_size_is_wrong_is_refused() {
    let reg = TestRegistry::start().await;
    let repo = "rbee/sizes";
    reg.push_blob(repo, CONFIG).await;
    let layer = reg.push_blob(repo, LAYER).await;
    for delta in [1_000_000, -1, 1] {
        let body = json_bytes(&oci_manifest(
            descriptor(CONFIG_TYPE, CONFIG),
            vec![off_by(OCI_LAYER, LAYER, delta)],
        ));
        assert_refused_for_size(&reg, repo, "bad", OCI_MANIFEST, &body, &layer).await;
    }
    // The same manifest with the true size goes in.
    let body = json_bytes(&oci_manifest(
        descriptor(CONFIG_TYPE, CONFIG),
        vec![descriptor(OCI_LAYER, LAYER)],
    ));
    reg.push_manifest(repo, "good", OCI_MANIFEST, &body).await;
}

#[tokio::test]
async fn a_config_whose_declared_size_is_wrong_is_refused() {
    let reg = TestRegistry::start().await;
    let repo = "rbee/sizes";
    let config = reg.push_blob(repo, CONFIG).await;
    reg.push_blob(repo, LAYER).await;
    let body = json_bytes(&oci_manifest(
        off_by(CONFIG_TYPE, CONFIG, 7),
        vec![descriptor(OCI_LAYER, LAYER)],
    ));
    assert_refused_for_size(&reg, repo, "bad", OCI_MANIFEST, &body, &config).await;
    // Docker schema2 manifests are held to the same rule.
    let mut docker = oci_manifest(
        off_by("application/vnd.docker.container.image.v1+json", CONFIG, -3),
        vec![descriptor(
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            LAYER,
        )],
    );
    docker["mediaType"] = json!(DOCKER_MANIFEST);
    let body = json_bytes(&docker);
    assert_refused_for_size(&reg, repo, "bad", DOCKER_MANIFEST, &body, &config).await;
}

#[tokio::test]
async fn an_index_child_whose_declared_size_is_wrong_is_refused() {
    let reg = TestRegistry::start().await;
    let repo = "rbee/sizes";
    let (child, child_digest) = reg.push_image(repo, "amd64", LAYER).await;
    for (media_type, delta) in [(OCI_INDEX, 1_000_000), (DOCKER_MANIFEST_LIST, -1)] {
        let mut entry = descriptor(OCI_MANIFEST, &child);
        entry["size"] = json!(child.len() as i64 + delta);
        entry["platform"] = json!({"os": "linux", "architecture": "amd64"});
        let body = json_bytes(&json!({
            "schemaVersion": 2, "mediaType": media_type, "manifests": [entry],
        }));
        assert_refused_for_size(&reg, repo, "bad", media_type, &body, &child_digest).await;
    }
}

#[tokio::test]
async fn a_local_subject_whose_declared_size_is_wrong_is_refused() {
    let reg = TestRegistry::start().await;
    let repo = "rbee/sizes";
    let (subject, subject_digest) = reg.push_image(repo, "1.0.0", LAYER).await;
    reg.push_blob(repo, b"{}").await;
    reg.push_blob(repo, b"sbom").await;
    let referrer = |subject: Value| {
        json_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.sbom",
            "config": descriptor(OCI_EMPTY, b"{}"),
            "layers": [descriptor("text/plain", b"sbom")],
            "subject": subject,
        }))
    };
    let body = referrer(off_by(OCI_MANIFEST, &subject, 1_000_000));
    assert_refused_for_size(&reg, repo, "bad", OCI_MANIFEST, &body, &subject_digest).await;
    let resp = reg
        .get(&format!("/v2/{repo}/referrers/{subject_digest}"))
        .send()
        .await
        .unwrap();
    let index: Value = resp.json().await.unwrap();
    assert_eq!(index["manifests"], json!([]), "no referrer was recorded");

    // A subject that is not here cannot be checked and is accepted, as the
    // spec asks (referrers may be pushed before their subject).
    let absent = off_by(OCI_MANIFEST, b"pushed later", 5);
    reg.push_manifest(repo, "early", OCI_MANIFEST, &referrer(absent))
        .await;
    reg.push_manifest(
        repo,
        "good",
        OCI_MANIFEST,
        &referrer(descriptor(OCI_MANIFEST, &subject)),
    )
    .await;
}

#[tokio::test]
async fn an_unknown_layer_is_still_manifest_blob_unknown() {
    let reg = TestRegistry::start().await;
    let repo = "rbee/sizes";
    reg.push_blob(repo, CONFIG).await;
    let body = json_bytes(&oci_manifest(
        descriptor(CONFIG_TYPE, CONFIG),
        vec![descriptor(OCI_LAYER, b"never pushed")],
    ));
    let resp = reg.put_manifest(repo, "bad", OCI_MANIFEST, &body).await;
    expect_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
}
