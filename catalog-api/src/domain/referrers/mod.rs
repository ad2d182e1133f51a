//! The one reader of a release's referrer records: small artifacts
//! attached to the release's image index (`subject` = the index) that
//! say something about it: a yank ([`yank`]), and, as they land, a
//! signature or a delta (CONTRACTS L). Every kind is read with the same
//! rules, which are the rules for untrusted registry content:
//!
//! - at most [`RecordKind::MAX_RECORDS`] referrers of the kind are read;
//! - a record whose manifest or document is gone, or does not read
//!   ([`UpstreamError::NotFound`] or [`UpstreamError::Invalid`]), is passed
//!   over and logged: a broken record can neither hide a release nor fail
//!   its listing;
//! - a registry that fails or rate-limits fails the read, so that a
//!   caller retries rather than deciding on part of the records;
//! - a document is read only up to the kind's [`RecordKind::DOCUMENT`]
//!   cap, through [`RegistryRead::small_blob`].
//!
//! Adding an artifact type is one module here: a type implementing
//! [`RecordKind`] (its artifact type, where its document is, how it
//! parses), and a function that turns its records into what the catalog
//! keeps (for a yank: the newest by `at`). The view stores what
//! [`crate::domain::catalog::Release`] carries, so a reader called from
//! `catalog/fetch.rs::release` reaches the view too.

pub mod yank;

use rbee_schemas::oci::ImageManifest;

use crate::domain::source::RegistryRead;
use crate::domain::upstream::UpstreamError;

/// One kind of referrer record.
pub trait RecordKind {
    /// The `artifactType` of the record manifests.
    const ARTIFACT_TYPE: &'static str;
    /// Where the record's document is: the media type of the layer that
    /// holds it, and the largest document read. `None` when the manifest
    /// alone is the record (its annotations and layer descriptors, as for
    /// a large artifact whose blob the catalog only points at).
    const DOCUMENT: Option<(&'static str, usize)>;
    /// Most referrers of this kind read for one release.
    const MAX_RECORDS: usize = 64;
    /// The record, as read.
    type Record: Send;

    /// Reads one record from its manifest (whose digest is
    /// `manifest_digest`) and, when [`Self::DOCUMENT`] names one, its
    /// document; the error says why it is not a record.
    fn parse(
        manifest_digest: &str,
        manifest: &ImageManifest,
        document: Option<&[u8]>,
    ) -> Result<Self::Record, String>;
}

/// The readable records of kind `K` attached to the image index
/// `subject` of `repo`, in the order the registry lists them.
pub async fn records<K: RecordKind>(
    source: &dyn RegistryRead,
    repo: &str,
    subject: &str,
) -> Result<Vec<K::Record>, UpstreamError> {
    let listed = match source.referrers(repo, subject, K::ARTIFACT_TYPE).await {
        Ok(listed) => listed,
        // No referrers (or no subject): no record.
        Err(UpstreamError::NotFound) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    if listed.len() > K::MAX_RECORDS {
        tracing::warn!(
            repo,
            subject,
            listed = listed.len(),
            max = K::MAX_RECORDS,
            artifact_type = K::ARTIFACT_TYPE,
            "too many referrer records; the first are read"
        );
    }
    let mut records = Vec::new();
    for (digest, _) in listed.into_iter().take(K::MAX_RECORDS) {
        match record::<K>(source, repo, &digest).await {
            Ok(record) => records.push(record),
            Err(e @ (UpstreamError::NotFound | UpstreamError::Invalid(_))) => {
                tracing::warn!(repo, record = %digest, artifact_type = K::ARTIFACT_TYPE,
                    error = %e, "unreadable referrer record passed over");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(records)
}

/// One record: its manifest, then its document if the kind has one.
async fn record<K: RecordKind>(
    source: &dyn RegistryRead,
    repo: &str,
    digest: &str,
) -> Result<K::Record, UpstreamError> {
    let invalid = |why: String| UpstreamError::Invalid(format!("{repo}@{digest}: {why}"));
    let (bytes, _) = source.manifest(repo, digest).await?;
    let manifest: ImageManifest =
        serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
    let document = match K::DOCUMENT {
        None => None,
        Some((media_type, limit)) => {
            let layer = manifest
                .layers
                .iter()
                .find(|l| l.media_type == media_type)
                .ok_or_else(|| invalid(format!("no {media_type} layer")))?;
            Some(source.small_blob(repo, &layer.digest, limit).await?)
        }
    };
    K::parse(digest, &manifest, document.as_deref()).map_err(invalid)
}
