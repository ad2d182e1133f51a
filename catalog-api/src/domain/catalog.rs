//! The catalog's view of the registry: workers (from the catalog index
//! artifact), their releases (image index -> platform manifests -> layer
//! and metadata config) and PKGBUILDs (referrers), all through the cache.
//!
//! The registry is read through [`RegistryRead`]: over HTTP for an
//! external registry, in process for the embedded one.
//!
//! Registry content is untrusted: `fetch.rs` reads and checks it (sizes,
//! counts, duplicates, file names), parsing large documents off the async
//! threads. Lists read the catalog index once, fan out with bounded
//! concurrency and a deadline, and leave out what cannot be read rather
//! than fail for everyone.

mod fetch;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use rbee_schemas::{CatalogEntry, CatalogIndex, Platform, WorkerMetadata};
use tokio_util::sync::CancellationToken;

use crate::domain::cache::{Cache, Cached};
use crate::domain::error::CatalogError;
use crate::domain::observe::{CatalogObserver, SkipReason};
use crate::domain::source::RegistryRead;
use crate::domain::upstream::UpstreamError;

pub use fetch::{MAX_PLATFORMS, SMALL_BLOB_LIMIT};

/// One platform build of a release.
#[derive(Debug, Clone)]
pub struct PlatformBuild {
    /// rbee platform name.
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

/// At most this many workers are listed by `/workers` and `/v1/workers`,
/// and at most this many versions by `/v1/workers/:id/versions` (the
/// newest): each costs a few upstream reads when it is not cached.
pub const MAX_LISTED: usize = 500;

/// Releases read at once for one list.
pub const LIST_CONCURRENCY: usize = 8;

/// Past this many, the set of unreadable releases (kept to log each once)
/// starts over.
const MAX_UNREADABLE: usize = 10_000;

/// Reads workers from one registry.
#[derive(Debug)]
pub struct Catalog {
    source: Arc<dyn RegistryRead>,
    /// Told about releases left out of lists (the caches report lookups).
    observer: Arc<dyn CatalogObserver>,
    catalog_repository: String,
    index: Cache<CatalogIndex>,
    releases: Cache<Release>,
    pkgbuilds: Cache<Option<String>>,
    /// Ends every running upstream fetch ([`Catalog::shutdown`]).
    cancel: CancellationToken,
    /// `repository@version` of releases left out of lists, so that each
    /// is logged once, not on every request.
    unreadable: Mutex<HashSet<String>>,
}

/// A value and whether any part of it was stale.
pub type Fetched<T> = (T, bool);

impl Catalog {
    /// A catalog over `source`, whose catalog index artifact is
    /// `<catalog_repository>:latest`, reporting cache lookups and
    /// left-out releases to `observer`.
    pub fn new(
        source: Arc<dyn RegistryRead>,
        catalog_repository: String,
        ttls: CacheTtls,
        observer: Arc<dyn CatalogObserver>,
    ) -> Self {
        let cancel = CancellationToken::new();
        let deadline = source.deadline();
        Catalog {
            index: Cache::new(ttls.index, deadline, cancel.clone()).observed_by(observer.clone()),
            releases: Cache::new(ttls.metadata, deadline, cancel.clone())
                .observed_by(observer.clone()),
            pkgbuilds: Cache::new(ttls.metadata, deadline, cancel.clone())
                .observed_by(observer.clone()),
            source,
            observer,
            catalog_repository,
            cancel,
            unreadable: Mutex::new(HashSet::new()),
        }
    }

    /// The registry read from.
    pub fn source(&self) -> &dyn RegistryRead {
        &*self.source
    }

