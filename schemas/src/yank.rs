//! Yanks: a published version withdrawn from `latest` and listings (a bad
//! build, a security fix), recorded in the registry itself so that a
//! catalog rebuilt from the registry finds it.
//!
//! A yank (or an unyank) is a referrer of the release's image index: an
//! OCI manifest with `artifactType` [`YANK_ARTIFACT_TYPE`], the empty
//! config, and one layer of media type [`YANK_RECORD`] holding the JSON
//! [`YankRecord`] `{"yanked": true|false, "reason": "...", "at": RFC3339}`.
//! The same three facts are copied into the manifest's annotations
//! ([`annotations`](YankRecord::annotations)), which the referrers API lists,
//! so a reader decides from one referrers call without fetching blobs;
//! the layer is the record, the annotations a copy. Records are never
//! deleted: `unyank` adds a record with `yanked: false`, and the newest by
//! `at` wins ([`current`]).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::annotations as ann;
use crate::media_types as mt;
use crate::oci::{self, Annotations, Descriptor, ImageManifest};

/// `artifactType` of a yank record manifest, a referrer of a release index.
pub const YANK_ARTIFACT_TYPE: &str = "application/vnd.rbee.worker.yank.v1+json";
/// Media type of the record's one layer: the [`YankRecord`] JSON.
pub const YANK_RECORD: &str = "application/vnd.rbee.worker.yank.v1+json";
/// Annotation on the record manifest: `"true"` or `"false"`.
pub const ANNOTATION_YANKED: &str = "dev.rbee.worker.yanked";
/// Annotation on the record manifest: the reason.
pub const ANNOTATION_REASON: &str = "dev.rbee.worker.yank-reason";
/// Longest reason, in characters (one line in a terminal or a web page).
pub const REASON_MAX_CHARS: usize = 500;
/// Largest record document read, in bytes.
pub const RECORD_MAX_BYTES: usize = 4 * 1024;

/// One yank or unyank of a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YankRecord {
    /// `true` for a yank, `false` for an unyank.
    pub yanked: bool,
    /// Why, for people: shown by the catalog next to the version.
    pub reason: String,
    /// When; the newest record of a version wins.
    pub at: DateTime<Utc>,
}

/// Why a record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YankError {
    /// Not the JSON document, or a field is wrong.
    #[error("invalid yank record: {0}")]
    Invalid(String),
}

impl YankRecord {
    /// A record made now.
    pub fn new(yanked: bool, reason: &str) -> Result<Self, YankError> {
        let record = YankRecord {
            yanked,
            reason: reason.to_owned(),
            // Milliseconds, as written in the annotations: the record and
            // its copy then agree exactly.
            at: chrono::DurationRound::duration_trunc(
                Utc::now(),
                chrono::TimeDelta::milliseconds(1),
            )
            .unwrap_or_else(|_| Utc::now()),
        };
        record.check()?;
        Ok(record)
    }

    /// Reads a record document (the layer), checked.
    pub fn from_json(bytes: &[u8]) -> Result<Self, YankError> {
        if bytes.len() > RECORD_MAX_BYTES {
            return Err(YankError::Invalid(format!(
                "{} bytes, at most {RECORD_MAX_BYTES}",
                bytes.len()
            )));
        }
        let record: YankRecord =
            serde_json::from_slice(bytes).map_err(|e| YankError::Invalid(e.to_string()))?;
        record.check()?;
        Ok(record)
    }

    /// Reads a record from the annotations of its manifest, as a referrers
    /// list shows them; `None` when they are missing or malformed.
    pub fn from_annotations(annotations: &Annotations) -> Option<Self> {
        let yanked = match annotations.get(ANNOTATION_YANKED)?.as_str() {
            "true" => true,
            "false" => false,
            _ => return None,
        };
        let at = DateTime::parse_from_rfc3339(annotations.get(ann::CREATED)?)
            .ok()?
            .with_timezone(&Utc);
        let record = YankRecord {
            yanked,
            reason: annotations
                .get(ANNOTATION_REASON)
                .cloned()
                .unwrap_or_default(),
            at,
        };
        record.check().ok().map(|()| record)
    }

    /// The document, as the layer holds it.
    pub fn to_json(&self) -> Vec<u8> {
        oci::to_bytes(self)
    }

