//! `rbee-pusher yank` / `unyank`: withdraws a released version from
//! `latest` and listings, or brings it back, by adding a yank record (a
//! referrer of the release index, `rbee_schemas::yank`). Records are
//! never removed; the newest wins, so the history stays in the registry
//! and a catalog rebuilt from it finds the same state.

use bytes::Bytes;
use rbee_schemas::oci::{self as documents};
use rbee_schemas::yank::{self as yanks, YANK_ARTIFACT_TYPE, YankRecord};
use rbee_schemas::{media_types as mt, validate_published_worker_id};
use serde::Serialize;

use crate::client::RegistryClient;
use crate::error::PushError;
use crate::progress::Reporter;

/// What `yank`/`unyank` did, printed by `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct YankSummary {
    /// `yanked`, `unyanked`, or `unchanged` (it was in that state already).
    pub status: &'static str,
    /// The repository.
    pub repository: String,
    /// The version.
    pub version: String,
    /// The release index the record refers to.
    pub index_digest: String,
    /// The record written, when one was.
    pub record_digest: Option<String>,
}

/// Yanks (`yanked: true`) or unyanks `id`'s `version` with `reason`.
/// `namespace`: as for `push`; by default `rbee`, then `rbee-premium`.
pub async fn set_yanked(
    client: &RegistryClient,
    id: &str,
    version: &semver::Version,
    yanked: bool,
    reason: &str,
    namespace: Option<&str>,
    reporter: &Reporter,
) -> Result<YankSummary, PushError> {
    validate_published_worker_id(id)
        .map_err(|e| PushError::Invalid(format!("worker id `{id}`: {e}")))?;
    let record = YankRecord::new(yanked, reason).map_err(|e| PushError::Invalid(e.to_string()))?;
    let tag = version.to_string();
    let namespaces = match namespace {
        Some(ns) => vec![ns.to_owned()],
        None => vec!["rbee".to_owned(), "rbee-premium".to_owned()],
    };
    let mut found = None;
    for ns in &namespaces {
        let repo = format!("{ns}/{id}");
        match client.get_manifest(&repo, &tag, true).await {
            Ok(Some(m)) => {
                found = Some((repo, m));
                break;
            }
            Ok(None) => {}
            Err(PushError::Auth(_)) if namespace.is_none() => {}
            Err(e) => return Err(e),
        }
    }
    let Some((repo, index)) = found else {
        return Err(PushError::Invalid(format!(
            "{id} {tag} is not released (looked in {})",
            namespaces.join(", ")
        )));
    };
    let media_type = if index.media_type.is_empty() {
        mt::OCI_INDEX
    } else {
        index.media_type.as_str()
    };
    let subject = documents::describe(media_type, &index.bytes);
    let Some(listed) = client
        .referrers(&repo, &subject.digest, YANK_ARTIFACT_TYPE)
        .await?
    else {
        return Err(PushError::Registry(format!(
            "{repo}: the registry has no referrers API (OCI distribution-spec 1.1); yanks are \
             recorded as referrers"
        )));
    };
    let current = yanks::current_from_referrers(&listed.manifests);
    let now_yanked = current.as_ref().is_some_and(|c| c.yanked);
    let mut summary = YankSummary {
        status: "unchanged",
        repository: repo.clone(),
        version: tag.clone(),
        index_digest: subject.digest.clone(),
        record_digest: None,
    };
    if now_yanked == yanked && (!yanked || current.as_ref().is_some_and(|c| c.reason == reason)) {
        reporter.line(&format!(
            "{repo}:{tag} is {} already",
            if yanked { "yanked" } else { "not yanked" }
        ));
        return Ok(summary);
    }
    let artifact = record.artifact(&subject);
    for blob in &artifact.blobs {
        client
            .ensure_small_blob(&repo, Bytes::from(blob.clone()))
            .await?;
    }
    client
        .put_manifest(
            &repo,
            &artifact.descriptor.digest,
            mt::OCI_MANIFEST,
            Bytes::from(artifact.manifest.clone()),
        )
        .await?;
    summary.status = if yanked { "yanked" } else { "unyanked" };
    summary.record_digest = Some(artifact.descriptor.digest.clone());
    reporter.line(&format!(
        "{} {repo}:{tag} ({})",
        summary.status, artifact.descriptor.digest
    ));
    Ok(summary)
}
