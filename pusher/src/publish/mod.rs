//! Publishing a release: package and upload the builds, write manifests,
//! the index under the version tag, `latest`, the PKGBUILD referrer and
//! the catalog index, in an order that never lets a reader see a tag
//! before everything it references exists.
//!
//! `builds.rs` gets the archives into the registry, `documents.rs` makes
//! the manifests and the index, `checks.rs` compares with what the
//! registry holds, `writes.rs` writes the documents, `catalog.rs` keeps
//! the catalog index.

mod builds;
mod catalog;
mod checks;
mod documents;
mod writes;

pub use catalog::read_catalog;
// What staging and releasing (`stage.rs`, `release_staged.rs`) share.
pub(crate) use catalog::update_catalog;
pub(crate) use checks::{TaggedIndex, is_highest_stable, semver_tags};
pub(crate) use writes::tag_latest;

use std::collections::BTreeMap;

use bytes::Bytes;
use rbee_schemas::Platform;
use serde::Serialize;

use crate::client::RegistryClient;
use crate::error::PushError;
pub use crate::package::Compression;
use crate::progress::Reporter;
use crate::release::Release;
use crate::sign::{self, SigningKey, ToSign};
use builds::Build;
use checks::{PkgbuildPlan, Published};
use documents::ReleaseDocuments;

/// How to publish.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Repository namespace; default `rbee`, or `rbee-premium` for workers
    /// that require a license.
    pub namespace: Option<String>,
    /// Repository of the catalog index artifact.
    pub catalog_repository: String,
    /// Replace an existing version with different content.
    pub force: bool,
    /// Compute and check everything, write nothing.
    pub dry_run: bool,
    /// How the archives are compressed (format and level).
    pub compression: Compression,
    /// `org.opencontainers.image.created` of the index (RFC 3339).
    pub created: String,
}

/// What was published, printed by `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct PublishSummary {
    /// `published`, `unchanged` (same content already there) or `dry-run`.
    pub status: &'static str,
    /// e.g. `127.0.0.1:5000/rbee/llm-worker-rbee-cpu:0.1.0`.
    pub reference: String,
    /// The repository.
    pub repository: String,
    /// The version tag.
    pub version: String,
    /// Digest of the image index.
    pub index_digest: String,
    /// Whether `latest` now points at this version.
    pub latest: bool,
    /// One entry per platform.
    pub platforms: Vec<PlatformSummary>,
    /// Digest of the PKGBUILD referrer manifest.
    pub pkgbuild_digest: Option<String>,
    /// Bytes actually uploaded (0 for a re-push of the same release).
    pub uploaded_bytes: u64,
    /// The key id the release is signed with (when `--secret-key` was
    /// given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_key_id: Option<String>,
    /// The deltas considered after tagging (`rbee-pusher push --deltas`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deltas: Vec<crate::delta::DeltaSummary>,
}

/// One platform of a published release.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformSummary {
    /// rbee platform name.
    pub platform: String,
    /// Digest of its manifest.
    pub manifest_digest: String,
    /// Digest of its archive: the checksum users verify.
    pub layer_digest: String,
    /// Size of the archive.
    pub size: u64,
    /// The archive's file name (`.tar.gz` or `.tar.zst`).
    pub filename: String,
    /// The layer's media type (gzip or zstd).
    pub media_type: String,
}

/// The repository a release goes to.
pub fn repository(release: &Release, opts: &PublishOptions) -> String {
    let ns = opts.namespace.clone().unwrap_or_else(|| {
        if release.metadata.distribution.requires_license {
            "rbee-premium".into()
        } else {
            "rbee".into()
        }
    });
    format!("{ns}/{}", release.metadata.id)
}

/// Publishes `release` through `client`.
///
/// Everything that can be checked before a write is: whether the version
/// exists (and with what), the PKGBUILD already attached, the version
/// count. A new version is then packaged straight into its upload (the
/// digests are known only at the end); the blobs it leaves are invisible
/// until a manifest references them. When the version exists, or for a
/// dry run, the archives are first only hashed, so that a re-push of the
/// same content sends nothing and different content is refused before
/// anything is sent. The documents are written last, in an order that
/// never lets a reader see a tag before what it references.
pub async fn publish(
    client: &RegistryClient,
    release: &Release,
    opts: &PublishOptions,
    reporter: &Reporter,
) -> Result<PublishSummary, PushError> {
    publish_signed(client, release, opts, None, reporter).await
}

