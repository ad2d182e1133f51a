//! Staged publishing, step two: `rbee-pusher release ID VERSION` assembles
//! the image index from the platforms staged by `push --stage`
//! (`stage.rs`), checks that every platform the metadata declares is
//! there, and writes the index under the version tag in one PUT: a reader
//! sees no version, then the whole version. Then `latest`, the PKGBUILD
//! referrer and the catalog index, as `push` writes them.

use std::collections::BTreeMap;

use bytes::Bytes;
use rbee_schemas::oci::{self as documents, Annotations, ImageIndex, ImageManifest};
use rbee_schemas::{Platform, WorkerMetadata, annotations as ann, limits, media_types as mt};
use serde::Serialize;

use crate::client::RegistryClient;
use crate::error::PushError;
use crate::progress::Reporter;
use crate::publish::{self, TaggedIndex};
use crate::referrers::{self, PkgbuildArtifact};
use crate::sign::{self, SigningKey};
use crate::stage::{self, Anchor, StagedRecord};

/// Largest staged PKGBUILD or `.SRCINFO` read back.
const STAGED_TEXT_MAX_BYTES: usize = 1 << 20;

/// How to release.
#[derive(Debug, Clone)]
pub struct ReleaseOptions {
    /// Repository namespace; by default `rbee`, then `rbee-premium`, the
    /// first that has something staged for the version.
    pub namespace: Option<String>,
    /// Repository of the catalog index artifact.
    pub catalog_repository: String,
    /// Release even when a platform the metadata declares was not staged.
    pub allow_missing: bool,
    /// `org.opencontainers.image.created` of the index (RFC 3339).
    pub created: String,
}

/// What `release` did, printed by `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseSummary {
    /// `released` or `unchanged` (released before with the same builds).
    pub status: &'static str,
    /// e.g. `127.0.0.1:8787/rbee/llm-worker-rbee-cpu:0.1.0`.
    pub reference: String,
    /// The repository.
    pub repository: String,
    /// The version tag.
    pub version: String,
    /// Digest of the image index.
    pub index_digest: String,
    /// The platforms released, with their manifest digests.
    pub platforms: BTreeMap<String, String>,
    /// Declared platforms that were not staged (only with `--allow-missing`).
    pub missing: Vec<String>,
    /// Whether `latest` now points at this version.
    pub latest: bool,
    /// The key id the release is signed with (when `--secret-key` was
    /// given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_key_id: Option<String>,
    /// The deltas considered after tagging (`rbee-pusher release --deltas`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deltas: Vec<crate::delta::DeltaSummary>,
}

/// Releases `id`'s staged `version`.
pub async fn release(
    client: &RegistryClient,
    id: &str,
    version: &semver::Version,
    opts: &ReleaseOptions,
    reporter: &Reporter,
) -> Result<ReleaseSummary, PushError> {
    release_signed(client, id, version, opts, None, reporter).await
}

/// [`release`], signing with `key` when one is given: the release job
/// signs (the stage jobs need no key). It reads each staged archive back
/// and signs it only when it hashes to the digest its staged manifest
/// names, then attaches the signature to the index before tagging it.
pub async fn release_signed(
    client: &RegistryClient,
    id: &str,
    version: &semver::Version,
    opts: &ReleaseOptions,
    key: Option<&SigningKey>,
    reporter: &Reporter,
) -> Result<ReleaseSummary, PushError> {
    rbee_schemas::validate_published_worker_id(id)
        .map_err(|e| PushError::Invalid(format!("worker id `{id}`: {e}")))?;
    if !version.build.is_empty() {
        return Err(PushError::Invalid(format!(
            "`{version}` cannot be an OCI tag: build metadata is not allowed"
        )));
    }
    let version_tag = version.to_string();
    let anchor = stage::anchor(id, &version_tag);
    let (repo, records) = find_staged(client, id, &version_tag, &anchor, opts).await?;
    let chosen = stage::newest_per_platform(&records);
    let metadata = staged_metadata(client, &repo, &chosen, id, version).await?;

    let missing: Vec<Platform> = metadata
        .platforms
        .iter()
        .filter(|p| !chosen.contains_key(p))
        .copied()
        .collect();
    if !missing.is_empty() && !opts.allow_missing {
        return Err(PushError::Incomplete(format!(
            "{repo}:{version_tag} is not released: {} declared in the metadata but not staged \
             (staged: {}); stage them, or pass --allow-missing",
            names(missing.iter()),
            names(chosen.keys()),
        )));
    }
    let extra: Vec<&Platform> = chosen
        .keys()
        .filter(|p| !metadata.platforms.contains(p))
        .collect();
    if !extra.is_empty() {
        return Err(PushError::Invalid(format!(
            "{repo}:{version_tag}: staged {} which the metadata does not declare",
            names(extra.into_iter())
        )));
    }

    let (index, unchanged) = index_to_tag(
        client,
        &repo,
        &version_tag,
        &chosen,
        &metadata,
        opts,
        reporter,
    )
    .await?;
    if let Some(key) = key {
        let parsed: ImageIndex = serde_json::from_slice(&index.bytes)
            .map_err(|e| PushError::Registry(format!("{repo}:{version_tag}: {e}")))?;
        let archives = sign::archives_of(client, &repo, &parsed).await?;
        sign::sign_release(
            client,
            &repo,
            id,
            &version_tag,
            &index.descriptor,
            &archives,
            key,
            &opts.created,
            reporter,
        )
        .await?;
    }
    if !unchanged {
        client
            .put_manifest(&repo, &version_tag, mt::OCI_INDEX, index.bytes.clone())
            .await?;
        reporter.line(&format!(
            "tagged {repo}:{version_tag} -> {}",
            index.descriptor.digest
        ));
    }
    let versions = publish::semver_tags(client, &repo).await?;
    let latest = publish::is_highest_stable(version, &versions);
    if latest {
        publish::tag_latest(client, &repo, &index, reporter).await?;
    }
    attach_staged_pkgbuild(client, &repo, &anchor, &index, reporter).await?;
    publish::update_catalog(
        client,
        &opts.catalog_repository,
        &metadata,
        &repo,
        &versions,
    )
    .await?;
    reporter.line(&format!(
        "updated catalog {}:latest",
        opts.catalog_repository
    ));
    Ok(ReleaseSummary {
        status: if unchanged { "unchanged" } else { "released" },
        reference: format!("{}/{repo}:{version_tag}", client.host()),
        repository: repo,
        version: version_tag,
        index_digest: index.descriptor.digest.clone(),
        platforms: chosen
            .iter()
            .map(|(p, r)| (p.to_string(), r.manifest.digest.clone()))
            .collect(),
        missing: missing.iter().map(|p| p.to_string()).collect(),
        latest,
        signature_key_id: key.map(|k| k.key_id().to_owned()),
        deltas: Vec::new(),
    })
}

