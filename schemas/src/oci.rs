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

use crate::annotations::WORKER_PLATFORM;

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

impl Descriptor {
    /// The rbee platform this image index entry is the build for: its
    /// `dev.rbee.worker.platform` annotation when that names a platform,
    /// else its OCI `platform` pair. `None` for entries of no rbee platform
    /// (attestations, systems rbee does not build for). The one rule every
    /// reader of a release index follows; [`set_worker_platform`] writes
    /// what it reads.
    ///
    /// [`set_worker_platform`]: Descriptor::set_worker_platform
    pub fn worker_platform(&self) -> Option<crate::Platform> {
        let by_annotation = self
            .annotations
            .as_ref()
            .and_then(|a| a.get(WORKER_PLATFORM))
            .and_then(|p| p.parse().ok());
        by_annotation.or_else(|| {
            self.platform
                .as_ref()
                .and_then(|p| crate::Platform::from_oci(&p.os, &p.architecture))
        })
    }

    /// Marks this image index entry as the build for `platform`: the OCI
    /// `platform` pair (for OCI clients) and the `dev.rbee.worker.platform`
    /// annotation.
    pub fn set_worker_platform(&mut self, platform: crate::Platform) {
        let oci = platform.oci();
        self.platform = Some(Platform {
            architecture: oci.architecture.into(),
            os: oci.os.into(),
        });
        self.annotations
            .get_or_insert_default()
            .insert(WORKER_PLATFORM.into(), platform.to_string());
    }
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

impl ImageIndex {
    /// The entries that are platform builds, each with its platform
    /// ([`Descriptor::worker_platform`]), in the index's order; other
    /// entries are passed over. Whether a platform may appear twice is the
    /// caller's rule.
    pub fn platform_builds(&self) -> impl Iterator<Item = (crate::Platform, &Descriptor)> {
        self.manifests
            .iter()
            .filter_map(|d| d.worker_platform().map(|p| (p, d)))
    }

    /// The entry that is the build for `platform` (the first, should the
    /// index list it twice).
    pub fn find_platform(&self, platform: crate::Platform) -> Option<&Descriptor> {
        self.platform_builds()
            .find(|(p, _)| *p == platform)
            .map(|(_, d)| d)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Platform as Rbee;

    fn entry(n: u8) -> Descriptor {
        describe("application/vnd.oci.image.manifest.v1+json", &[n])
    }

    fn index(manifests: Vec<Descriptor>) -> ImageIndex {
        ImageIndex {
            schema_version: 2,
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            artifact_type: None,
            manifests,
            annotations: None,
        }
    }

    fn oci_pair(os: &str, architecture: &str) -> Option<Platform> {
        Some(Platform {
            architecture: architecture.into(),
            os: os.into(),
        })
    }

    #[test]
    fn what_set_worker_platform_writes_worker_platform_reads() {
        for p in Rbee::ALL {
            let mut d = entry(0);
            d.set_worker_platform(p);
            assert_eq!(d.worker_platform(), Some(p));
            let oci = d.platform.as_ref().unwrap();
            assert_eq!(Rbee::from_oci(&oci.os, &oci.architecture), Some(p));
            assert_eq!(d.annotations.as_ref().unwrap()[WORKER_PLATFORM], p.name());
        }
    }

    #[test]
    fn set_worker_platform_keeps_other_annotations() {
        let mut d = entry(0);
        d.annotations = Some(Annotations::from([("a".into(), "b".into())]));
        d.set_worker_platform(Rbee::LinuxX86_64);
        assert_eq!(d.annotations.unwrap().len(), 2);
    }

    #[test]
    fn the_annotation_names_the_platform_before_the_oci_pair() {
        let mut d = entry(0);
        d.platform = oci_pair("darwin", "arm64");
        d.annotations = Some(Annotations::from([(
            WORKER_PLATFORM.into(),
            "linux-x86_64".into(),
        )]));
        assert_eq!(d.worker_platform(), Some(Rbee::LinuxX86_64));
        // An annotation that names no platform falls back to the pair.
        d.annotations = Some(Annotations::from([(
            WORKER_PLATFORM.into(),
            "plan9-mips".into(),
        )]));
        assert_eq!(d.worker_platform(), Some(Rbee::MacosAarch64));
    }

    #[test]
    fn entries_of_no_rbee_platform_are_passed_over() {
        let attestation = entry(1);
        let mut other_system = entry(2);
        other_system.platform = oci_pair("plan9", "mips");
        let mut linux = entry(3);
        linux.platform = oci_pair("linux", "amd64");
        let mut mac = entry(4);
        mac.set_worker_platform(Rbee::MacosAarch64);
        let i = index(vec![attestation, other_system, linux.clone(), mac.clone()]);
        let builds: Vec<(Rbee, &str)> = i
            .platform_builds()
            .map(|(p, d)| (p, d.digest.as_str()))
            .collect();
        assert_eq!(
            builds,
            [
                (Rbee::LinuxX86_64, linux.digest.as_str()),
                (Rbee::MacosAarch64, mac.digest.as_str())
            ]
        );
        assert_eq!(i.find_platform(Rbee::MacosAarch64), Some(&mac));
        assert_eq!(i.find_platform(Rbee::LinuxX86_64), Some(&linux));
        assert_eq!(i.find_platform(Rbee::WindowsX86_64), None);
    }

    #[test]
    fn find_platform_takes_the_first_of_two_entries() {
        let mut a = entry(1);
        a.set_worker_platform(Rbee::LinuxAarch64);
        let mut b = entry(2);
        b.set_worker_platform(Rbee::LinuxAarch64);
        let i = index(vec![a.clone(), b]);
        assert_eq!(i.find_platform(Rbee::LinuxAarch64), Some(&a));
    }
}
