//! Manifest validation: what a manifest PUT must satisfy before it is
//! stored, and the facts the registry keeps about it (what it references,
//! its subject, its artifact type).

use std::collections::BTreeMap;

use rbee_schemas::media_types::{self, MANIFEST_MEDIA_TYPES};
use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, Result};
use crate::reference::Digest;

/// Largest manifest accepted. The spec asks registries to accept at least
/// 4 MiB; larger bodies get 413.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// An OCI content descriptor as it appears in manifests and indexes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the referenced content.
    pub media_type: String,
    /// The digest of the referenced content.
    pub digest: Digest,
    /// The size of the referenced content in bytes.
    pub size: u64,
    /// The artifact type, for referrers and artifact manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations copied from the manifest, for referrers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// URLs of foreign (non-distributable) layers, which need not be here.
    #[serde(default, skip_serializing)]
    pub urls: Option<Vec<String>>,
    /// The platform, for index entries; kept as it was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
}

/// The union of the image manifest and the image index, as sent.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    schema_version: Option<u32>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

/// A manifest that passed validation.
#[derive(Debug)]
pub struct Manifest {
    /// The media type it is stored and served with.
    pub media_type: String,
    /// Its artifact type for the referrers API: `artifactType`, else the
    /// config media type (image-spec's rule for referrers).
    pub artifact_type: Option<String>,
    /// Its annotations.
    pub annotations: Option<BTreeMap<String, String>>,
    /// The manifest it refers to, if any.
    pub subject: Option<Descriptor>,
    /// Blobs (config and layers) that must be in the repository, with the
    /// size each descriptor declares (checked against what is stored).
    pub blobs: Vec<Descriptor>,
    /// Manifests (index entries) that must be in the repository, likewise.
    pub manifests: Vec<Descriptor>,
    /// Non-distributable ("foreign") layers with `urls`: they may live
    /// elsewhere, so they need to be here only when the registry does not
    /// allow foreign layers (`RegistryConfig::allow_foreign_layers`).
    pub foreign: Vec<Descriptor>,
}

/// Media type prefixes of non-distributable layers: OCI's (deprecated, but
/// still in use) and Docker's foreign layers.
const NON_DISTRIBUTABLE_PREFIXES: [&str; 2] = [
    "application/vnd.oci.image.layer.nondistributable.",
    "application/vnd.docker.image.rootfs.foreign.",
];

/// Whether `layer` is one a registry may be allowed not to hold: a
/// non-distributable media type, and `urls` naming where it lives (an
/// empty list names no place).
fn is_foreign(layer: &Descriptor) -> bool {
    NON_DISTRIBUTABLE_PREFIXES
        .iter()
        .any(|p| essence(&layer.media_type).starts_with(p))
        && layer.urls.as_ref().is_some_and(|u| !u.is_empty())
}

/// Strips parameters (`; charset=…`) and white space from a media type.
fn essence(media_type: &str) -> &str {
    media_type.split(';').next().unwrap_or("").trim()
}

