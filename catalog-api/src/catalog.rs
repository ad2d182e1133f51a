//! The catalog's view of the registry: workers (from the catalog index
//! artifact), their releases (image index -> platform manifests -> layer
//! and metadata config) and PKGBUILDs (referrers), all through the cache.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use rbee_schemas::oci::{ImageIndex, ImageManifest};
use rbee_schemas::{
    CatalogEntry, CatalogIndex, Platform, WorkerMetadata, annotations as ann, media_types as mt,
};
use serde::Serialize;

use crate::cache::{Cache, Cached};
use crate::error::ApiError;
use crate::upstream::{Upstream, UpstreamError};

/// One platform build of a release.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlatformBuild {
    /// rbee platform name.
    #[schema(value_type = crate::openapi::PlatformName)]
    pub platform: Platform,
    /// Digest of the platform manifest.
    pub manifest_digest: String,
    /// Digest of the tar.gz: the checksum to verify.
    pub layer_digest: String,
    /// Size of the tar.gz in bytes.
    pub size: u64,
    /// File name of the tar.gz.
    pub filename: String,
}

/// A published version of a worker.
#[derive(Debug, Clone)]
pub struct Release {
    /// The repository it lives in.
    pub repository: String,
    /// Its version.
    pub version: semver::Version,
    /// Digest of its image index.
    pub index_digest: String,
    /// `org.opencontainers.image.created` of the index.
    pub published_at: Option<String>,
    /// The worker metadata document.
    pub metadata: WorkerMetadata,
    /// Its builds, in platform order.
    pub builds: Vec<PlatformBuild>,
}

/// TTLs of the cached kinds.
#[derive(Debug, Clone)]
pub struct CacheTtls {
    /// The catalog index (worker list).
    pub index: Duration,
    /// Releases (metadata, builds) and PKGBUILDs.
    pub metadata: Duration,
}

impl Default for CacheTtls {
    fn default() -> Self {
        CacheTtls {
            index: Duration::from_secs(300),
            metadata: Duration::from_secs(600),
        }
    }
}

/// Largest metadata document, catalog index or PKGBUILD read.
const SMALL_BLOB_LIMIT: usize = 4 << 20;

/// Reads workers from one registry.
#[derive(Debug)]
pub struct Catalog {
    upstream: Upstream,
    catalog_repository: String,
    index: Cache<CatalogIndex>,
    releases: Cache<Release>,
    pkgbuilds: Cache<Option<String>>,
}

/// A value and whether any part of it was stale.
pub type Fetched<T> = (T, bool);

impl Catalog {
    /// A catalog over `upstream`, whose catalog index artifact is
    /// `<catalog_repository>:latest`.
    pub fn new(upstream: Upstream, catalog_repository: String, ttls: CacheTtls) -> Self {
        Catalog {
            upstream,
            catalog_repository,
            index: Cache::new(ttls.index),
            releases: Cache::new(ttls.metadata),
            pkgbuilds: Cache::new(ttls.metadata),
        }
    }

    /// The registry read from.
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// Forgets everything cached (after a push event).
    pub fn invalidate_all(&self) {
        self.index.invalidate("");
        self.releases.invalidate("");
        self.pkgbuilds.invalidate("");
    }

    /// Forgets what is cached about `repository` and the worker list.
    pub fn invalidate_repository(&self, repository: &str) {
        self.index.invalidate("");
        self.releases.invalidate(&format!("{repository}@"));
        self.pkgbuilds.invalidate(&format!("{repository}@"));
    }

    /// The catalog index: every worker and its versions.
    pub async fn index(&self) -> Result<Cached<CatalogIndex>, ApiError> {
        let repo = self.catalog_repository.clone();
        let result =
            self.index
                .get("index", || async {
                    let (bytes, _) = match self.upstream.manifest(&repo, "latest").await {
                        Ok(m) => m,
                        // No catalog yet: an empty registry has no workers.
                        Err(UpstreamError::NotFound) => return Ok(CatalogIndex::default()),
                        Err(e) => return Err(e),
                    };
                    let manifest: ImageManifest = serde_json::from_slice(&bytes)
                        .map_err(|e| UpstreamError::Invalid(e.to_string()))?;
                    let layer = manifest.layers.first().ok_or_else(|| {
                        UpstreamError::Invalid(format!("{repo}:latest has no layer"))
                    })?;
                    let doc = self
                        .upstream
                        .small_blob(&repo, &layer.digest, SMALL_BLOB_LIMIT)
                        .await?;
                    let text = std::str::from_utf8(&doc)
                        .map_err(|e| UpstreamError::Invalid(e.to_string()))?;
                    CatalogIndex::from_json(text).map_err(|e| UpstreamError::Invalid(e.to_string()))
                })
                .await?;
        Ok(result)
    }

