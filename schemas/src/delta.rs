//! Binary deltas between two builds of one worker platform, so that an
//! upgrade downloads what changed rather than the whole archive.
//!
//! A delta is a referrer of the *new* release's image index: an OCI
//! manifest with `artifactType` [`DELTA_ARTIFACT_TYPE`], the empty config,
//! and one layer of media type [`DELTA_LAYER`], a zstd frame made with the
//! *unpacked* old tar as its reference prefix (zstd's `--patch-from`).
//! Decoding it against the old tar gives the new tar, which compressed
//! again as [`Recompress`] says gives the new layer byte for byte: its
//! sha256 is the target layer's digest, which the client checks before
//! anything is installed (why a delta over the compressed bytes is not
//! used instead: `docs/artifact-format.md`, "Deltas").
//!
//! The manifest's annotations name what the delta joins
//! ([`DeltaInfo::annotations`]), so that a reader picks the one it needs
//! from a referrers list without reading the others.

use std::collections::BTreeMap;

use crate::Platform;
use crate::annotations as ann;
use crate::media_types as mt;
use crate::oci::{self, Annotations, Descriptor, ImageManifest};

/// `artifactType` of a delta manifest, a referrer of a release index.
pub const DELTA_ARTIFACT_TYPE: &str = "application/vnd.rbee.worker.delta.v1";
/// Media type of the delta's one layer: a zstd frame whose reference
/// prefix is the old layer's unpacked tar.
pub const DELTA_LAYER: &str = "application/vnd.rbee.worker.delta.v1.zstd-patch";
/// Annotation: the digest of the layer the delta starts from.
pub const ANNOTATION_SOURCE: &str = "dev.rbee.worker.delta.source";
/// Annotation: the digest of the layer the delta rebuilds.
pub const ANNOTATION_TARGET: &str = "dev.rbee.worker.delta.target";
/// Annotation: how the rebuilt tar is compressed again (`zstd:LEVEL`).
pub const ANNOTATION_RECOMPRESS: &str = "dev.rbee.worker.delta.recompress";
/// Annotation: log2 of the zstd window the delta needs to be decoded
/// (the reference and the new tar together); a reader's memory budget.
pub const ANNOTATION_WINDOW_LOG: &str = "dev.rbee.worker.delta.window-log";
/// Annotation: the zstd library that proved the recompression
/// reproducible (`libzstd 1.5.7`), for diagnostics.
pub const ANNOTATION_ENCODER: &str = "dev.rbee.worker.delta.encoder";

/// The smallest and largest zstd window logs a delta may name (zstd's own
/// bounds on 64-bit systems).
pub const WINDOW_LOG_MIN: u32 = 10;
/// See [`WINDOW_LOG_MIN`].
pub const WINDOW_LOG_MAX: u32 = 31;

/// How the new tar is compressed again to give the layer: zstd at a level,
/// in zstd's multi-threaded frame format with a checksum and no content
/// size (the pusher's format, `docs/artifact-format.md`). Only zstd
/// layers get deltas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recompress {
    /// The zstd level, 1 to 19.
    pub level: i32,
}

impl Recompress {
    /// Parses `zstd:LEVEL`.
    pub fn parse(text: &str) -> Result<Self, DeltaError> {
        let level = text
            .strip_prefix("zstd:")
            .and_then(|l| l.parse::<i32>().ok())
            .filter(|l| (1..=19).contains(l))
            .ok_or_else(|| {
                DeltaError::Invalid(format!("recompress `{text}`: expected zstd:1-19"))
            })?;
        Ok(Recompress { level })
    }
}

impl std::fmt::Display for Recompress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "zstd:{}", self.level)
    }
}

/// Why a delta manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// Not a delta manifest, or a field is wrong.
    #[error("invalid delta: {0}")]
    Invalid(String),
}

/// What a delta joins and how to use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaInfo {
    /// The platform of both builds.
    pub platform: Platform,
    /// Digest of the layer it starts from (the installed one).
    pub source: String,
    /// Digest of the layer it rebuilds.
    pub target: String,
    /// How the rebuilt tar is compressed again.
    pub recompress: Recompress,
    /// log2 of the window needed to decode it.
    pub window_log: u32,
    /// The zstd library that made the target layer reproducibly.
    pub encoder: String,
    /// The delta blob (digest and size).
    pub blob: Descriptor,
}

/// True for `sha256:` and 64 lower-case hex digits.
pub fn is_sha256_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

impl DeltaInfo {
    /// The manifest annotations that describe the delta.
    pub fn annotations(&self) -> Annotations {
        BTreeMap::from([
            (ANNOTATION_SOURCE.into(), self.source.clone()),
            (ANNOTATION_TARGET.into(), self.target.clone()),
            (ANNOTATION_RECOMPRESS.into(), self.recompress.to_string()),
            (ANNOTATION_WINDOW_LOG.into(), self.window_log.to_string()),
            (ANNOTATION_ENCODER.into(), self.encoder.clone()),
            (ann::WORKER_PLATFORM.into(), self.platform.to_string()),
        ])
    }

