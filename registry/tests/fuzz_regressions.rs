//! Bugs the fuzz targets found in the registry (`fuzz/fuzz_targets/`),
//! replayed through the public API and over HTTP.

mod common;

use common::*;
use rbee_registry::manifest;
use serde_json::json;

/// A valid image manifest whose unknown member `extra` holds the string
/// `"\x99pplication"`: one byte that is not UTF-8, as in the fuzz input
/// (`fuzz/seeds/registry_manifest/non-utf8-unknown-member`).
fn manifest_with_a_non_utf8_byte(config: &[u8]) -> Vec<u8> {
    let mut m = oci_manifest(descriptor(OCI_EMPTY, config), vec![]);
    m["extra"] = json!("Xpplication");
    let mut body = json_bytes(&m);
    let at = body.windows(11).position(|w| w == b"Xpplication").unwrap();
    body[at] = 0x99;
    body
}

/// `registry_manifest` crash-512359d0…: serde_json skips unknown members
/// without checking their bytes, so a body that is not UTF-8, hence not
/// JSON (RFC 8259 §8.1), was accepted, stored and served to clients that
/// cannot read it. It is `MANIFEST_INVALID` now, and nothing is stored.
#[tokio::test]
async fn a_manifest_that_is_not_utf8_is_manifest_invalid() {
    let body = manifest_with_a_non_utf8_byte(b"{}");
    assert!(std::str::from_utf8(&body).is_err());
    let err = manifest::parse(Some(OCI_MANIFEST), &body).unwrap_err();
    assert!(err.to_string().contains("UTF-8"), "{err}");

    let reg = TestRegistry::start().await;
    reg.push_blob("rbee/w", b"{}").await;
    let resp = reg.put_manifest("rbee/w", "bad", OCI_MANIFEST, &body).await;
    expect_error(resp, 400, "MANIFEST_INVALID").await;
    let resp = reg.get("/v2/rbee/w/manifests/bad").send().await.unwrap();
    expect_error(resp, 404, "MANIFEST_UNKNOWN").await;
    reg.stop().await;
}