    /// The catalog entry of worker `id`.
    pub async fn entry(&self, id: &str) -> Result<Fetched<CatalogEntry>, ApiError> {
        let index = self.index().await?;
        let entry = index
            .value
            .get(id)
            .cloned()
            .ok_or(ApiError::WorkerNotFound)?;
        Ok((entry, index.stale))
    }

    /// Resolves `version` (`latest` or a semver string) of worker `id`.
    pub async fn release(
        &self,
        id: &str,
        version: &str,
    ) -> Result<Fetched<Arc<Release>>, ApiError> {
        let (entry, stale) = self.entry(id).await?;
        let version = if version == "latest" {
            entry
                .latest
                .clone()
                .ok_or(ApiError::VersionNotFound(version.to_owned()))?
        } else {
            let parsed = semver::Version::parse(version).map_err(|e| {
                ApiError::BadRequest(format!("`{version}` is not a semver version: {e}"))
            })?;
            let v = parsed.to_string();
            if !entry.versions.contains(&v) {
                return Err(ApiError::VersionNotFound(v));
            }
            v
        };
        let key = format!("{}@{version}", entry.repository);
        let repo = entry.repository.clone();
        let release = self
            .releases
            .get(&key, || self.fetch_release(repo, version.clone()))
            .await
            .map_err(|e| match e {
                UpstreamError::NotFound => ApiError::VersionNotFound(version.clone()),
                other => other.into(),
            })?;
        Ok((release.value, stale || release.stale))
    }

