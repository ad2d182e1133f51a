//! Staged publishing, step one: `rbee-pusher push --stage` on each
//! platform's CI runner uploads that platform's archive and manifest
//! without tagging anything; `rbee-pusher release` (`release_staged.rs`)
//! later assembles the index from what was staged and tags it in one PUT.
//!
//! How staged content is found again, by version and platform, without a
//! tag (a tag would make it visible to every tag lister, and would keep it
//! from garbage collection): every version has an *anchor*, a tiny
//! manifest computed from the worker id and version alone
//! ([`anchor`]), so every runner and the release job compute the same
//! digest without talking to each other. Each staged platform is a
//! *staging record*: an image index of one entry (the platform manifest)
//! whose `subject` is the anchor, with `artifactType`
//! [`STAGED_ARTIFACT_TYPE`] and the platform and staging time as
//! annotations. The release job lists the anchor's referrers. The
//! PKGBUILD is staged the same way (its usual artifact, with the anchor as
//! subject). Anchor, records and unreleased manifests are untagged, so a
//! registry's garbage collection removes them once its grace period for
//! untagged manifests passes; after a release, the platform manifests are
//! kept by the version's index and only anchor and records go.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use rbee_schemas::oci::{self as documents, Annotations, Descriptor, ImageIndex, ImageManifest};
use rbee_schemas::{Platform, annotations as ann, media_types as mt};
use serde::Serialize;

use crate::client::RegistryClient;
use crate::error::PushError;
use crate::progress::Reporter;
use crate::publish::{self, PlatformSummary, PublishOptions};
use crate::referrers::{self, PkgbuildArtifact};
use crate::release::Release;

/// `artifactType` of a version's staging anchor.
pub const ANCHOR_ARTIFACT_TYPE: &str = "application/vnd.rbee.worker.staging-anchor.v1";
/// `artifactType` of a staging record (an index of one platform manifest,
/// a referrer of the anchor).
pub const STAGED_ARTIFACT_TYPE: &str = "application/vnd.rbee.worker.staged.v1";
/// Annotation of a staging record: when it was staged (RFC 3339); the
/// newest record of a platform is the one released.
pub const STAGED_AT: &str = "dev.rbee.worker.staged-at";
/// Most staging records read for one version (reruns add one each time a
/// build changes).
pub const MAX_RECORDS: usize = 200;

/// A version's staging anchor, ready to push.
#[derive(Debug, Clone)]
pub struct Anchor {
    /// The manifest bytes.
    pub bytes: Bytes,
    /// Its descriptor.
    pub descriptor: Descriptor,
}

/// The anchor of `id`'s `version`: the same bytes wherever it is computed.
pub fn anchor(id: &str, version: &str) -> Anchor {
    let empty = Bytes::from_static(b"{}");
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: mt::OCI_MANIFEST.into(),
        artifact_type: Some(ANCHOR_ARTIFACT_TYPE.into()),
        config: documents::describe(mt::OCI_EMPTY, &empty),
        layers: vec![documents::describe(mt::OCI_EMPTY, &empty)],
        subject: None,
        annotations: Some(Annotations::from([
            (ann::WORKER_ID.into(), id.to_owned()),
            (ann::VERSION.into(), version.to_owned()),
        ])),
    };
    let bytes = Bytes::from(documents::to_bytes(&manifest));
    let descriptor = documents::describe(mt::OCI_MANIFEST, &bytes);
    Anchor { bytes, descriptor }
}

/// One staged platform build, as the release job finds it.
#[derive(Debug, Clone)]
pub struct StagedRecord {
    /// The platform.
    pub platform: Platform,
    /// The platform manifest's descriptor, as the index will list it.
    pub manifest: Descriptor,
    /// When it was staged.
    pub staged_at: DateTime<Utc>,
    /// The record's own digest.
    pub digest: String,
}

/// The staging record of one platform manifest: an index of one entry,
/// referring to the anchor. Our `ImageIndex` type has no `subject`, so
/// the record is written as JSON with the same field order rules.
fn record_bytes(
    anchor: &Anchor,
    id: &str,
    version: &str,
    manifest: &Descriptor,
    platform: Platform,
    at: &str,
) -> Bytes {
    let annotations = Annotations::from([
        (ann::WORKER_ID.into(), id.to_owned()),
        (ann::VERSION.into(), version.to_owned()),
        (ann::WORKER_PLATFORM.into(), platform.to_string()),
        (STAGED_AT.into(), at.to_owned()),
    ]);
    let doc = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_INDEX,
        "artifactType": STAGED_ARTIFACT_TYPE,
        "manifests": [manifest],
        "subject": {
            "mediaType": anchor.descriptor.media_type,
            "digest": anchor.descriptor.digest,
            "size": anchor.descriptor.size,
        },
        "annotations": annotations,
    });
    Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
}

