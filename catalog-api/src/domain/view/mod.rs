//! The catalog's own view of the registry, kept in the database
//! (`rbee_store::catalog_view`): listings read it instead of walking the
//! registry repository by repository.
//!
//! How it stays true to the registry, which remains the source of truth:
//!
//! - only releases read whole from the registry are written (image index,
//!   every platform manifest, the metadata), so a version is listed only
//!   once its index is complete, and the worker list is the catalog
//!   index's;
//! - every push or delete the catalog hears of (the embedded registry's
//!   events, or the notification webhook of an external one) queues its
//!   repository; [`View::run`] rereads what changed and writes it, then
//!   the catalog's caches are dropped (and, on PostgreSQL, every other
//!   node's, by `NOTIFY`);
//! - a read waits (at most [`BARRIER_WAIT`]) for the changes queued before
//!   it, so a push this process heard of is listed at once;
//! - the view records which catalog index it reflects (the digest of
//!   `<catalog repository>:latest`) and its row layout ([`VIEW_FORMAT`]).
//!   At start, an empty view (or one of another layout) is built once,
//!   and listings walk the registry as before until it is; otherwise it is
//!   served at once, and the digest is compared in the background (and
//!   every index TTL after): a different digest means the view is behind,
//!   and it catches up with what the index lists.
//!
//! - changes no event announced (a yank record, or a tag deleted, while
//!   no node listened) are found by [`View::reconcile`] (`reconcile.rs`),
//!   at start and every metadata TTL, which compares each stored release
//!   with the registry and queues what differs.
//!
//! `rbee-catalog sync` ([`View::sync`]) rereads every listed release.

mod reconcile;
mod sync;

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rbee_schemas::{CatalogEntry, CatalogIndex, Platform, WorkerMetadata};
use rbee_store::Store;
use rbee_store::catalog_view::{ViewBuild, ViewRelease, ViewWorker, ViewYank};
use tokio::sync::{Mutex, mpsc, watch};

use crate::domain::catalog::{MAX_LISTED, PlatformBuild, Release};
use crate::domain::source::RegistryRead;
use crate::domain::upstream::UpstreamError;

pub use sync::SyncReport;

/// The layout of the view's rows; a catalog that reads releases
/// differently raises it, and a view of another layout is rebuilt.
/// 2: the `signature` column holds the release's signature document.
pub const VIEW_FORMAT: i64 = 2;

/// The longest a read waits for changes queued before it (a push this
/// process heard of); past it, it is served what the view has.
pub const BARRIER_WAIT: Duration = Duration::from_secs(2);

/// Changes waiting for the updater; past this many, they are folded into
/// one reread of everything.
const QUEUE: usize = 4096;

/// What the updater is asked to do.
#[derive(Debug)]
enum Job {
    /// Reread the releases of a repository (a push or delete in it).
    Repository(String),
    /// Compare the catalog index's digest, and catch up if it changed.
    Check,
    /// Reread every listed release.
    Sync,
}

/// The view: the database's copy, the queue of changes, and whether it
/// was ever built (until then the catalog walks the registry).
#[derive(Debug)]
pub struct View {
    store: Store,
    source: Arc<dyn RegistryRead>,
    catalog_repository: String,
    ready: AtomicBool,
    requested: AtomicU64,
    applied: watch::Sender<u64>,
    queue: mpsc::Sender<(Job, u64)>,
    jobs: Mutex<Option<mpsc::Receiver<(Job, u64)>>>,
    /// A change could not be queued: reread everything next.
    overflowed: AtomicBool,
    /// True once the first build of an empty view was tried (or a read
    /// gave up waiting for it): reads wait for it once, not each time.
    first_build_over: watch::Sender<bool>,
}

