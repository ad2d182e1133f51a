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

mod delta;
pub(crate) mod fetch;

use std::collections::{HashMap, HashSet};
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
use crate::domain::view::{self, View};

pub use fetch::{MAX_PLATFORMS, SMALL_BLOB_LIMIT};

/// The worker layer media type a layer title implies: tar+zstd for a
/// `.tar.zst` name, tar+gzip otherwise (for rows that kept only the name).
pub fn layer_type_of_filename(filename: &str) -> &'static str {
    if filename.ends_with(".tar.zst") {
        rbee_schemas::media_types::WORKER_LAYER_ZSTD
    } else {
        rbee_schemas::media_types::WORKER_LAYER
    }
}

/// One platform build of a release.
#[derive(Debug, Clone)]
pub struct PlatformBuild {
    /// rbee platform name.
    pub platform: Platform,
    /// Digest of the platform manifest.
    pub manifest_digest: String,
    /// Digest of the archive: the checksum to verify.
    pub layer_digest: String,
    /// Size of the archive in bytes.
    pub size: u64,
    /// File name of the archive (`.tar.gz` or `.tar.zst`).
    pub filename: String,
    /// The layer's media type: tar+gzip or tar+zstd
    /// (`rbee_schemas::media_types::WORKER_LAYERS`).
    pub media_type: String,
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
    /// The yank record in force when the version is yanked (read from the
    /// registry by `domain::referrers::yank`); `None` when it is not.
    pub yank: Option<rbee_schemas::YankRecord>,
    /// The publisher's signature (read from the registry by
    /// `domain::signature`); `None` when the release is unsigned.
    pub signature: Option<rbee_schemas::signature::ReleaseSignature>,
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
/// How long after start the view's first reconcile with the registry
/// begins ([`Catalog::run_view`]).
const STARTUP_RECONCILE_DELAY: Duration = Duration::from_secs(1);

/// Most yanked versions `latest` passes over before it answers not found.
const MAX_YANKED_SKIPPED: usize = 20;

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
    /// The deltas attached to a release (key `<repository>@<index digest>#deltas`).
    deltas: Cache<Vec<rbee_schemas::delta::DeltaInfo>>,
    /// The view in the database that listings are served from, once it
    /// was built ([`Catalog::with_view`]); without it, or until then,
    /// listings walk the registry.
    view: Option<Arc<View>>,
    /// The latest release of every worker, read from the view in one go:
    /// by repository, with its version as the catalog index spells it.
    latest: Cache<HashMap<String, (String, Arc<Release>)>>,
    /// The releases of one repository (key `<repository>@*`), from the view.
    listings: Cache<Vec<Arc<Release>>>,
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
            deltas: Cache::new(ttls.metadata, deadline, cancel.clone())
                .observed_by(observer.clone()),
            view: None,
            latest: Cache::new(ttls.index, deadline, cancel.clone()).observed_by(observer.clone()),
            listings: Cache::new(ttls.index, deadline, cancel.clone())
                .observed_by(observer.clone()),
            source,
            observer,
            catalog_repository,
            cancel,
            unreadable: Mutex::new(HashSet::new()),
        }
    }

    /// This catalog, serving its listings from the view kept in `store`
    /// (see [`crate::domain::view`]); the view still has to be opened
    /// ([`View::open`]) and its updates run ([`Catalog::run_view`]).
    pub fn with_view(mut self, store: rbee_store::Store) -> Self {
        self.view = Some(Arc::new(View::new(
            store,
            self.source.clone(),
            self.catalog_repository.clone(),
        )));
        self
    }

    /// The view in the database, when listings are kept there.
    pub fn view(&self) -> Option<&Arc<View>> {
        self.view.as_ref()
    }

    /// The view, when it was built and listings are served from it. Waits
    /// first (at most [`view::BARRIER_WAIT`]) for the first build of an
    /// empty view ([`View::first_build`]) and for the changes queued
    /// before this call ([`View::barrier`]), so that a read right after a
    /// start or a push is answered from an up-to-date view.
    async fn ready_view(&self) -> Option<&Arc<View>> {
        let view = self.view.as_ref()?;
        if !view.is_ready() {
            view.first_build().await;
            if !view.is_ready() {
                return None;
            }
        }
        view.barrier().await;
        Some(view)
    }

    /// Keeps the view fresh until shutdown: applies its queued changes
    /// (dropping the caches of what each batch changed), checks it
    /// against the registry's catalog index every `check_every`,
    /// reconciles every stored release with the registry a second after
    /// start and then every `reconcile_every` ([`View::reconcile`]), and, on PostgreSQL,
    /// drops the caches of what other nodes changed. Runs on a task of its
    /// own.
    pub async fn run_view(&self, check_every: Duration, reconcile_every: Duration) {
        let Some(view) = &self.view else { return };
        let run = view.run(|changed| match changed {
            Some(repositories) => {
                for r in repositories {
                    self.invalidate_repository(r);
                }
            }
            None => self.invalidate_all(),
        });
        let periodic = async {
            let mut every = tokio::time::interval(check_every.max(Duration::from_secs(1)));
            every.tick().await;
            loop {
                every.tick().await;
                view.check();
            }
        };
        let reconciling = async {
            // The start-up reconcile waits a moment: its reads would share
            // the CPU with a restarted catalog's first requests.
            tokio::time::sleep(STARTUP_RECONCILE_DELAY).await;
            let mut every = tokio::time::interval(reconcile_every.max(Duration::from_secs(1)));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                // The first tick is at once: a start-up reconcile. A view
                // still being built is read whole by its build instead.
                every.tick().await;
                if !view.is_ready() {
                    continue;
                }
                match view.reconcile().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        repositories = n,
                        "catalog view: rereading what changed unannounced"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "catalog view: cannot reconcile with the registry")
                    }
                }
            }
        };
        tokio::select! {
            () = run => {}
            () = periodic => {}
            () = reconciling => {}
            () = self.follow_other_nodes(view) => {}
            () = self.cancel.cancelled() => {}
        }
    }

    /// On PostgreSQL: drops what other nodes' changes to the view make
    /// stale here (they `NOTIFY` in the transaction that writes), in this
    /// node's caches and in its registry reader's (the embedded registry's
    /// manifest lookups: on shared storage, another node's delete would
    /// otherwise still be served here until they expire). A lost
    /// connection may have missed some: everything is dropped then.
    async fn follow_other_nodes(&self, view: &View) {
        let mut listener = loop {
            match view.store().listen_view_changes().await {
                Ok(Some(listener)) => break listener,
                Ok(None) => return std::future::pending().await,
                Err(e) => {
                    tracing::warn!(error = %e, "catalog view: cannot listen for other nodes; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        loop {
            match listener.next().await {
                Ok(rbee_store::catalog_view::ViewChange::Repository(r)) => {
                    self.source.forget(Some(&r));
                    self.invalidate_repository(&r);
                }
                Ok(rbee_store::catalog_view::ViewChange::Everything) => {
                    view.adopt_if_built().await;
                    self.source.forget(None);
                    self.invalidate_all();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "catalog view: lost the database; reconnecting");
                    self.source.forget(None);
                    self.invalidate_all();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Events were missed (a lagging subscriber): everything cached goes,
    /// and the view is rebuilt.
    pub fn heard_everything(&self) {
        self.invalidate_all();
        if let Some(view) = &self.view {
            view.resync();
        }
    }

    /// A push or delete in `repository` (a registry event, a webhook):
    /// its cached data goes at once, and the view rereads it.
    pub fn heard(&self, repository: &str) {
        self.invalidate_repository(repository);
        if let Some(view) = &self.view {
            view.changed(repository);
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

    /// Completes once [`Catalog::shutdown`] was called: tasks that hold
    /// the catalog (event followers) end with it, so that a stopped
    /// server lets go of its registry and database.
    pub fn stopped(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.cancel.clone().cancelled_owned()
    }

    /// Forgets everything cached (after a push event).
    pub fn invalidate_all(&self) {
        self.latest.invalidate("");
        self.listings.invalidate("");
        self.index.invalidate("");
        self.releases.invalidate("");
        self.pkgbuilds.invalidate("");
        self.deltas.invalidate("");
    }

    /// Forgets what is cached about `repository` and the worker list.
    pub fn invalidate_repository(&self, repository: &str) {
        self.latest.invalidate("");
        self.listings.invalidate(&format!("{repository}@"));
        self.index.invalidate("");
        self.releases.invalidate(&format!("{repository}@"));
        self.pkgbuilds.invalidate(&format!("{repository}@"));
        self.deltas.invalidate(&format!("{repository}@"));
    }

    /// The catalog index: every worker and its versions.
    pub async fn index(&self) -> Result<Cached<CatalogIndex>, CatalogError> {
        if let Some(view) = self.ready_view().await {
            let store = view.store().clone();
            return Ok(self
                .index
                .get("index", || async move { view::index_of(&store).await })
                .await?);
        }
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
            return self.latest_not_yanked(entry).await;
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
        let store = self.ready_view().await.map(|v| v.store().clone());
        let release = self
            .releases
            .get(&key, || async move {
                // The view first; what it lacks is read from the registry,
                // the source of truth (a release it left out as unreadable
                // fails here as it does there).
                if let Some(store) = store
                    && let Ok(Some(row)) = store.view_release(&repo, &fetch_version).await
                    && let Some(release) = view::release_of_row(row)
                {
                    return Ok(release);
                }
                fetch::release(source, repo, fetch_version).await
            })
            .await
            .map_err(|e| match e {
                UpstreamError::NotFound => CatalogError::VersionNotFound(version.clone()),
                other => other.into(),
            })?;
        Ok((release.value, release.stale))
    }

    /// `latest`: the catalog index's latest version, or, when that one is
    /// yanked, the highest stable version that is not (a few at most are
    /// read; yanks are rare).
    async fn latest_not_yanked(
        &self,
        entry: &CatalogEntry,
    ) -> Result<Fetched<Arc<Release>>, CatalogError> {
        let latest = entry
            .latest
            .clone()
            .ok_or(CatalogError::VersionNotFound("latest".into()))?;
        let mut stable: Vec<semver::Version> = entry
            .versions
            .iter()
            .filter_map(|v| semver::Version::parse(v).ok())
            .filter(|v| v.pre.is_empty() && v.to_string() != latest)
            .collect();
        stable.sort_by(|a, b| b.cmp(a));
        let candidates = std::iter::once(latest)
            .chain(stable.iter().map(|v| v.to_string()))
            .take(MAX_YANKED_SKIPPED + 1);
        for version in candidates {
            let (release, stale) = Box::pin(self.release_of(entry, &version)).await?;
            if release.yank.is_none() {
                return Ok((release, stale));
            }
        }
        Err(CatalogError::VersionNotFound("latest".into()))
    }

    /// The latest release of every listed worker that has one and can be
    /// read, in catalog order (by id), with its catalog entry.
    pub async fn latest_releases(
        &self,
    ) -> Result<Fetched<Vec<(CatalogEntry, Arc<Release>)>>, CatalogError> {
        if let Some(view) = self.ready_view().await {
            return self.latest_from_view(view).await;
        }
        let index = self.index().await?;
        let mut jobs: Vec<(CatalogEntry, String)> = index
            .value
            .workers
            .iter()
            .filter(|w| w.latest.is_some())
            .map(|w| (w.clone(), "latest".to_owned()))
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
        if let Some(view) = self.ready_view().await {
            return self.releases_from_view(view, entry, index_stale).await;
        }
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

    /// Reads the worker list and every worker's latest release from a
    /// built view into the caches, so that a restarted catalog answers its
    /// first listings from memory. Nothing when no view is built: the
    /// walk it would do instead reads the registry, which is left to the
    /// first request.
    pub async fn warm_listings(&self) {
        let Some(view) = self.view.as_ref().filter(|v| v.is_ready()) else {
            return;
        };
        if let Err(e) = self.latest_from_view(view).await {
            tracing::warn!(error = %e, "cannot read the listings from the catalog view at start");
        }
    }

    /// [`Catalog::latest_releases`] from the view: two queries for the
    /// whole list, cached until a change.
    async fn latest_from_view(
        &self,
        view: &Arc<View>,
    ) -> Result<Fetched<Vec<(CatalogEntry, Arc<Release>)>>, CatalogError> {
        let store = view.store().clone();
        // The worker list and the releases are read at once: right after a
        // start both are cold, and each is a query of its own.
        let (index, releases) = tokio::join!(
            self.index(),
            self.latest.get("latest", || async move {
                let rows = store
                    .view_latest_releases()
                    .await
                    .map_err(view::unavailable)?;
                Ok(rows
                    .into_iter()
                    .filter_map(view::release_of_row)
                    .map(|r| (r.repository.clone(), (r.version.to_string(), Arc::new(r))))
                    .collect())
            })
        );
        let (index, releases) = (index?, releases?);
        // A release is the entry's latest only if both were read from the
        // same state of the view (a change may fall between the two reads).
        let cached: Vec<(&CatalogEntry, &Arc<Release>)> = index
            .value
            .workers
            .iter()
            .filter_map(|e| {
                let (version, release) = releases.value.get(&e.repository)?;
                (e.latest.as_deref()? == version).then_some((e, release))
            })
            .collect();
        let mut list = Vec::with_capacity(cached.len());
        let mut stale = index.stale || releases.stale;
        for (entry, release) in cached {
            if release.yank.is_none() {
                list.push((entry.clone(), release.clone()));
                continue;
            }
            // The index's latest is yanked: `latest` is then the highest
            // stable version that is not, as on the walk (yanks are rare,
            // so these few lookups are too); none left, not listed.
            if let Ok((release, release_stale)) = self.latest_not_yanked(entry).await {
                stale |= release_stale;
                list.push((entry.clone(), release));
            }
        }
        if list.len() > MAX_LISTED {
            self.cap_note(list.len() - MAX_LISTED, "workers");
            list.truncate(MAX_LISTED);
        }
        Ok((list, stale))
    }

    /// [`Catalog::releases`] from the view: the entry's versions that are
    /// stored, newest first.
    async fn releases_from_view(
        &self,
        view: &Arc<View>,
        entry: CatalogEntry,
        index_stale: bool,
    ) -> Result<Fetched<(CatalogEntry, Vec<Arc<Release>>)>, CatalogError> {
        let store = view.store().clone();
        let repo = entry.repository.clone();
        let listed: HashSet<String> = entry.versions.iter().cloned().collect();
        let key = format!("{repo}@*");
        let list = self
            .listings
            .get(&key, || async move {
                let rows = store
                    .view_releases(&repo)
                    .await
                    .map_err(view::unavailable)?;
                let mut releases: Vec<Arc<Release>> = rows
                    .into_iter()
                    .filter(|r| listed.contains(&r.version))
                    .filter_map(view::release_of_row)
                    .map(Arc::new)
                    .collect();
                releases.sort_by(|a, b| b.version.cmp(&a.version));
                Ok(releases)
            })
            .await?;
        let mut releases = (*list.value).clone();
        if releases.len() > MAX_LISTED {
            self.cap_note(releases.len() - MAX_LISTED, "versions");
            releases.truncate(MAX_LISTED);
        }
        Ok(((entry, releases), index_stale || list.stale))
    }

    fn cap_note(&self, left_out: usize, what: &str) {
        tracing::warn!(left_out, "list of {what} capped at {MAX_LISTED}");
        self.observer
            .list_skipped(SkipReason::OverLimit, left_out as u64);
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