/// Every staging record of `repo`'s anchor, newest first. Fails when the
/// registry has no referrers API (staging needs OCI 1.1).
pub async fn staged_records(
    client: &RegistryClient,
    repo: &str,
    anchor: &Anchor,
) -> Result<Vec<StagedRecord>, PushError> {
    let Some(listed) = client
        .referrers(repo, &anchor.descriptor.digest, STAGED_ARTIFACT_TYPE)
        .await?
    else {
        return Err(PushError::Registry(format!(
            "{repo}: the registry has no referrers API (OCI distribution-spec 1.1), which \
             staged publishing needs; publish from one job with `rbee-pusher push` instead"
        )));
    };
    let mut records = Vec::new();
    for d in listed
        .manifests
        .iter()
        .filter(|d| d.artifact_type.as_deref() == Some(STAGED_ARTIFACT_TYPE))
        .take(MAX_RECORDS)
    {
        let Some(found) = client.get_manifest(repo, &d.digest, true).await? else {
            continue; // collected between the listing and now
        };
        if documents::sha256_digest(&found.bytes) != d.digest {
            return Err(PushError::Registry(format!(
                "{repo}: staging record {} does not match its digest",
                d.digest
            )));
        }
        let index: ImageIndex = serde_json::from_slice(&found.bytes).map_err(|e| {
            PushError::Registry(format!(
                "{repo}: staging record {} is invalid: {e}",
                d.digest
            ))
        })?;
        let at = index
            .annotations
            .as_ref()
            .and_then(|a| a.get(STAGED_AT))
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        let entry = index
            .manifests
            .first()
            .filter(|_| index.manifests.len() == 1);
        let (Some(at), Some(entry)) = (at, entry) else {
            return Err(PushError::Registry(format!(
                "{repo}: staging record {} is not one platform with a time",
                d.digest
            )));
        };
        let Some(platform) = entry.worker_platform() else {
            return Err(PushError::Registry(format!(
                "{repo}: staging record {} names no platform",
                d.digest
            )));
        };
        records.push(StagedRecord {
            platform,
            manifest: entry.clone(),
            staged_at: at.with_timezone(&Utc),
            digest: d.digest.clone(),
        });
    }
    records.sort_by(|a, b| (b.staged_at, &b.digest).cmp(&(a.staged_at, &a.digest)));
    Ok(records)
}

/// The newest record of each platform.
pub fn newest_per_platform(records: &[StagedRecord]) -> BTreeMap<Platform, StagedRecord> {
    let mut newest = BTreeMap::new();
    for r in records {
        // `records` is newest first: the first of each platform wins.
        newest.entry(r.platform).or_insert_with(|| r.clone());
    }
    newest
}

/// What `push --stage` did, printed by `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct StageSummary {
    /// `staged`, `already-staged` (same build staged before), `released`
    /// (the version is already released with this build) or `dry-run`.
    pub status: &'static str,
    /// The repository.
    pub repository: String,
    /// The version.
    pub version: String,
    /// The version's anchor: `rbee-pusher release` finds the staged
    /// platforms through it.
    pub anchor_digest: String,
    /// The platforms staged by this run.
    pub platforms: Vec<PlatformSummary>,
    /// Bytes actually uploaded.
    pub uploaded_bytes: u64,
}