impl View {
    /// A view in `store` of the registry `source`.
    pub fn new(store: Store, source: Arc<dyn RegistryRead>, catalog_repository: String) -> View {
        let (queue, jobs) = mpsc::channel(QUEUE);
        View {
            store,
            source,
            catalog_repository,
            ready: AtomicBool::new(false),
            requested: AtomicU64::new(0),
            applied: watch::Sender::new(0),
            queue,
            jobs: Mutex::new(Some(jobs)),
            overflowed: AtomicBool::new(false),
            first_build_over: watch::Sender::new(false),
        }
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether listings are served from the view (it was built once).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Decides at start what the database holds: a view of this layout is
    /// served at once and checked against the registry in the background;
    /// none (or another layout) is built in the background. The first
    /// reads wait for that build ([`View::first_build`]), then walk the
    /// registry until it is done (or when it failed: a registry that is
    /// down or hostile at the first start answers as it would without a
    /// view).
    pub async fn open(&self) -> Result<(), rbee_store::StoreError> {
        match self.store.view_state().await? {
            Some(state) if state.format == VIEW_FORMAT => {
                self.set_ready();
                self.first_build_over.send_replace(true);
                self.enqueue(Job::Check, false);
            }
            _ => self.enqueue(Job::Sync, false),
        }
        Ok(())
    }

    /// Waits for the first build of an empty view to be tried, for at
    /// most [`BARRIER_WAIT`], and only until one read gave up: a catalog
    /// that builds its view quickly answers its first reads from it, and
    /// one whose build takes minutes (a large remote registry) walks the
    /// registry meanwhile without making every read wait.
    pub async fn first_build(&self) {
        let mut over = self.first_build_over.subscribe();
        if *over.borrow() {
            return;
        }
        if tokio::time::timeout(BARRIER_WAIT, over.wait_for(|o| *o))
            .await
            .is_err()
        {
            self.first_build_over.send_replace(true);
        }
    }

    /// A push or delete in `repository` was heard of: reread it. Reads
    /// made from now on wait for it (at most [`BARRIER_WAIT`]).
    pub fn changed(&self, repository: &str) {
        self.enqueue(Job::Repository(repository.to_owned()), true);
    }

    /// Reread everything (events were missed).
    pub fn resync(&self) {
        self.enqueue(Job::Sync, true);
    }

    /// Serves the view from now on if it was built (by another node on
    /// the same database).
    pub async fn adopt_if_built(&self) {
        if !self.is_ready()
            && let Ok(Some(state)) = self.store.view_state().await
            && state.format == VIEW_FORMAT
        {
            self.set_ready();
        }
    }

    /// Compare with the registry's catalog index in the background.
    pub fn check(&self) {
        self.enqueue(Job::Check, false);
    }

    fn enqueue(&self, job: Job, wait_for_it: bool) {
        let seq = if wait_for_it {
            self.requested.fetch_add(1, Ordering::AcqRel) + 1
        } else {
            0
        };
        if self.queue.try_send((job, seq)).is_err() {
            // The updater is far behind: it rereads everything when it
            // comes to the queue's end, which covers this change too.
            self.overflowed.store(true, Ordering::Release);
        }
    }

    /// Waits until the changes queued before this call are in the view,
    /// for at most [`BARRIER_WAIT`].
    pub async fn barrier(&self) {
        let target = self.requested.load(Ordering::Acquire);
        if *self.applied.borrow() >= target {
            return;
        }
        let mut applied = self.applied.subscribe();
        let _ = tokio::time::timeout(BARRIER_WAIT, applied.wait_for(|a| *a >= target)).await;
    }

    /// Applies queued changes until the queue closes, calling `changed`
    /// with the repositories whose rows changed (`None`: any may have)
    /// after each batch is written. Runs once, on a task of its own.
    pub async fn run(&self, changed: impl Fn(Option<&[String]>)) {
        let Some(mut jobs) = self.jobs.lock().await.take() else {
            return;
        };
        while let Some(first) = jobs.recv().await {
            let mut batch = vec![first];
            while let Ok(next) = jobs.try_recv() {
                batch.push(next);
            }
            let seq = batch.iter().map(|(_, s)| *s).max().unwrap_or(0);
            let (mut sync, mut check, mut repositories) = (false, false, Vec::<String>::new());
            if self.overflowed.swap(false, Ordering::AcqRel) {
                sync = true;
            }
            for (job, _) in batch {
                match job {
                    Job::Sync => sync = true,
                    Job::Check => check = true,
                    Job::Repository(r) if r == self.catalog_repository => check = true,
                    Job::Repository(r) => {
                        if !repositories.contains(&r) {
                            repositories.push(r);
                        }
                    }
                }
            }
            if sync {
                match self.sync().await {
                    Ok(report) => tracing::info!(?report, "catalog view rebuilt from the registry"),
                    Err(e) => tracing::warn!(error = %e, "catalog view: rebuild failed"),
                }
                changed(None);
            } else {
                let mut touched = Vec::new();
                for repository in &repositories {
                    match self.refresh_repository(repository).await {
                        Ok(true) => touched.push(repository.clone()),
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(%repository, error = %e, "catalog view: cannot reread");
                        }
                    }
                }
                let mut all = false;
                if check {
                    match self.catch_up(false).await {
                        Ok(report) => all = report.changed(),
                        Err(e) => tracing::warn!(error = %e, "catalog view: cannot check"),
                    }
                }
                if all {
                    changed(None);
                } else if !touched.is_empty() {
                    changed(Some(&touched));
                }
            }
            self.applied.send_modify(|a| *a = (*a).max(seq));
            // The first batch holds the first build, when there is one.
            self.first_build_over.send_replace(true);
        }
    }
}