    /// Reads and checks a delta manifest: its type, its one layer, and
    /// every annotation's grammar.
    pub fn from_manifest(manifest: &ImageManifest) -> Result<Self, DeltaError> {
        let bad = |m: &str| DeltaError::Invalid(m.to_owned());
        if manifest.artifact_type.as_deref() != Some(DELTA_ARTIFACT_TYPE) {
            return Err(bad("not a delta manifest"));
        }
        let [layer] = manifest.layers.as_slice() else {
            return Err(bad("a delta has exactly one layer"));
        };
        if layer.media_type != DELTA_LAYER || !is_sha256_digest(&layer.digest) {
            return Err(bad("the layer is not a delta blob"));
        }
        let empty = Annotations::new();
        let a = manifest.annotations.as_ref().unwrap_or(&empty);
        let get = |key: &str| {
            a.get(key)
                .ok_or_else(|| DeltaError::Invalid(format!("annotation {key} is missing")))
        };
        let digest = |key: &str| {
            get(key).and_then(|d| {
                is_sha256_digest(d)
                    .then(|| d.clone())
                    .ok_or_else(|| DeltaError::Invalid(format!("{key} is not a sha256 digest")))
            })
        };
        let window_log = get(ANNOTATION_WINDOW_LOG)?
            .parse::<u32>()
            .ok()
            .filter(|w| (WINDOW_LOG_MIN..=WINDOW_LOG_MAX).contains(w))
            .ok_or_else(|| bad("the window log is not a zstd window log"))?;
        let encoder = get(ANNOTATION_ENCODER)?;
        if encoder.len() > 64 || encoder.chars().any(char::is_control) {
            return Err(bad("the encoder annotation is too long or not one line"));
        }
        Ok(DeltaInfo {
            platform: get(ann::WORKER_PLATFORM)?
                .parse()
                .map_err(|_| bad("the platform is not an rbee platform"))?,
            source: digest(ANNOTATION_SOURCE)?,
            target: digest(ANNOTATION_TARGET)?,
            recompress: Recompress::parse(get(ANNOTATION_RECOMPRESS)?)?,
            window_log,
            encoder: encoder.clone(),
            blob: Descriptor {
                media_type: layer.media_type.clone(),
                digest: layer.digest.clone(),
                size: layer.size,
                platform: None,
                artifact_type: None,
                annotations: None,
            },
        })
    }

    /// The delta as a referrer of `subject` (the new release's index): the
    /// manifest, its descriptor (with the annotations, as referrer lists
    /// show them) and the empty config to upload first. The delta blob
    /// itself ([`DeltaInfo::blob`]) is uploaded by the caller.
    pub fn artifact(&self, subject: &Descriptor) -> DeltaArtifact {
        let empty = b"{}".to_vec();
        let mut subject = subject.clone();
        subject.annotations = None;
        subject.platform = None;
        let mut blob = self.blob.clone();
        blob.media_type = DELTA_LAYER.into();
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: mt::OCI_MANIFEST.into(),
            artifact_type: Some(DELTA_ARTIFACT_TYPE.into()),
            config: oci::describe(mt::OCI_EMPTY, &empty),
            layers: vec![blob],
            subject: Some(subject),
            annotations: Some(self.annotations()),
        };
        let manifest = oci::to_bytes(&manifest);
        let mut descriptor = oci::describe(mt::OCI_MANIFEST, &manifest);
        descriptor.artifact_type = Some(DELTA_ARTIFACT_TYPE.into());
        descriptor.annotations = Some(self.annotations());
        DeltaArtifact {
            manifest,
            descriptor,
            config: empty,
        }
    }
}

/// A delta manifest ready to push.
#[derive(Debug, Clone)]
pub struct DeltaArtifact {
    /// The manifest bytes.
    pub manifest: Vec<u8>,
    /// Its descriptor, as referrer lists show it.
    pub descriptor: Descriptor,
    /// The empty config `{}`.
    pub config: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> DeltaInfo {
        DeltaInfo {
            platform: Platform::LinuxX86_64,
            source: format!("sha256:{}", "a".repeat(64)),
            target: format!("sha256:{}", "b".repeat(64)),
            recompress: Recompress { level: 3 },
            window_log: 24,
            encoder: "libzstd 1.5.7".into(),
            blob: oci::describe(DELTA_LAYER, b"delta"),
        }
    }

    #[test]
    fn a_delta_manifest_reads_back_as_written() {
        let subject = oci::describe(mt::OCI_INDEX, b"{}");
        let artifact = info().artifact(&subject);
        let manifest: ImageManifest = serde_json::from_slice(&artifact.manifest).unwrap();
        assert_eq!(DeltaInfo::from_manifest(&manifest).unwrap(), info());
        assert_eq!(manifest.subject.unwrap().digest, subject.digest);
        assert_eq!(
            artifact.descriptor.artifact_type.as_deref(),
            Some(DELTA_ARTIFACT_TYPE)
        );
    }

    #[test]
    fn bad_delta_manifests_are_refused() {
        let subject = oci::describe(mt::OCI_INDEX, b"{}");
        let good: ImageManifest =
            serde_json::from_slice(&info().artifact(&subject).manifest).unwrap();
        let edits: [(&str, &str); 5] = [
            (ANNOTATION_SOURCE, "sha256:ABC"),
            (ANNOTATION_TARGET, "md5:00"),
            (ANNOTATION_RECOMPRESS, "gzip:6"),
            (ANNOTATION_WINDOW_LOG, "40"),
            (ann::WORKER_PLATFORM, "plan9-mips"),
        ];
        for (key, value) in edits {
            let mut m = good.clone();
            m.annotations
                .as_mut()
                .unwrap()
                .insert(key.into(), value.into());
            assert!(DeltaInfo::from_manifest(&m).is_err(), "{key}={value}");
        }
        let mut two_layers = good.clone();
        two_layers.layers.push(good.layers[0].clone());
        assert!(DeltaInfo::from_manifest(&two_layers).is_err());
        let mut other = good;
        other.artifact_type = Some(mt::PKGBUILD_ARTIFACT_TYPE.into());
        assert!(DeltaInfo::from_manifest(&other).is_err());
        assert_eq!(Recompress::parse("zstd:19"), Ok(Recompress { level: 19 }));
        assert!(Recompress::parse("zstd:0").is_err());
    }
}
