//! OCI documents as rbee writes and reads them: image manifests, image
//! indexes and their descriptors.
//!
//! These are our own serde types rather than `oci-spec`'s because release
//! digests must be reproducible: `oci-spec` keeps annotations in a
//! `HashMap`, whose serialisation order changes from run to run. Here
//! annotations are a `BTreeMap` and field order is fixed, so the same
//! release always serialises to the same bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Annotations, sorted by key so that serialisation is stable.
pub type Annotations = BTreeMap<String, String>;

/// An OCI platform as written in an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// e.g. `amd64`.
    pub architecture: String,
    /// e.g. `linux`.
    pub os: String,
}

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// `sha256:<hex>` of the referenced content.
    pub digest: String,
    /// Size in bytes of the referenced content.
    pub size: u64,
    /// Platform, for index entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Artifact type, for index entries and referrers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
}

/// An OCI image manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.manifest.v1+json`.
    pub media_type: String,
    /// What kind of artifact this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers.
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
}

/// An OCI image index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.index.v1+json`.
    pub media_type: String,
    /// What kind of artifact this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The manifests it lists.
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
}

/// Serialises a document to the exact bytes that are pushed (and hashed).
pub fn to_bytes<T: Serialize>(doc: &T) -> Vec<u8> {
    serde_json::to_vec(doc).expect("documents of plain strings and numbers always serialise")
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// The descriptor of a document serialised to `bytes`.
pub fn describe(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest: sha256_digest(bytes),
        size: bytes.len() as u64,
        platform: None,
        artifact_type: None,
        annotations: None,
    }
}