/// A view or registry failure while updating the view.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// The database failed.
    #[error("catalog view database: {0}")]
    Store(#[from] rbee_store::StoreError),
    /// The registry failed.
    #[error("reading the registry: {0}")]
    Upstream(#[from] UpstreamError),
}

/// The catalog index as the view stores it.
fn worker_rows(index: &CatalogIndex) -> Vec<ViewWorker> {
    index
        .workers
        .iter()
        .map(|e| ViewWorker {
            id: e.id.clone(),
            repository: e.repository.clone(),
            latest: e.latest.clone(),
            versions: e.versions.clone(),
            requires_license: e.requires_license,
            updated_at: e.updated_at.clone(),
        })
        .collect()
}

/// A stored worker as a catalog index entry.
pub fn entry_of(w: ViewWorker) -> CatalogEntry {
    CatalogEntry {
        id: w.id,
        repository: w.repository,
        latest: w.latest,
        versions: w.versions,
        requires_license: w.requires_license,
        updated_at: w.updated_at,
    }
}

/// The stored worker list as a catalog index.
pub async fn index_of(store: &Store) -> Result<CatalogIndex, UpstreamError> {
    let workers = store.view_workers().await.map_err(unavailable)?;
    let mut index = CatalogIndex::new(String::new());
    index.workers = workers.into_iter().map(entry_of).collect();
    Ok(index)
}

/// A database failure, as the caches and lists understand failures.
pub fn unavailable(e: rbee_store::StoreError) -> UpstreamError {
    tracing::warn!(error = %e, "catalog view: database read failed");
    UpstreamError::Unavailable("the catalog database failed".into())
}

/// A release as the view stores it, with the yank in force read with it
/// (`domain::referrers::yank`).
fn release_row(release: &Release) -> ViewRelease {
    ViewRelease {
        repository: release.repository.clone(),
        version: release.version.to_string(),
        index_digest: release.index_digest.clone(),
        published_at: release.published_at.clone(),
        metadata: serde_json::to_string(&release.metadata).unwrap_or_default(),
        yank: release.yank.as_ref().map(|y| ViewYank {
            yanked: y.yanked,
            reason: Some(y.reason.clone()).filter(|r| !r.is_empty()),
            at: y.at_rfc3339(),
        }),
        // The release's signature document, as the registry holds it.
        signature: release
            .signature
            .as_ref()
            .map(|s| String::from_utf8_lossy(&s.to_json()).into_owned()),
        builds: release
            .builds
            .iter()
            .map(|b| ViewBuild {
                platform: b.platform.to_string(),
                manifest_digest: b.manifest_digest.clone(),
                layer_digest: b.layer_digest.clone(),
                size: b.size,
                filename: b.filename.clone(),
            })
            .collect(),
    }
}

/// A stored release as the catalog's [`Release`]; rows this catalog
/// cannot read (a metadata document a newer one wrote) are `None`.
pub fn release_of_row(row: ViewRelease) -> Option<Release> {
    let metadata = match WorkerMetadata::from_json(&row.metadata) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(repository = %row.repository, version = %row.version, error = %e,
                "catalog view: stored metadata does not read; left out");
            return None;
        }
    };
    let version = semver::Version::parse(&row.version).ok()?;
    let mut builds: Vec<PlatformBuild> = row
        .builds
        .into_iter()
        .filter_map(|b| {
            Some(PlatformBuild {
                platform: Platform::from_str(&b.platform).ok()?,
                manifest_digest: b.manifest_digest,
                layer_digest: b.layer_digest,
                size: b.size,
                // The view stores no media type: the title the pusher
                // gives each layer says which compression it has.
                media_type: crate::domain::catalog::layer_type_of_filename(&b.filename).into(),
                filename: b.filename,
            })
        })
        .collect();
    builds.sort_by_key(|b| b.platform);
    // The stored yank state, as `Release::yank` carries it: the record in
    // force when the version is yanked.
    let yank = row
        .yank
        .filter(|y| y.yanked)
        .map(|y| rbee_schemas::YankRecord {
            yanked: true,
            reason: y.reason.unwrap_or_default(),
            at: chrono::DateTime::parse_from_rfc3339(&y.at)
                .map(|t| t.with_timezone(&chrono::Utc))
                .unwrap_or_default(),
        });
    // A stored signature that no longer reads (a newer catalog's) is
    // left out: installers that pin a key then refuse it as unsigned.
    let signature = row.signature.as_deref().and_then(|s| {
        rbee_schemas::signature::ReleaseSignature::from_json(s.as_bytes())
            .inspect_err(|e| {
                tracing::warn!(repository = %row.repository, version = %row.version, error = %e,
                    "catalog view: stored signature does not read; left out");
            })
            .ok()
    });
    Some(Release {
        repository: row.repository,
        version,
        index_digest: row.index_digest,
        published_at: row.published_at,
        metadata,
        builds,
        yank,
        signature,
    })
}

/// Versions listed for `repository` by the stored catalog index that the
/// view keeps ([`kept_versions`]).
fn listed_versions(workers: &[ViewWorker], repository: &str) -> HashSet<String> {
    workers
        .iter()
        .filter(|w| w.repository == repository)
        .flat_map(|w| kept_versions(&w.versions))
        .collect()
}

/// The versions of one worker the view reads and keeps: the newest
/// [`MAX_LISTED`] that parse as semver, the ones the walk would list. The
/// registry's catalog index is untrusted: this bounds what one worker
/// costs a build or a reconcile as the walk bounds one listing. An older
/// version asked for by name is read from the registry, as without a view.
fn kept_versions(versions: &[String]) -> Vec<String> {
    let mut parsed: Vec<semver::Version> = versions
        .iter()
        .filter_map(|v| semver::Version::parse(v).ok())
        .collect();
    parsed.sort_by(|a, b| b.cmp(a));
    parsed.dedup();
    parsed.truncate(MAX_LISTED);
    parsed.into_iter().map(|v| v.to_string()).collect()
}