/// [`publish`], signing the release with `key` when one is given
/// (`sign.rs`): after the platform manifests are written and before the
/// index is tagged, so the version is never visible unsigned. A re-push
/// of the same release adds the signature if this key has not signed it.
pub async fn publish_signed(
    client: &RegistryClient,
    release: &Release,
    opts: &PublishOptions,
    key: Option<&SigningKey>,
    reporter: &Reporter,
) -> Result<PublishSummary, PushError> {
    let repo = repository(release, opts);
    let version = release.metadata.version.to_string();
    let existing = client.get_manifest(&repo, &version, true).await?;
    let versions = checks::published_versions(client, &repo, release).await?;

    let hash_first = existing.is_some() || opts.dry_run;
    let (builds, mut uploaded) = if hash_first {
        (builds::hash_builds(release, opts, reporter).await?, 0)
    } else {
        builds::upload_builds(client, &repo, release, opts, None, reporter).await?
    };
    let documents = ReleaseDocuments::new(release, opts, &builds);
    let published = checks::compare_with_published(
        &repo,
        &version,
        existing,
        documents.index.clone(),
        opts,
        reporter,
    )?;
    let pkgbuild =
        checks::check_pkgbuild(client, &repo, &version, release, &published, opts, reporter)
            .await?;
    let plan = Plan {
        unchanged: published.unchanged && !pkgbuild.replaces,
        repo,
        builds,
        documents,
        published,
        pkgbuild,
    };

    let mut summary = plan.summary(&client.host(), release, opts);
    summary.latest = checks::is_highest_stable(&release.metadata.version, &versions);
    if opts.dry_run {
        reporter.line("dry run: nothing was pushed");
        return Ok(summary);
    }
    let (repo, index) = (&plan.repo, &plan.published.index);
    if !plan.unchanged {
        if hash_first {
            let (_, sent) =
                builds::upload_builds(client, repo, release, opts, Some(&plan.builds), reporter)
                    .await?;
            uploaded += sent;
        }
        uploaded += upload_config(client, repo, &plan.documents.config).await?;
        summary.uploaded_bytes = uploaded;
        writes::write_platform_manifests(client, repo, &plan.documents.manifests, reporter).await?;
    }
    if let Some(key) = key {
        let archives: Vec<ToSign> = plan
            .builds
            .iter()
            .map(|(platform, b)| ToSign {
                platform: *platform,
                digest: b.packed.digest.clone(),
                size: b.packed.size,
                filename: b.filename.clone(),
            })
            .collect();
        sign::sign_release(
            client,
            repo,
            &release.metadata.id,
            &version,
            &index.descriptor,
            &archives,
            key,
            &opts.created,
            reporter,
        )
        .await?;
        summary.signature_key_id = Some(key.key_id().to_owned());
    }
    if !plan.unchanged {
        writes::write_index(client, repo, &version, index, reporter).await?;
    }
    if summary.latest {
        writes::tag_latest(client, repo, index, reporter).await?;
    }
    if let Some(artifact) = &plan.pkgbuild.artifact {
        writes::attach_pkgbuild(
            client,
            repo,
            index,
            artifact,
            &plan.pkgbuild.previous,
            reporter,
        )
        .await?;
    }
    catalog::update_catalog(
        client,
        &opts.catalog_repository,
        &release.metadata,
        repo,
        &versions,
    )
    .await?;
    reporter.line(&format!(
        "updated catalog {}:latest",
        opts.catalog_repository
    ));
    Ok(summary)
}

/// Uploads the config (the metadata document) unless the registry has
/// it; the bytes sent.
async fn upload_config(
    client: &RegistryClient,
    repo: &str,
    config: &Bytes,
) -> Result<u64, PushError> {
    let blob = client.ensure_small_blob(repo, config.clone()).await?;
    Ok(if blob.uploaded {
        config.len() as u64
    } else {
        0
    })
}

