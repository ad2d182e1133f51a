//! The one place the catalog reads a release's signature (issue 17): the
//! signature artifacts are referrers of the release's image index, of
//! artifact type [`SIGNATURE_ARTIFACT_TYPE`] (`rbee_schemas::signature`),
//! each holding a [`ReleaseSignature`] document. The newest (by its
//! `created` annotation) that reads and names this worker and version is
//! the release's signature.
//!
//! The catalog verifies nothing with a key: it is not trusted to, and
//! installers check signatures against publisher keys they pin. It only
//! refuses documents that are malformed or contradict themselves, and
//! passes the rest on. Kept apart from the yank reader on purpose: the
//! two have different rules for which record counts.

use rbee_schemas::annotations as ann;
use rbee_schemas::oci::ImageManifest;
use rbee_schemas::signature::{DOCUMENT_MAX_BYTES, ReleaseSignature, SIGNATURE_DOCUMENT};

use crate::domain::source::RegistryRead;
use crate::domain::upstream::UpstreamError;

pub use rbee_schemas::signature::SIGNATURE_ARTIFACT_TYPE;

/// Signature artifacts read per release: one per signing key, a few more
/// after key rotations.
const MAX_ARTIFACTS: usize = 16;

/// The signature of `worker_id` `version` whose image index is `subject`
/// in `repo`; `None` when it is unsigned. Artifacts that cannot be read
/// are passed over (and logged): a broken one cannot hide a release, and
/// installers that pin a key then refuse it as unsigned.
pub async fn read(
    source: &dyn RegistryRead,
    repo: &str,
    subject: &str,
    worker_id: &str,
    version: &str,
) -> Result<Option<ReleaseSignature>, UpstreamError> {
    let referrers = match source
        .referrers(repo, subject, SIGNATURE_ARTIFACT_TYPE)
        .await
    {
        Ok(r) => r,
        Err(UpstreamError::NotFound) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut best: Option<(String, ReleaseSignature)> = None;
    for (digest, _) in referrers.into_iter().take(MAX_ARTIFACTS) {
        match artifact(source, repo, &digest).await {
            Ok((created, doc)) => {
                if doc.worker_id != worker_id || doc.version != version {
                    tracing::warn!(%repo, %digest, "signature for another release; passed over");
                    continue;
                }
                if best.as_ref().is_none_or(|(c, _)| created > *c) {
                    best = Some((created, doc));
                }
            }
            Err(e @ (UpstreamError::Unavailable(_) | UpstreamError::RateLimited { .. })) => {
                return Err(e);
            }
            Err(e) => {
                tracing::warn!(%repo, %digest, error = %e, "unreadable signature; passed over");
            }
        }
    }
    Ok(best.map(|(_, doc)| doc))
}

/// One signature artifact: its `created` annotation and its document.
async fn artifact(
    source: &dyn RegistryRead,
    repo: &str,
    digest: &str,
) -> Result<(String, ReleaseSignature), UpstreamError> {
    let invalid = |e: &dyn std::fmt::Display| UpstreamError::Invalid(e.to_string());
    let (bytes, _) = source.manifest(repo, digest).await?;
    let manifest: ImageManifest = serde_json::from_slice(&bytes).map_err(|e| invalid(&e))?;
    let layer = manifest
        .layers
        .iter()
        .find(|l| l.media_type == SIGNATURE_DOCUMENT)
        .ok_or_else(|| invalid(&"no signature document"))?;
    let doc = source
        .small_blob(repo, &layer.digest, DOCUMENT_MAX_BYTES)
        .await?;
    let doc = ReleaseSignature::from_json(&doc).map_err(|e| invalid(&e))?;
    let created = manifest
        .annotations
        .as_ref()
        .and_then(|a| a.get(ann::CREATED).cloned())
        .unwrap_or_default();
    Ok((created, doc))
}
