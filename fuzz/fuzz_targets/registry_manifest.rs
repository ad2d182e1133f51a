//! The registry's manifest validation (`rbee_registry::manifest::parse`),
//! fed an arbitrary body and a `Content-Type` chosen by the first byte
//! (none, each supported type, one with parameters, or arbitrary text).
//!
//! Invariants: an accepted manifest is UTF-8 JSON with a supported media
//! type that agrees with the header and the body; an index references
//! manifests only and an image manifest blobs only (its config first, never
//! more than config plus layers); every digest re-parses to itself; and an
//! accepted manifest is accepted again when pushed back with the media type
//! it is served with (registry-to-registry copies), with the same
//! references.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rbee_registry::manifest::{self, Manifest};
use rbee_registry::reference::Digest;
use rbee_schemas::media_types::{self, MANIFEST_MEDIA_TYPES};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (header, body): (Option<String>, &[u8]) = match selector % 8 {
        0 => (None, rest),
        n @ 1..=4 => (
            Some(MANIFEST_MEDIA_TYPES[usize::from(n) - 1].to_owned()),
            rest,
        ),
        5 => (
            Some(format!(" {} ; charset=utf-8", media_types::OCI_INDEX)),
            rest,
        ),
        _ => {
            let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let header = String::from_utf8_lossy(&rest[..end]).into_owned();
            (Some(header), rest.get(end + 1..).unwrap_or(&[]))
        }
    };
    let Ok(m) = manifest::parse(header.as_deref(), body) else {
        return;
    };
    check(&m, header.as_deref(), body);

    let again = manifest::parse(Some(&m.media_type), body)
        .unwrap_or_else(|e| panic!("accepted, then refused under its own media type: {e}"));
    assert_eq!(again.media_type, m.media_type);
    assert_eq!(again.blobs, m.blobs);
    assert_eq!(again.manifests, m.manifests);
    assert_eq!(again.artifact_type, m.artifact_type);
});

fn check(m: &Manifest, header: Option<&str>, body: &[u8]) {
    assert!(MANIFEST_MEDIA_TYPES.contains(&m.media_type.as_str()));
    let essence = header.map(|h| h.split(';').next().unwrap_or("").trim());
    if let Some(essence) = essence.filter(|e| !e.is_empty()) {
        assert_eq!(m.media_type, essence);
    }
    // Stored and served as JSON, so UTF-8 (RFC 8259 §8.1).
    let text = std::str::from_utf8(body).expect("accepted, so UTF-8");
    // serde_json's `Value` refuses lone surrogate escapes (`"\ud800"`),
    // which JSON's grammar allows; such bodies get only the checks above.
    let Ok(json) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    assert_eq!(json["schemaVersion"], 2);
    if let Some(body_type) = json.get("mediaType").and_then(|v| v.as_str()) {
        assert_eq!(m.media_type, body_type);
    }
    if media_types::is_index(&m.media_type) {
        assert!(m.blobs.is_empty());
        let listed = json["manifests"]
            .as_array()
            .expect("an index lists manifests");
        assert_eq!(m.manifests.len(), listed.len());
    } else {
        assert!(m.manifests.is_empty());
        let layers = json["layers"].as_array().expect("an image has layers");
        assert!(!m.blobs.is_empty() && m.blobs.len() <= 1 + layers.len());
        assert_eq!(
            m.blobs[0].digest.to_string(),
            json["config"]["digest"].as_str().unwrap()
        );
        assert!(m.artifact_type.is_some());
    }
    for d in m
        .blobs
        .iter()
        .chain(&m.manifests)
        .chain(&m.subject)
        .map(|d| &d.digest)
    {
        assert_eq!(&Digest::parse(&d.to_string()).unwrap(), d);
    }
}