/// Everything decided before the first write of a document.
#[derive(Debug)]
struct Plan {
    repo: String,
    builds: BTreeMap<Platform, Build>,
    documents: ReleaseDocuments,
    published: Published,
    pkgbuild: PkgbuildPlan,
    /// The registry has this release as it is, PKGBUILD included: only
    /// `latest` and the catalog may still need writing.
    unchanged: bool,
}

impl Plan {
    /// The summary of what this publication does; `latest` and
    /// `uploaded_bytes` are filled in as they become known.
    fn summary(&self, host: &str, release: &Release, opts: &PublishOptions) -> PublishSummary {
        let version = release.metadata.version.to_string();
        PublishSummary {
            status: if opts.dry_run {
                "dry-run"
            } else if self.unchanged {
                "unchanged"
            } else {
                "published"
            },
            reference: format!("{host}/{}:{version}", self.repo),
            repository: self.repo.clone(),
            version,
            index_digest: self.published.index.descriptor.digest.clone(),
            latest: false,
            platforms: self
                .documents
                .manifests
                .iter()
                .map(|m| {
                    let build = &self.builds[&m.platform];
                    PlatformSummary {
                        platform: m.platform.to_string(),
                        manifest_digest: m.descriptor.digest.clone(),
                        layer_digest: build.packed.digest.clone(),
                        size: build.packed.size,
                        filename: build.filename.clone(),
                        media_type: build.media_type.to_owned(),
                    }
                })
                .collect(),
            pkgbuild_digest: self
                .pkgbuild
                .artifact
                .as_ref()
                .map(|a| a.descriptor.digest.clone()),
            uploaded_bytes: 0,
            signature_key_id: None,
            deltas: Vec::new(),
        }
    }
}

/// What [`upload_platforms`] wrote.
#[derive(Debug, Clone)]
pub struct UploadedPlatforms {
    /// The repository.
    pub repository: String,
    /// One entry per platform.
    pub platforms: Vec<PlatformSummary>,
    /// Each platform manifest's descriptor as an index lists it.
    pub descriptors: Vec<(Platform, rbee_schemas::oci::Descriptor)>,
    /// Bytes actually uploaded.
    pub uploaded_bytes: u64,
}

/// Packages and uploads every build of `release` (straight into the
/// upload) and writes each platform manifest by its digest: no tag, no
/// index, no catalog entry. The same manifests [`publish`] writes, so
/// staging and releasing give the same content as a one-job push
/// (`stage.rs` builds on it). With `opts.dry_run`, packages into a hasher
/// and computes only.
pub async fn upload_platforms(
    client: &RegistryClient,
    release: &Release,
    opts: &PublishOptions,
    reporter: &Reporter,
) -> Result<UploadedPlatforms, PushError> {
    let repo = repository(release, opts);
    let (builds, mut uploaded_bytes) = if opts.dry_run {
        (builds::hash_builds(release, opts, reporter).await?, 0)
    } else {
        builds::upload_builds(client, &repo, release, opts, None, reporter).await?
    };
    let documents = ReleaseDocuments::new(release, opts, &builds);
    if !opts.dry_run {
        uploaded_bytes += upload_config(client, &repo, &documents.config).await?;
        writes::write_platform_manifests(client, &repo, &documents.manifests, reporter).await?;
    }
    let platforms = documents
        .manifests
        .iter()
        .map(|m| {
            let build = &builds[&m.platform];
            PlatformSummary {
                platform: m.platform.to_string(),
                manifest_digest: m.descriptor.digest.clone(),
                layer_digest: build.packed.digest.clone(),
                size: build.packed.size,
                filename: build.filename.clone(),
                media_type: build.media_type.to_owned(),
            }
        })
        .collect();
    Ok(UploadedPlatforms {
        repository: repo,
        platforms,
        descriptors: documents
            .manifests
            .iter()
            .map(|m| (m.platform, m.descriptor.clone()))
            .collect(),
        uploaded_bytes,
    })
}