fn names<'a>(platforms: impl Iterator<Item = &'a Platform>) -> String {
    let names: Vec<&str> = platforms.map(|p| p.name()).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The repository with something staged (or released) for the version,
/// and its staging records.
async fn find_staged(
    client: &RegistryClient,
    id: &str,
    version: &str,
    anchor: &Anchor,
    opts: &ReleaseOptions,
) -> Result<(String, Vec<StagedRecord>), PushError> {
    let namespaces = match &opts.namespace {
        Some(ns) => vec![ns.clone()],
        None => vec!["rbee".to_owned(), "rbee-premium".to_owned()],
    };
    for ns in &namespaces {
        let repo = format!("{ns}/{id}");
        // A token without access to one namespace is not an error here.
        let records = match stage::staged_records(client, &repo, anchor).await {
            Ok(r) => r,
            Err(PushError::Auth(_)) if opts.namespace.is_none() => continue,
            Err(e) => return Err(e),
        };
        if !records.is_empty() {
            return Ok((repo, records));
        }
    }
    Err(PushError::Incomplete(format!(
        "nothing is staged for {id} {version} in {} (stage each platform with \
         `rbee-pusher push --stage` first)",
        namespaces
            .iter()
            .map(|ns| format!("{ns}/{id}"))
            .collect::<Vec<_>>()
            .join(" or ")
    )))
}

/// The metadata the staged builds share (their config blob), checked
/// against the id and version asked for.
async fn staged_metadata(
    client: &RegistryClient,
    repo: &str,
    chosen: &BTreeMap<Platform, StagedRecord>,
    id: &str,
    version: &semver::Version,
) -> Result<WorkerMetadata, PushError> {
    let mut configs = BTreeMap::new();
    for (platform, record) in chosen {
        let found = client
            .get_manifest(repo, &record.manifest.digest, true)
            .await?
            .ok_or_else(|| {
                PushError::Incomplete(format!(
                    "{repo}: the staged {platform} manifest {} is gone (collected?); stage it again",
                    record.manifest.digest
                ))
            })?;
        let manifest: ImageManifest = serde_json::from_slice(&found.bytes)
            .map_err(|e| PushError::Registry(format!("{repo}: staged {platform} manifest: {e}")))?;
        configs
            .entry(manifest.config.digest.clone())
            .or_insert_with(Vec::new)
            .push(platform.name());
    }
    if configs.len() != 1 {
        return Err(PushError::Invalid(format!(
            "{repo}: the staged builds carry different metadata ({}); stage every platform from \
             the same metadata.json",
            configs
                .iter()
                .map(|(d, p)| format!("{} for {d}", p.join("+")))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let digest = configs.keys().next().cloned().unwrap_or_default();
    let bytes = client
        .get_blob(repo, &digest, limits::METADATA_MAX_BYTES)
        .await?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| PushError::Registry(format!("{repo}: staged metadata: {e}")))?;
    let metadata = WorkerMetadata::from_json(text)
        .map_err(|e| PushError::Registry(format!("{repo}: staged metadata: {e}")))?;
    if metadata.id != id || metadata.version != *version {
        return Err(PushError::Invalid(format!(
            "{repo}: the staged metadata is for {} {}, not {id} {version}",
            metadata.id, metadata.version
        )));
    }
    Ok(metadata)
}

/// The index of the chosen builds, or the one already tagged when it
/// lists the same builds (a rerun: nothing to write). A tag with other
/// builds is a conflict: versions are immutable.
async fn index_to_tag(
    client: &RegistryClient,
    repo: &str,
    version: &str,
    chosen: &BTreeMap<Platform, StagedRecord>,
    metadata: &WorkerMetadata,
    opts: &ReleaseOptions,
    reporter: &Reporter,
) -> Result<(TaggedIndex, bool), PushError> {
    let mut ours: Vec<&str> = chosen
        .values()
        .map(|r| r.manifest.digest.as_str())
        .collect();
    ours.sort();
    if let Some(found) = client.get_manifest(repo, version, true).await? {
        let theirs: ImageIndex = serde_json::from_slice(&found.bytes).map_err(|e| {
            PushError::Registry(format!("{repo}:{version} is not an image index: {e}"))
        })?;
        let mut listed: Vec<&str> = theirs.manifests.iter().map(|d| d.digest.as_str()).collect();
        listed.sort();
        if listed != ours {
            return Err(PushError::Conflict(format!(
                "{repo}:{version} is already released with other builds; versions are immutable \
                 (publish a new version)"
            )));
        }
        reporter.line(&format!(
            "{repo}:{version} is already released with these builds"
        ));
        let descriptor = documents::describe(mt::OCI_INDEX, &found.bytes);
        return Ok((
            TaggedIndex {
                bytes: found.bytes,
                descriptor,
            },
            true,
        ));
    }
    let mut annotations = Annotations::new();
    annotations.insert(ann::VERSION.into(), metadata.version.to_string());
    annotations.insert(ann::LICENSES.into(), metadata.license.clone());
    annotations.insert(ann::DESCRIPTION.into(), metadata.description.clone());
    annotations.insert(ann::SOURCE.into(), metadata.source.url.clone());
    annotations.insert(ann::WORKER_ID.into(), metadata.id.clone());
    annotations.insert(ann::WORKER_FAMILY.into(), metadata.family.clone());
    annotations.insert(ann::WORKER_BACKEND.into(), metadata.backend.to_string());
    annotations.insert(
        ann::WORKER_REQUIRES_LICENSE.into(),
        metadata.distribution.requires_license.to_string(),
    );
    annotations.insert(ann::CREATED.into(), opts.created.clone());
    let index = ImageIndex {
        schema_version: 2,
        media_type: mt::OCI_INDEX.into(),
        artifact_type: Some(mt::WORKER_ARTIFACT_TYPE.into()),
        manifests: chosen.values().map(|r| r.manifest.clone()).collect(),
        annotations: Some(annotations),
    };
    let bytes = Bytes::from(documents::to_bytes(&index));
    let descriptor = documents::describe(mt::OCI_INDEX, &bytes);
    Ok((TaggedIndex { bytes, descriptor }, false))
}

/// Moves the PKGBUILD staged with the builds onto the released index.
async fn attach_staged_pkgbuild(
    client: &RegistryClient,
    repo: &str,
    anchor: &Anchor,
    index: &TaggedIndex,
    reporter: &Reporter,
) -> Result<(), PushError> {
    let staged = referrers::attached(client, repo, &anchor.descriptor.digest).await?;
    let Some(first) = staged.first() else {
        return Ok(());
    };
    let Some(found) = client.get_manifest(repo, &first.digest, true).await? else {
        return Ok(());
    };
    let manifest: ImageManifest = serde_json::from_slice(&found.bytes)
        .map_err(|e| PushError::Registry(format!("{repo}: staged PKGBUILD artifact: {e}")))?;
    let mut texts = Vec::new();
    for layer in manifest.layers.iter().take(2) {
        let bytes = client
            .get_blob(repo, &layer.digest, STAGED_TEXT_MAX_BYTES)
            .await?;
        texts.push(String::from_utf8(bytes.to_vec()).map_err(|e| {
            PushError::Registry(format!("{repo}: staged PKGBUILD is not UTF-8: {e}"))
        })?);
    }
    let [pkgbuild, srcinfo] = <[String; 2]>::try_from(texts).map_err(|_| {
        PushError::Registry(format!("{repo}: staged PKGBUILD artifact has no .SRCINFO"))
    })?;
    let artifact = PkgbuildArtifact::new(&index.descriptor, &pkgbuild, &srcinfo);
    let previous = referrers::attached(client, repo, &index.descriptor.digest).await?;
    if previous
        .iter()
        .any(|d| d.digest == artifact.descriptor.digest)
    {
        return Ok(());
    }
    referrers::attach(client, repo, &index.descriptor.digest, &artifact, &previous).await?;
    reporter.line(&format!(
        "attached PKGBUILD: {}",
        artifact.descriptor.digest
    ));
    Ok(())
}
