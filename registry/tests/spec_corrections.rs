//! Corrections found while the registry was tried as a new user would
//! (issue 14): what the OCI conformance suite expects of references that
//! cannot exist, an upload's status while a chunk streams in, a failed
//! monolithic push, foreign layers, and error codes from the spec's table.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// How long an answer that must come "at once" may take on a busy machine.
const AT_ONCE: Duration = Duration::from_secs(5);

fn receiver_stream<T: Send + 'static>(
    rx: mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Waits (boundedly) until `done` holds; the registry offers no signal
/// for "these bytes reached the disk", so the test looks.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} never happened");
}

// ---- an upload's status while a PATCH streams ---------------------------------

#[tokio::test]
async fn upload_status_answers_at_once_while_a_patch_streams() {
    let reg = TestRegistry::start().await;
    let session = reg.start_upload("rbee/w").await;
    let resp = reg
        .patch(&session)
        .body(vec![7u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let session = location(&resp);

    // A second chunk whose body stalls after a few MiB.
    let (tx, rx) = mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    tx.send(Ok(vec![8u8; 2 << 20])).await.unwrap();
    let patch = tokio::spawn(
        reg.patch(&session)
            .body(reqwest::Body::wrap_stream(receiver_stream(rx)))
            .send(),
    );
    wait_until("storing part of the second chunk", || {
        reg.files_in("uploads")
            .iter()
            .any(|p| p.ends_with("data") && p.metadata().is_ok_and(|m| m.len() > 10))
    })
    .await;

    let resp = tokio::time::timeout(AT_ONCE, reg.get(&session).send())
        .await
        .expect("the status does not wait for the streaming PATCH")
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        header(&resp, "range").as_deref(),
        Some("0-9"),
        "the committed range: the chunk in flight is not acknowledged yet"
    );

    drop(tx);
    let resp = patch.await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let end = (10 + (2 << 20) - 1).to_string();
    assert_eq!(header(&resp, "range"), Some(format!("0-{end}")));
    let resp = reg.get(&session).send().await.unwrap();
    assert_eq!(header(&resp, "range"), Some(format!("0-{end}")));
    reg.stop().await;
}

// ---- manifest references that cannot exist ------------------------------------

#[tokio::test]
async fn reads_of_a_reference_that_cannot_exist_are_manifest_unknown() {
    let reg = TestRegistry::start().await;
    let (body, _) = reg.push_image("rbee/w", "1.0.0", b"layer").await;
    // The OCI conformance suite's own probe, then other shapes no tag or
    // digest can have.
    for reference in [
        ".INVALID_MANIFEST_NAME",
        "-dash",
        "sha256:tooshort",
        &"t".repeat(129),
    ] {
        let target = format!("/v2/rbee/w/manifests/{reference}");
        reg.raw("GET", &target, &[], b"")
            .await
            .expect_error(404, "MANIFEST_UNKNOWN", &target);
        let head = reg.raw("HEAD", &target, &[], b"").await;
        assert_eq!(head.status, 404, "HEAD {target}");
        assert!(head.body.is_empty(), "HEAD {target} has no body");
        reg.raw("DELETE", &target, &[], b"")
            .await
            .expect_error(404, "MANIFEST_UNKNOWN", &target);
    }
    // Writing under such a name is still refused as invalid.
    let put = reg
        .raw(
            "PUT",
            "/v2/rbee/w/manifests/.INVALID_MANIFEST_NAME",
            &[("Content-Type", OCI_MANIFEST)],
            &body,
        )
        .await;
    put.expect_error(400, "TAG_INVALID", "PUT of an invalid tag");
    let put = reg
        .raw(
            "PUT",
            "/v2/rbee/w/manifests/sha256:tooshort",
            &[("Content-Type", OCI_MANIFEST)],
            &body,
        )
        .await;
    put.expect_error(400, "DIGEST_INVALID", "PUT of an invalid digest");
    // The name still has to be valid: that is a 400 whatever the method.
    reg.raw("GET", "/v2/RBEE/manifests/.INVALID_MANIFEST_NAME", &[], b"")
        .await
        .expect_error(400, "NAME_INVALID", "an invalid name");
    reg.stop().await;
}

#[tokio::test]
async fn reads_of_an_impossible_reference_still_need_pull_access() {
    // A private namespace (not public) and no dev switch: the gate answers
    // before the reference is looked at.
    let reg = TestRegistry::start_with(|c| c.access.dev_open_loopback = false).await;
    let resp = reg
        .get("/v2/secret/w/manifests/.INVALID_MANIFEST_NAME")
        .send()
        .await
        .unwrap();
    assert!(
        resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN,
        "{}",
        resp.status()
    );
    reg.stop().await;
}

// ---- a monolithic POST whose body fails ----------------------------------------

#[tokio::test]
async fn a_monolithic_post_cut_off_leaves_no_session_behind() {
    // One session at most: a leaked one would refuse every later upload.
    let reg = TestRegistry::start_with(|c| c.max_upload_sessions = 1).await;
    let data = pseudo_random(1 << 20, 3);
    let digest = sha256(&data);
    let mut tcp = tokio::net::TcpStream::connect(reg.addr()).await.unwrap();
    let head = format!(
        "POST /v2/rbee/w/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        data.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&data[..256 << 10]).await.unwrap();
    tcp.flush().await.unwrap();
    wait_until("the upload's first bytes stored", || {
        reg.files_in("uploads")
            .iter()
            .any(|p| p.ends_with("data") && p.metadata().is_ok_and(|m| m.len() > 0))
    })
    .await;
    drop(tcp);

    wait_until("the cut-off session removed", || {
        reg.stored_sessions().is_empty()
    })
    .await;
    // Its place under the cap is free again, well before any TTL.
    let resp = reg.post("/v2/rbee/w/blobs/uploads/").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    reg.stop().await;
}

#[tokio::test]
async fn a_monolithic_post_with_a_wrong_digest_leaves_no_session_behind() {
    let reg = TestRegistry::start_with(|c| c.max_upload_sessions = 1).await;
    let resp = reg
        .post(&format!(
            "/v2/rbee/w/blobs/uploads/?digest={}",
            sha256(b"other")
        ))
        .body(b"content".to_vec())
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "DIGEST_INVALID").await;
    assert!(reg.stored_sessions().is_empty());
    let resp = reg.post("/v2/rbee/w/blobs/uploads/").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    reg.stop().await;
}

// ---- layers with urls ------------------------------------------------------------

const NONDISTRIBUTABLE: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
const DOCKER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// A manifest over a pushed config and one layer that is not pushed,
/// with `urls`.
async fn manifest_with_absent_layer(
    reg: &TestRegistry,
    media_type: &str,
    urls: &[&str],
) -> Vec<u8> {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    reg.push_blob("rbee/w", config).await;
    let mut layer = descriptor(media_type, b"a layer that lives elsewhere");
    layer["urls"] = serde_json::json!(urls);
    json_bytes(&oci_manifest(
        descriptor("application/vnd.oci.image.config.v1+json", config),
        vec![layer],
    ))
}

#[tokio::test]
async fn layers_with_urls_must_be_here_unless_foreign_layers_are_allowed() {
    let reg = TestRegistry::start().await;
    for media_type in [NONDISTRIBUTABLE, OCI_LAYER] {
        let body = manifest_with_absent_layer(&reg, media_type, &["https://example.com/l"]).await;
        let resp = reg.put_manifest("rbee/w", "t", OCI_MANIFEST, &body).await;
        expect_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
    }
    reg.stop().await;
}

#[tokio::test]
async fn allowed_foreign_layers_are_only_the_non_distributable_ones() {
    let reg = TestRegistry::start_with(|c| c.allow_foreign_layers = true).await;
    for media_type in [NONDISTRIBUTABLE, DOCKER_FOREIGN] {
        let body = manifest_with_absent_layer(&reg, media_type, &["https://example.com/l"]).await;
        reg.push_manifest("rbee/w", "foreign", OCI_MANIFEST, &body)
            .await;
    }
    // A distributable layer with urls must still be here, and so must a
    // non-distributable one that names no place.
    let body = manifest_with_absent_layer(&reg, OCI_LAYER, &["https://example.com/l"]).await;
    let resp = reg.put_manifest("rbee/w", "t", OCI_MANIFEST, &body).await;
    expect_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
    let body = manifest_with_absent_layer(&reg, NONDISTRIBUTABLE, &[]).await;
    let resp = reg.put_manifest("rbee/w", "t", OCI_MANIFEST, &body).await;
    expect_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
    reg.stop().await;
}

// ---- error codes from the spec's table -------------------------------------------

#[tokio::test]
async fn a_chunk_out_of_order_is_blob_upload_invalid() {
    let reg = TestRegistry::start().await;
    let session = reg.start_upload("rbee/w").await;
    let resp = reg
        .patch(&session)
        .header("content-range", "10-19")
        .body(vec![1u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(header(&resp, "range").as_deref(), Some("0-0"));
    expect_error(resp, 416, "BLOB_UPLOAD_INVALID").await;
    let resp = reg
        .patch(&session)
        .header("content-range", "nonsense")
        .body(vec![1u8; 10])
        .send()
        .await
        .unwrap();
    expect_error(resp, 416, "BLOB_UPLOAD_INVALID").await;
    reg.stop().await;
}

#[tokio::test]
async fn codes_outside_the_table_are_the_documented_extensions_only() {
    let reg = TestRegistry::start().await;
    let digest = reg.push_blob("rbee/w", b"0123456789").await;
    // No code of the table fits a range past a blob's end: RANGE_INVALID,
    // CNCF Distribution's, documented as an extension.
    let resp = reg
        .get(&format!("/v2/rbee/w/blobs/{digest}"))
        .header("range", "bytes=100-")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&resp, "content-range").as_deref(),
        Some("bytes */10")
    );
    expect_error(resp, 416, "RANGE_INVALID").await;
    // A route this registry does not have is an unsupported operation.
    for target in [
        "/v2/rbee/w/unknown/thing",
        "/elsewhere",
        "/v2/rbee/w/_oci/ext",
    ] {
        reg.raw("GET", target, &[], b"")
            .await
            .expect_error(404, "UNSUPPORTED", target);
    }
    reg.stop().await;
}
