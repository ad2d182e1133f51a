//! The OCI documents the pusher writes and the catalog reads
//! (`rbee_schemas::oci`: image manifest, image index, descriptors), fed
//! arbitrary JSON.
//!
//! Invariants: a document that reads serialises to bytes that read back to
//! the same value and serialise to the same bytes again (release digests
//! are reproducible); `describe` names those bytes exactly; and the
//! registry accepts what the pusher would write from it (when its
//! digests are valid) with the references it lists.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rbee_registry::manifest;
use rbee_registry::reference::Digest;
use rbee_schemas::media_types;
use rbee_schemas::oci::{self, Descriptor, ImageIndex, ImageManifest};
use serde::{Serialize, de::DeserializeOwned};

fuzz_target!(|data: &[u8]| {
    if let Some(m) = round_trip::<ImageManifest>(data) {
        let descriptors = std::iter::once(&m.config)
            .chain(&m.layers)
            .chain(&m.subject);
        if m.schema_version == 2
            && m.media_type == media_types::OCI_MANIFEST
            && all_digests_valid(descriptors)
        {
            let accepted = manifest::parse(Some(&m.media_type), &oci::to_bytes(&m))
                .unwrap_or_else(|e| panic!("the registry refuses what the pusher writes: {e}"));
            let want: Vec<&str> = std::iter::once(&m.config)
                .chain(&m.layers)
                .map(|d| d.digest.as_str())
                .collect();
            let got: Vec<String> = accepted
                .blobs
                .iter()
                .map(|d| d.digest.to_string())
                .collect();
            assert_eq!(got, want);
            let artifact_type = m.artifact_type.as_ref().unwrap_or(&m.config.media_type);
            assert_eq!(accepted.artifact_type.as_ref(), Some(artifact_type));
            assert_eq!(
                accepted.subject.map(|s| s.digest.to_string()),
                m.subject.map(|s| s.digest)
            );
        }
    }
    if let Some(index) = round_trip::<ImageIndex>(data)
        && index.schema_version == 2
        && index.media_type == media_types::OCI_INDEX
        && all_digests_valid(&index.manifests)
    {
        let accepted = manifest::parse(Some(&index.media_type), &oci::to_bytes(&index))
            .unwrap_or_else(|e| panic!("the registry refuses what the pusher writes: {e}"));
        let got: Vec<String> = accepted
            .manifests
            .iter()
            .map(|d| d.digest.to_string())
            .collect();
        let want: Vec<&str> = index.manifests.iter().map(|d| d.digest.as_str()).collect();
        assert_eq!(got, want);
    }
});

/// Reads `data` as a `T`; when it reads, checks that its serialised form is
/// stable and reads back to the same value.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    data: &[u8],
) -> Option<T> {
    let doc: T = serde_json::from_slice(data).ok()?;
    let bytes = oci::to_bytes(&doc);
    let again: T = serde_json::from_slice(&bytes).expect("what we write, we read");
    assert_eq!(again, doc);
    assert_eq!(oci::to_bytes(&again), bytes, "serialisation is not stable");
    let d = oci::describe("application/octet-stream", &bytes);
    assert_eq!(d.size, bytes.len() as u64);
    assert_eq!(d.digest, oci::sha256_digest(&bytes));
    assert!(Digest::parse(&d.digest).is_ok());
    Some(doc)
}

fn all_digests_valid<'a>(descriptors: impl IntoIterator<Item = &'a Descriptor>) -> bool {
    descriptors
        .into_iter()
        .all(|d| Digest::parse(&d.digest).is_ok())
}