/// Stages every build of `release` (normally one: this runner's
/// platform). Re-running with the same build writes nothing new; with a
/// different build, adds a newer record, which the release takes.
pub async fn stage(
    client: &RegistryClient,
    release: &Release,
    opts: &PublishOptions,
    reporter: &Reporter,
) -> Result<StageSummary, PushError> {
    let id = release.metadata.id.clone();
    let version = release.metadata.version.to_string();
    let repo = publish::repository(release, opts);
    let anchor = anchor(&id, &version);
    let released = client.get_manifest(&repo, &version, true).await?;
    if let Some(found) = released {
        // Compute our manifests without writing, to tell a harmless rerun
        // after the release from an attempt to change a released version.
        let dry = PublishOptions {
            dry_run: true,
            ..opts.clone()
        };
        let ours = publish::upload_platforms(client, release, &dry, reporter).await?;
        let index: ImageIndex = serde_json::from_slice(&found.bytes).map_err(|e| {
            PushError::Registry(format!("{repo}:{version} is not an image index: {e}"))
        })?;
        let all_in = ours
            .descriptors
            .iter()
            .all(|(_, d)| index.manifests.iter().any(|m| m.digest == d.digest));
        if !all_in {
            return Err(PushError::Conflict(format!(
                "{repo}:{version} is already released with a different build; versions are \
                 immutable (publish a new version)"
            )));
        }
        reporter.line(&format!(
            "{repo}:{version} is already released with this build"
        ));
        return Ok(summary(
            "released",
            &repo,
            &version,
            &anchor,
            ours.platforms,
            0,
        ));
    }
    let uploaded = publish::upload_platforms(client, release, opts, reporter).await?;
    if opts.dry_run {
        return Ok(summary(
            "dry-run",
            &repo,
            &version,
            &anchor,
            uploaded.platforms,
            0,
        ));
    }
    client
        .ensure_small_blob(&repo, Bytes::from_static(b"{}"))
        .await?;
    client
        .put_manifest(
            &repo,
            &anchor.descriptor.digest,
            mt::OCI_MANIFEST,
            anchor.bytes.clone(),
        )
        .await?;
    let existing = staged_records(client, &repo, &anchor).await?;
    let newest = newest_per_platform(&existing);
    let mut wrote = false;
    let at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for (platform, manifest) in &uploaded.descriptors {
        if newest
            .get(platform)
            .is_some_and(|r| r.manifest.digest == manifest.digest)
        {
            reporter.line(&format!("  {platform}: already staged"));
            continue;
        }
        let bytes = record_bytes(&anchor, &id, &version, manifest, *platform, &at);
        let digest = documents::sha256_digest(&bytes);
        client
            .put_manifest(&repo, &digest, mt::OCI_INDEX, bytes)
            .await?;
        reporter.line(&format!("  staged {platform}: {}", manifest.digest));
        wrote = true;
    }
    if let Some((pkgbuild, srcinfo)) = &release.pkgbuild {
        let artifact = PkgbuildArtifact::new(&anchor.descriptor, &pkgbuild.text, srcinfo);
        let previous = referrers::attached(client, &repo, &anchor.descriptor.digest).await?;
        if !previous
            .iter()
            .any(|d| d.digest == artifact.descriptor.digest)
        {
            referrers::attach(
                client,
                &repo,
                &anchor.descriptor.digest,
                &artifact,
                &previous,
            )
            .await?;
            wrote = true;
        }
    }
    Ok(summary(
        if wrote { "staged" } else { "already-staged" },
        &repo,
        &version,
        &anchor,
        uploaded.platforms,
        uploaded.uploaded_bytes,
    ))
}

fn summary(
    status: &'static str,
    repo: &str,
    version: &str,
    anchor: &Anchor,
    platforms: Vec<PlatformSummary>,
    uploaded_bytes: u64,
) -> StageSummary {
    StageSummary {
        status,
        repository: repo.to_owned(),
        version: version.to_owned(),
        anchor_digest: anchor.descriptor.digest.clone(),
        platforms,
        uploaded_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_depends_on_id_and_version_only() {
        assert_eq!(
            anchor("a", "1.0.0").descriptor,
            anchor("a", "1.0.0").descriptor
        );
        assert_ne!(
            anchor("a", "1.0.0").descriptor,
            anchor("a", "1.0.1").descriptor
        );
        assert_ne!(
            anchor("a", "1.0.0").descriptor,
            anchor("b", "1.0.0").descriptor
        );
    }

    #[test]
    fn record_is_an_index_of_one_platform_referring_to_the_anchor() {
        let a = anchor("w", "1.0.0");
        let mut m = documents::describe(mt::OCI_MANIFEST, b"x");
        m.set_worker_platform(Platform::LinuxAarch64);
        let bytes = record_bytes(
            &a,
            "w",
            "1.0.0",
            &m,
            Platform::LinuxAarch64,
            "2026-11-30T00:00:00.000Z",
        );
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["subject"]["digest"], a.descriptor.digest.as_str());
        assert_eq!(v["artifactType"], STAGED_ARTIFACT_TYPE);
        let index: ImageIndex = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            index.manifests[0].worker_platform(),
            Some(Platform::LinuxAarch64)
        );
    }
}