/// Validates `body` as a manifest sent with `content_type`.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Manifest> {
    // JSON is UTF-8 (RFC 8259 §8.1). serde_json skips unknown members
    // without checking their bytes, so without this a body that is not
    // JSON would be stored and served to clients that cannot read it.
    let text = std::str::from_utf8(body)
        .map_err(|e| RegistryError::ManifestInvalid(format!("not UTF-8, so not JSON: {e}")))?;
    let wire: Wire = serde_json::from_str(text)
        .map_err(|e| RegistryError::ManifestInvalid(format!("not a valid manifest: {e}")))?;
    if wire.schema_version != Some(2) {
        return Err(RegistryError::ManifestInvalid(
            "schemaVersion must be 2".into(),
        ));
    }
    let header = content_type.map(essence).filter(|c| !c.is_empty());
    let media_type = match (&wire.media_type, header) {
        (Some(body_type), Some(header)) if body_type != header => {
            return Err(RegistryError::ManifestInvalid(format!(
                "mediaType `{body_type}` does not match Content-Type `{header}`"
            )));
        }
        (Some(body_type), _) => body_type.clone(),
        (None, Some(header)) => header.to_owned(),
        (None, None) if wire.manifests.is_some() => media_types::OCI_INDEX.to_owned(),
        (None, None) => media_types::OCI_MANIFEST.to_owned(),
    };
    if !MANIFEST_MEDIA_TYPES.contains(&media_type.as_str()) {
        return Err(RegistryError::ManifestInvalid(format!(
            "unsupported manifest media type `{media_type}`; supported: {}",
            MANIFEST_MEDIA_TYPES.join(", ")
        )));
    }
    let is_index = media_types::is_index(&media_type);
    if wire.manifests.is_some() && (wire.layers.is_some() || wire.config.is_some()) {
        return Err(RegistryError::ManifestInvalid(
            "a manifest cannot have both `manifests` and `layers`/`config`".into(),
        ));
    }
    let (blobs, foreign, manifests, artifact_type) = if is_index {
        let entries = wire
            .manifests
            .ok_or_else(|| RegistryError::ManifestInvalid("an index needs `manifests`".into()))?;
        (Vec::new(), Vec::new(), entries, wire.artifact_type)
    } else {
        if wire.manifests.is_some() {
            return Err(RegistryError::ManifestInvalid(format!(
                "`manifests` is not allowed in a {media_type}"
            )));
        }
        let config = wire.config.ok_or_else(|| {
            RegistryError::ManifestInvalid("an image manifest needs `config`".into())
        })?;
        let layers = wire.layers.ok_or_else(|| {
            RegistryError::ManifestInvalid("an image manifest needs `layers`".into())
        })?;
        let artifact_type = wire
            .artifact_type
            .or_else(|| Some(config.media_type.clone()));
        // Only a non-distributable layer may live at its URLs instead of
        // here; any other layer must be here, `urls` or not.
        let (foreign, layers): (Vec<_>, Vec<_>) = layers.into_iter().partition(is_foreign);
        let mut blobs = vec![config];
        blobs.extend(layers);
        (blobs, foreign, Vec::new(), artifact_type)
    };
    Ok(Manifest {
        media_type,
        artifact_type,
        annotations: wire.annotations,
        subject: wire.subject,
        blobs,
        manifests,
        foreign,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/octet-stream","digest":"{}","size":5}}]{extra}}}"#,
            media_types::OCI_MANIFEST,
            digest('a'),
            digest('b')
        )
    }

    #[test]
    fn image_manifest_lists_its_blobs() {
        let m = parse(Some(media_types::OCI_MANIFEST), image("").as_bytes()).unwrap();
        assert_eq!(m.blobs.len(), 2);
        assert_eq!(
            m.artifact_type.as_deref(),
            Some("application/vnd.oci.empty.v1+json")
        );
    }

    #[test]
    fn media_type_must_agree_with_content_type() {
        let err = parse(Some(media_types::OCI_INDEX), image("").as_bytes()).unwrap_err();
        assert!(matches!(err, RegistryError::ManifestInvalid(_)), "{err:?}");
    }

    #[test]
    fn manifests_and_layers_together_are_refused() {
        let body = image(r#","manifests":[]"#);
        assert!(parse(None, body.as_bytes()).is_err());
    }

    #[test]
    fn subject_is_kept() {
        let body = image(&format!(
            r#","subject":{{"mediaType":"{}","digest":"{}","size":10}}"#,
            media_types::OCI_MANIFEST,
            digest('c')
        ));
        let m = parse(None, body.as_bytes()).unwrap();
        assert_eq!(m.subject.unwrap().digest.to_string(), digest('c'));
    }

    #[test]
    fn only_non_distributable_layers_with_urls_are_foreign() {
        let layer = |media_type: &str, urls: &str| {
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"{media_type}","digest":"{}","size":5{urls}}}]}}"#,
                media_types::OCI_MANIFEST,
                digest('a'),
                digest('b')
            )
        };
        let urls = r#","urls":["https://example.com/x"]"#;
        for (media_type, urls, foreign) in [
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                urls,
                true,
            ),
            (
                "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                urls,
                true,
            ),
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar",
                r#","urls":[]"#,
                false,
            ),
            ("application/vnd.oci.image.layer.v1.tar+gzip", urls, false),
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar",
                "",
                false,
            ),
        ] {
            let m = parse(None, layer(media_type, urls).as_bytes()).unwrap();
            assert_eq!(m.foreign.len(), usize::from(foreign), "{media_type} {urls}");
            assert_eq!(
                m.blobs.len(),
                2 - usize::from(foreign),
                "{media_type} {urls}"
            );
        }
    }

    #[test]
    fn garbage_and_bad_digests_are_invalid() {
        assert!(parse(None, b"not json").is_err());
        assert!(parse(None, br#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:../../x","size":1}]}"#).is_err());
        assert!(parse(Some("text/plain"), br#"{"schemaVersion":2,"manifests":[]}"#).is_err());
    }
}