    async fn fetch_release(&self, repo: String, version: String) -> Result<Release, UpstreamError> {
        let (bytes, index_digest) = self.upstream.manifest(&repo, &version).await?;
        let index: ImageIndex = serde_json::from_slice(&bytes).map_err(|e| {
            UpstreamError::Invalid(format!("{repo}:{version} is not an image index: {e}"))
        })?;
        let published_at = index
            .annotations
            .as_ref()
            .and_then(|a| a.get(ann::CREATED).cloned());
        let entries: Vec<_> = index
            .manifests
            .iter()
            .filter_map(|d| {
                let by_annotation = d
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(ann::WORKER_PLATFORM))
                    .and_then(|p| p.parse::<Platform>().ok());
                let by_oci = d
                    .platform
                    .as_ref()
                    .and_then(|p| Platform::from_oci(&p.os, &p.architecture));
                by_annotation.or(by_oci).map(|p| (p, d.digest.clone()))
            })
            .collect();
        let manifests: Vec<(Platform, String, ImageManifest)> = futures_util::stream::iter(entries)
            .map(|(platform, digest)| {
                let repo = &repo;
                async move {
                    let (bytes, _) = self.upstream.manifest(repo, &digest).await?;
                    let m: ImageManifest = serde_json::from_slice(&bytes)
                        .map_err(|e| UpstreamError::Invalid(format!("{repo}@{digest}: {e}")))?;
                    Ok::<_, UpstreamError>((platform, digest, m))
                }
            })
            .buffer_unordered(4)
            .try_collect()
            .await?;
        let config = manifests
            .first()
            .map(|(_, _, m)| m.config.digest.clone())
            .ok_or_else(|| {
                UpstreamError::Invalid(format!("{repo}:{version} has no platform build"))
            })?;
        let doc = self
            .upstream
            .small_blob(&repo, &config, SMALL_BLOB_LIMIT)
            .await?;
        let text = std::str::from_utf8(&doc).map_err(|e| UpstreamError::Invalid(e.to_string()))?;
        let metadata = WorkerMetadata::from_json(text)
            .map_err(|e| UpstreamError::Invalid(format!("{repo}:{version} metadata: {e}")))?;
        let mut builds: Vec<PlatformBuild> = manifests
            .into_iter()
            .filter_map(|(platform, manifest_digest, m)| {
                let layer = m
                    .layers
                    .into_iter()
                    .find(|l| l.media_type == mt::WORKER_LAYER)?;
                let filename = layer
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(ann::TITLE).cloned())
                    .unwrap_or_else(|| {
                        format!("{}-{}-{platform}.tar.gz", metadata.id, metadata.version)
                    });
                Some(PlatformBuild {
                    platform,
                    manifest_digest,
                    layer_digest: layer.digest,
                    size: layer.size,
                    filename,
                })
            })
            .collect();
        builds.sort_by_key(|b| b.platform);
        let version =
            semver::Version::parse(&version).map_err(|e| UpstreamError::Invalid(e.to_string()))?;
        Ok(Release {
            repository: repo,
            version,
            index_digest,
            published_at,
            metadata,
            builds,
        })
    }

    /// The latest release of every listed worker that has one, in catalog
    /// order (by id), with its catalog entry.
    pub async fn latest_releases(
        &self,
    ) -> Result<Fetched<Vec<(CatalogEntry, Arc<Release>)>>, ApiError> {
        let index = self.index().await?;
        let entries: Vec<CatalogEntry> = index
            .value
            .workers
            .iter()
            .filter(|w| w.latest.is_some())
            .cloned()
            .collect();
        let fetched: Vec<(CatalogEntry, Fetched<Arc<Release>>)> = futures_util::stream::iter(
            entries,
        )
        .map(|entry| async move { self.release(&entry.id, "latest").await.map(|r| (entry, r)) })
        .buffered(8)
        .try_collect()
        .await?;
        let stale = index.stale || fetched.iter().any(|(_, (_, s))| *s);
        Ok((
            fetched
                .into_iter()
                .map(|(entry, (release, _))| (entry, release))
                .collect(),
            stale,
        ))
    }

    /// Every release of worker `id`, newest first.
    pub async fn releases(&self, id: &str) -> Result<Fetched<Vec<Arc<Release>>>, ApiError> {
        let (entry, stale) = self.entry(id).await?;
        let fetched: Vec<Fetched<Arc<Release>>> =
            futures_util::stream::iter(entry.versions.clone())
                .map(|v| async move { self.release(id, &v).await })
                .buffer_unordered(8)
                .try_collect()
                .await?;
        let any_stale = stale || fetched.iter().any(|(_, s)| *s);
        let mut releases: Vec<Arc<Release>> = fetched.into_iter().map(|(r, _)| r).collect();
        releases.sort_by(|a, b| b.version.cmp(&a.version));
        Ok((releases, any_stale))
    }

    /// The PKGBUILD attached to the latest release of worker `id`.
    pub async fn pkgbuild(&self, id: &str) -> Result<Fetched<Option<String>>, ApiError> {
        let (release, stale) = self.release(id, "latest").await?;
        let key = format!("{}@{}", release.repository, release.version);
        let (repo, subject) = (release.repository.clone(), release.index_digest.clone());
        let text = self
            .pkgbuilds
            .get(&key, || async {
                let referrers = self
                    .upstream
                    .referrers(&repo, &subject, mt::PKGBUILD_ARTIFACT_TYPE)
                    .await?;
                let Some((digest, _)) = referrers.into_iter().next() else {
                    return Ok(None);
                };
                let (bytes, _) = self.upstream.manifest(&repo, &digest).await?;
                let m: ImageManifest = serde_json::from_slice(&bytes)
                    .map_err(|e| UpstreamError::Invalid(e.to_string()))?;
                let Some(layer) = m.layers.iter().find(|l| l.media_type == mt::PKGBUILD) else {
                    return Ok(None);
                };
                let blob = self
                    .upstream
                    .small_blob(&repo, &layer.digest, SMALL_BLOB_LIMIT)
                    .await?;
                Ok(Some(String::from_utf8_lossy(&blob).into_owned()))
            })
            .await?;
        Ok(((*text.value).clone(), stale || text.stale))
    }
}
