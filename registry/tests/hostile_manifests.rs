//! Hostile and malformed manifests: bodies over the size limit, invalid
//! documents, and manifests or referrers that reach into another
//! repository's content.
//! Every case answers a 4xx with the right OCI error code, never a 500, and
//! nothing is written outside the data directory.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A valid image manifest padded with an annotation to exactly `len` bytes.
fn manifest_of_size(config: &[u8], len: usize) -> Vec<u8> {
    let mut m = oci_manifest(descriptor(OCI_EMPTY, config), vec![]);
    m["annotations"] = json!({"pad": ""});
    let base = json_bytes(&m).len();
    m["annotations"]["pad"] = json!("p".repeat(len - base));
    let body = json_bytes(&m);
    assert_eq!(body.len(), len);
    body
}

#[tokio::test]
async fn manifests_over_4_mib_are_payload_too_large() {
    let reg = TestRegistry::start().await;
    reg.push_blob("rbee/w", b"{}").await;
    const LIMIT: usize = 4 << 20;

    let at_limit = manifest_of_size(b"{}", LIMIT);
    reg.push_manifest("rbee/w", "at-limit", OCI_MANIFEST, &at_limit)
        .await;

    let over = manifest_of_size(b"{}", LIMIT + 1);
    let resp = reg
        .put_manifest("rbee/w", "over", OCI_MANIFEST, &over)
        .await;
    expect_error(resp, 413, "SIZE_INVALID").await;

    // Without Content-Length (chunked), the limit holds all the same.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        over.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let resp = reg
        .put("/v2/rbee/w/manifests/over-chunked")
        .header("content-type", OCI_MANIFEST)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    expect_error(resp, 413, "SIZE_INVALID").await;

    for tag in ["over", "over-chunked"] {
        let resp = reg
            .get(&format!("/v2/rbee/w/manifests/{tag}"))
            .send()
            .await
            .unwrap();
        expect_error(resp, 404, "MANIFEST_UNKNOWN").await;
    }
    expect_error(
        reg.get(&format!("/v2/rbee/w/manifests/{}", sha256(&over)))
            .send()
            .await
            .unwrap(),
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;
    let tags: Value = reg
        .get("/v2/rbee/w/tags/list")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], json!(["at-limit"]));

    reg.assert_alive().await;
    reg.assert_nothing_outside_data_dir();
    reg.stop().await;
}