    /// Ends every running upstream fetch at once (its callers get
    /// `Registry unavailable` or their stale copy), so that a graceful
    /// shutdown does not wait for a slow registry. Later fetches end at
    /// once too.
    pub fn shutdown(&self) {
        self.cancel.cancel();
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
    pub async fn index(&self) -> Result<Cached<CatalogIndex>, CatalogError> {
        let (source, repo) = (self.source.clone(), self.catalog_repository.clone());
        Ok(self
            .index
            .get("index", || fetch::index(source, repo))
            .await?)
    }

    /// The catalog entry of worker `id`.
    pub async fn entry(&self, id: &str) -> Result<Fetched<CatalogEntry>, CatalogError> {
        let index = self.index().await?;
        let entry = index
            .value
            .get(id)
            .cloned()
            .ok_or(CatalogError::WorkerNotFound)?;
        Ok((entry, index.stale))
    }

    /// Resolves `version` (`latest` or a semver string) of worker `id`.
    pub async fn release(
        &self,
        id: &str,
        version: &str,
    ) -> Result<Fetched<Arc<Release>>, CatalogError> {
        let (entry, stale) = self.entry(id).await?;
        let (release, release_stale) = self.release_of(&entry, version).await?;
        Ok((release, stale || release_stale))
    }

    /// Resolves `version` (`latest` or a semver string) of the worker of
    /// `entry`, read from the catalog index by the caller.
    pub async fn release_of(
        &self,
        entry: &CatalogEntry,
        version: &str,
    ) -> Result<Fetched<Arc<Release>>, CatalogError> {
        let version = if version == "latest" {
            entry
                .latest
                .clone()
                .ok_or(CatalogError::VersionNotFound(version.to_owned()))?
        } else {
            let parsed =
                semver::Version::parse(version).map_err(|source| CatalogError::BadVersion {
                    version: version.to_owned(),
                    source,
                })?;
            let v = parsed.to_string();
            if !entry.versions.contains(&v) {
                return Err(CatalogError::VersionNotFound(v));
            }
            v
        };
        let key = format!("{}@{version}", entry.repository);
        let (source, repo) = (self.source.clone(), entry.repository.clone());
        let fetch_version = version.clone();
        let release = self
            .releases
            .get(&key, || fetch::release(source, repo, fetch_version))
            .await
            .map_err(|e| match e {
                UpstreamError::NotFound => CatalogError::VersionNotFound(version.clone()),
                other => other.into(),
            })?;
        Ok((release.value, release.stale))
    }

    /// The latest release of every listed worker that has one and can be
    /// read, in catalog order (by id), with its catalog entry.
    pub async fn latest_releases(
        &self,
    ) -> Result<Fetched<Vec<(CatalogEntry, Arc<Release>)>>, CatalogError> {
        let index = self.index().await?;
        let mut jobs: Vec<(CatalogEntry, String)> = index
            .value
            .workers
            .iter()
            .filter_map(|w| Some((w.clone(), w.latest.clone()?)))
            .collect();
        self.cap(&mut jobs, "workers");
        let (releases, stale) = self.gather(jobs).await?;
        Ok((releases, stale || index.stale))
    }

    /// The catalog entry of worker `id` and its releases, newest first;
    /// versions that cannot be read are left out.
    pub async fn releases(
        &self,
        id: &str,
    ) -> Result<Fetched<(CatalogEntry, Vec<Arc<Release>>)>, CatalogError> {
        let (entry, index_stale) = self.entry(id).await?;
        let mut versions: Vec<semver::Version> = entry
            .versions
            .iter()
            .filter_map(|v| semver::Version::parse(v).ok())
            .collect();
        versions.sort_by(|a, b| b.cmp(a));
        let mut jobs: Vec<(CatalogEntry, String)> = versions
            .into_iter()
            .map(|v| (entry.clone(), v.to_string()))
            .collect();
        self.cap(&mut jobs, "versions");
        let (releases, stale) = self.gather(jobs).await?;
        Ok((
            (entry, releases.into_iter().map(|(_, r)| r).collect()),
            stale || index_stale,
        ))
    }

    /// Keeps the first [`MAX_LISTED`] jobs of a list.
    fn cap(&self, jobs: &mut Vec<(CatalogEntry, String)>, what: &str) {
        if jobs.len() > MAX_LISTED {
            let left_out = jobs.len() - MAX_LISTED;
            tracing::warn!(left_out, "list of {what} capped at {MAX_LISTED}");
            self.observer
                .list_skipped(SkipReason::OverLimit, left_out as u64);
            jobs.truncate(MAX_LISTED);
        }
    }

    /// Reads the release of each `(entry, version)`, [`LIST_CONCURRENCY`]
    /// at once, in order, for at most the upstream deadline. What cannot
    /// be read (gone, invalid, unavailable, too slow) is left out, logged
    /// once and counted; the answer is then marked stale (served briefly),
    /// except when nothing could be read because the registry failed:
    /// that is the registry's error.
    async fn gather(
        &self,
        jobs: Vec<(CatalogEntry, String)>,
    ) -> Result<Fetched<Vec<(CatalogEntry, Arc<Release>)>>, CatalogError> {
        let deadline = tokio::time::Instant::now() + self.source.deadline();
        let total = jobs.len();
        let mut results = futures_util::stream::iter(jobs)
            .map(|(entry, version)| async move {
                let result = self.release_of(&entry, &version).await;
                (entry, version, result)
            })
            .buffered(LIST_CONCURRENCY);
        let (mut out, mut stale, mut failure) = (Vec::new(), false, None::<CatalogError>);
        let mut done = 0;
        loop {
            let next = match tokio::time::timeout_at(deadline, results.next()).await {
                Ok(Some(next)) => next,
                Ok(None) => break,
                Err(_) => {
                    let left_out = total - done;
                    tracing::warn!(left_out, "list deadline passed; leaving the rest out");
                    self.observer
                        .list_skipped(SkipReason::Timeout, left_out as u64);
                    stale = true;
                    failure.get_or_insert(CatalogError::Upstream(UpstreamError::Unavailable(
                        "the list deadline passed".into(),
                    )));
                    break;
                }
            };
            done += 1;
            let (entry, version, result) = next;
            let key = format!("{}@{version}", entry.repository);
            match result {
                Ok((release, release_stale)) => {
                    self.readable_again(&key);
                    stale |= release_stale;
                    out.push((entry, release));
                }
                Err(e) => {
                    let reason = if e.is_unavailable() {
                        SkipReason::Unavailable
                    } else {
                        SkipReason::Unreadable
                    };
                    self.left_out(&key, &entry.id, &e, reason);
                    if reason == SkipReason::Unavailable {
                        stale = true;
                        failure.get_or_insert(e);
                    }
                }
            }
        }
        match failure {
            Some(e) if out.is_empty() => Err(e),
            _ => Ok((out, stale)),
        }
    }

    /// Counts a release left out of a list, and logs it the first time.
    fn left_out(&self, key: &str, id: &str, error: &CatalogError, reason: SkipReason) {
        self.observer.list_skipped(reason, 1);
        let mut unreadable = self.unreadable.lock().unwrap_or_else(|e| e.into_inner());
        if unreadable.len() >= MAX_UNREADABLE {
            unreadable.clear();
        }
        if unreadable.insert(key.to_owned()) {
            tracing::warn!(worker = id, release = key, %error, "left out of lists: cannot read it");
        }
    }

    fn readable_again(&self, key: &str) {
        let mut unreadable = self.unreadable.lock().unwrap_or_else(|e| e.into_inner());
        if !unreadable.is_empty() && unreadable.remove(key) {
            tracing::info!(release = key, "readable again; listed");
        }
    }

    /// The PKGBUILD attached to the latest release of worker `id`.
    pub async fn pkgbuild(&self, id: &str) -> Result<Fetched<Option<String>>, CatalogError> {
        let (release, stale) = self.release(id, "latest").await?;
        let key = format!("{}@{}", release.repository, release.version);
        let (source, repo, subject) = (
            self.source.clone(),
            release.repository.clone(),
            release.index_digest.clone(),
        );
        let text = self
            .pkgbuilds
            .get(&key, || fetch::pkgbuild(source, repo, subject))
            .await?;
        Ok(((*text.value).clone(), stale || text.stale))
    }
}