    /// `at` as written: RFC 3339, UTC, milliseconds.
    pub fn at_rfc3339(&self) -> String {
        self.at.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// The manifest annotations that copy the record.
    pub fn annotations(&self) -> Annotations {
        Annotations::from([
            (ANNOTATION_YANKED.into(), self.yanked.to_string()),
            (ANNOTATION_REASON.into(), self.reason.clone()),
            (ann::CREATED.into(), self.at_rfc3339()),
        ])
    }

    /// The record as a referrer of `subject` (the release index): the
    /// manifest, its descriptor, and the blobs to upload first (the empty
    /// config and the record).
    pub fn artifact(&self, subject: &Descriptor) -> YankArtifact {
        let empty = b"{}".to_vec();
        let record = self.to_json();
        let mut subject = subject.clone();
        subject.annotations = None;
        subject.platform = None;
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: mt::OCI_MANIFEST.into(),
            artifact_type: Some(YANK_ARTIFACT_TYPE.into()),
            config: oci::describe(mt::OCI_EMPTY, &empty),
            layers: vec![oci::describe(YANK_RECORD, &record)],
            subject: Some(subject),
            annotations: Some(self.annotations()),
        };
        let manifest = oci::to_bytes(&manifest);
        let mut descriptor = oci::describe(mt::OCI_MANIFEST, &manifest);
        descriptor.artifact_type = Some(YANK_ARTIFACT_TYPE.into());
        descriptor.annotations = Some(self.annotations());
        YankArtifact {
            manifest,
            descriptor,
            blobs: [empty, record],
        }
    }

    fn check(&self) -> Result<(), YankError> {
        let chars = self.reason.chars().count();
        if chars > REASON_MAX_CHARS {
            return Err(YankError::Invalid(format!(
                "reason: {chars} characters, at most {REASON_MAX_CHARS}"
            )));
        }
        if self.reason.chars().any(char::is_control) {
            return Err(YankError::Invalid(
                "reason: control characters (newlines included) are not allowed".into(),
            ));
        }
        Ok(())
    }
}

/// A record ready to push.
#[derive(Debug, Clone)]
pub struct YankArtifact {
    /// The manifest bytes.
    pub manifest: Vec<u8>,
    /// Its descriptor, with `artifactType` and the annotations.
    pub descriptor: Descriptor,
    /// The blobs it references: `{}` and the record.
    pub blobs: [Vec<u8>; 2],
}

/// The state of a version from its records: the newest by `at` (the later
/// one in the iteration on a tie); `None` (never yanked) without records.
/// A version is yanked when this is `Some` with `yanked: true`.
pub fn current(records: impl IntoIterator<Item = YankRecord>) -> Option<YankRecord> {
    records
        .into_iter()
        .fold(None, |best: Option<YankRecord>, r| match best {
            Some(b) if b.at > r.at => Some(b),
            _ => Some(r),
        })
}

/// The state of a version from its referrers list: the yank records among
/// `referrers` read from their annotations (others ignored).
pub fn current_from_referrers<'a>(
    referrers: impl IntoIterator<Item = &'a Descriptor>,
) -> Option<YankRecord> {
    current(
        referrers
            .into_iter()
            .filter(|d| d.artifact_type.as_deref() == Some(YANK_ARTIFACT_TYPE))
            .filter_map(|d| d.annotations.as_ref())
            .filter_map(YankRecord::from_annotations),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn record_round_trips_through_json_and_annotations() {
        let r = YankRecord {
            yanked: true,
            reason: "segfaults on AVX-512".into(),
            at: at("2026-11-30T12:00:00.250Z"),
        };
        assert_eq!(YankRecord::from_json(&r.to_json()).unwrap(), r);
        assert_eq!(YankRecord::from_annotations(&r.annotations()).unwrap(), r);
    }

    #[test]
    fn newest_record_wins_so_unyank_is_another_record() {
        let yank = YankRecord {
            yanked: true,
            reason: "bad".into(),
            at: at("2026-11-30T12:00:00Z"),
        };
        let unyank = YankRecord {
            yanked: false,
            reason: "fixed".into(),
            at: at("2026-11-30T13:00:00Z"),
        };
        assert!(!current([unyank.clone(), yank.clone()]).unwrap().yanked);
        assert!(!current([yank.clone(), unyank]).unwrap().yanked);
        assert!(current([yank]).unwrap().yanked);
        assert_eq!(current(Vec::new()), None);
    }

    #[test]
    fn record_refuses_control_characters_long_reasons_and_unknown_fields() {
        assert!(YankRecord::new(true, "line\nbreak").is_err());
        assert!(YankRecord::new(true, &"x".repeat(REASON_MAX_CHARS + 1)).is_err());
        assert!(
            YankRecord::from_json(
                br#"{"yanked":true,"reason":"","at":"2026-11-30T12:00:00Z","x":1}"#
            )
            .is_err()
        );
        assert!(YankRecord::from_json(br#"{"yanked":true,"reason":"","at":"yesterday"}"#).is_err());
    }

    #[test]
    fn artifact_refers_to_the_index_and_lists_as_a_yank() {
        let r = YankRecord::new(true, "bad build").unwrap();
        let index = oci::describe(mt::OCI_INDEX, b"{}");
        let a = r.artifact(&index);
        let m: ImageManifest = serde_json::from_slice(&a.manifest).unwrap();
        assert_eq!(m.subject.unwrap().digest, index.digest);
        assert_eq!(m.layers[0].digest, oci::sha256_digest(&a.blobs[1]));
        assert_eq!(current_from_referrers([&a.descriptor]).unwrap(), r.clone());
        let mut other = a.descriptor.clone();
        other.artifact_type = Some(mt::PKGBUILD_ARTIFACT_TYPE.into());
        assert_eq!(current_from_referrers([&other]), None);
    }
}