#[tokio::test]
async fn a_manifest_cannot_reference_another_repositorys_content() {
    let reg = TestRegistry::start().await;
    let (image, image_digest) = reg.push_image("rbee/a", "1.0.0", b"layer of a").await;

    // The same image manifest pushed into b, whose blobs live only in a.
    let resp = reg
        .put_manifest("rbee/b", "1.0.0", OCI_MANIFEST, &image)
        .await;
    let err = expect_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
    assert!(
        err["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "detail names the blob: {err}"
    );

    // b has the config but not the layer: still refused.
    reg.push_blob("rbee/b", br#"{"architecture":"amd64","os":"linux"}"#)
        .await;
    let resp = reg
        .put_manifest("rbee/b", "1.0.0", OCI_MANIFEST, &image)
        .await;
    let err = expect_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
    assert_eq!(err["errors"][0]["detail"], sha256(b"layer of a"));

    // A layer dressed as a foreign layer with no URL is still a blob b lacks.
    let mut dressed: Value = serde_json::from_slice(&image).unwrap();
    dressed["layers"][0]["urls"] = json!([]);
    let resp = reg
        .put_manifest("rbee/b", "dressed", OCI_MANIFEST, &json_bytes(&dressed))
        .await;
    expect_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
    // URLs do not make a distributable layer foreign (and foreign layers
    // are refused unless configured, see `spec_corrections.rs`); naming it
    // does not make a's copy readable through b.
    dressed["layers"][0]["urls"] = json!(["https://example.com/layer.tar.gz"]);
    let resp = reg
        .put_manifest("rbee/b", "foreign", OCI_MANIFEST, &json_bytes(&dressed))
        .await;
    expect_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
    let layer = sha256(b"layer of a");
    let resp = reg
        .get(&format!("/v2/rbee/b/blobs/{layer}"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "BLOB_UNKNOWN").await;

    // An index in b over a manifest of a.
    let index = json_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": image_digest, "size": image.len()}]
    }));
    let resp = reg.put_manifest("rbee/b", "index", OCI_INDEX, &index).await;
    expect_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;

    for tag in ["1.0.0", "index", "dressed"] {
        let resp = reg
            .get(&format!("/v2/rbee/b/manifests/{tag}"))
            .send()
            .await
            .unwrap();
        expect_error(resp, 404, "MANIFEST_UNKNOWN").await;
    }
    let resp = reg
        .get(&format!("/v2/rbee/b/manifests/{image_digest}"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "MANIFEST_UNKNOWN").await;

    reg.assert_alive().await;
    reg.assert_nothing_outside_data_dir();
    reg.stop().await;
}

#[tokio::test]
async fn invalid_manifests_are_manifest_invalid() {
    let reg = TestRegistry::start().await;
    let config = b"{}";
    let layer = b"layer";
    reg.push_blob("rbee/w", config).await;
    reg.push_blob("rbee/w", layer).await;
    let image = oci_manifest(
        descriptor(OCI_EMPTY, config),
        vec![descriptor(OCI_LAYER, layer)],
    );

    let mut both = image.clone();
    both["manifests"] = json!([]);
    let mut index_with_layers =
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []});
    index_with_layers["layers"] = json!([descriptor(OCI_LAYER, layer)]);
    let mut version_one = image.clone();
    version_one["schemaVersion"] = json!(1);
    let mut no_config = image.clone();
    no_config.as_object_mut().unwrap().remove("config");
    let mut hostile_layer = image.clone();
    hostile_layer["layers"][0]["digest"] = json!("sha256:../../escaped");
    let mut unknown_type = image.clone();
    unknown_type["mediaType"] = json!("application/x-evil");

    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "mediaType disagrees with Content-Type",
            OCI_INDEX,
            json_bytes(&image),
        ),
        (
            "mediaType disagrees with Content-Type",
            DOCKER_MANIFEST,
            json_bytes(&image),
        ),
        ("both manifests and layers", OCI_MANIFEST, json_bytes(&both)),
        (
            "an index with layers",
            OCI_INDEX,
            json_bytes(&index_with_layers),
        ),
        ("schemaVersion 1", OCI_MANIFEST, json_bytes(&version_one)),
        ("no config", OCI_MANIFEST, json_bytes(&no_config)),
        (
            "a hostile layer digest",
            OCI_MANIFEST,
            json_bytes(&hostile_layer),
        ),
        (
            "an unknown media type",
            "application/x-evil",
            json_bytes(&unknown_type),
        ),
        ("not JSON", OCI_MANIFEST, b"not json at all".to_vec()),
        ("empty body", OCI_MANIFEST, Vec::new()),
        (
            "JSON that is not an object",
            OCI_MANIFEST,
            b"[1,2,3]".to_vec(),
        ),
    ];
    for (what, content_type, body) in cases {
        let resp = reg.put_manifest("rbee/w", "bad", content_type, &body).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{what}");
        check_error_body(&resp.bytes().await.unwrap(), "MANIFEST_INVALID", what);
    }
    expect_error(
        reg.get("/v2/rbee/w/manifests/bad").send().await.unwrap(),
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;

    // The valid one goes in, with a Content-Type that carries parameters.
    let resp = reg
        .put_manifest(
            "rbee/w",
            "good",
            &format!("{OCI_MANIFEST}; charset=utf-8"),
            &json_bytes(&image),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);

    reg.assert_alive().await;
    reg.assert_nothing_outside_data_dir();
    reg.stop().await;
}

#[tokio::test]
async fn manifests_and_referrers_are_invisible_through_other_repositories() {
    let reg = TestRegistry::start().await;
    let (image, digest) = reg.push_image("rbee/a", "1.0.0", b"layer").await;
    reg.push_blob("rbee/a", b"{}").await;
    let referrer = json_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.note",
        "config": descriptor(OCI_EMPTY, b"{}"),
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": digest, "size": image.len()}
    }));
    reg.push_manifest("rbee/a", &sha256(&referrer), OCI_MANIFEST, &referrer)
        .await;
    reg.push_image("rbee/b", "2.0.0", b"other layer").await;

    for reference in ["1.0.0", digest.as_str()] {
        let path = format!("/v2/rbee/b/manifests/{reference}");
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
        expect_error(
            reg.delete(&path).send().await.unwrap(),
            404,
            "MANIFEST_UNKNOWN",
        )
        .await;
    }
    // A manifest is not a blob, not even in its own repository.
    let resp = reg
        .get(&format!("/v2/rbee/a/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "BLOB_UNKNOWN").await;
    let resp = reg
        .get(&format!("/v2/rbee/b/referrers/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap()["manifests"], json!([]));

    // Still all there for the owner.
    let resp = reg.get("/v2/rbee/a/manifests/1.0.0").send().await.unwrap();
    assert_eq!(resp.bytes().await.unwrap(), image);
    let resp = reg
        .get(&format!("/v2/rbee/a/referrers/{digest}"))
        .send()
        .await
        .unwrap();
    let index: Value = resp.json().await.unwrap();
    assert_eq!(index["manifests"][0]["digest"], sha256(&referrer));
    reg.stop().await;
}
