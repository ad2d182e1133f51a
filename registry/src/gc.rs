//! Garbage collection: removes untagged manifests older than a grace
//! period, blob links no kept manifest names, and content (`blobs/`) that
//! nothing links or references any more. Written against the [`Storage`]
//! trait only (`list`, `head`, `get`, `delete`, `modified`), so it works on
//! every backend.
//!
//! # Mark, then sweep
//!
//! 1. **Per repository**, under the repository's write lock (so no manifest
//!    PUT or DELETE of it interleaves): a manifest is *kept* when a tag
//!    reaches it (through index entries, and referrers of what is kept,
//!    transitively) or when its record is younger than the untagged grace
//!    (a push in flight: platform manifests are PUT by digest before the
//!    index that tags them; a staged release waits untagged). The others
//!    are removed like a DELETE by digest. A blob link is kept when a kept
//!    manifest names the blob or the link is younger than the blob grace
//!    (a push in flight links its blobs before the manifest names them).
//! 2. **Sweep**, under the registry's sweep lock held exclusively: the
//!    links and manifest records of every repository are listed *again*,
//!    so whatever a push wrote since the mark counts; a blob nobody links
//!    or records, last written before the blob grace, is deleted.
//!
//! # Why a push in flight is never lost
//!
//! A blob becomes reachable only through a link (upload finish, mount) or
//! a manifest record (manifest PUT). Both writers hold the sweep lock
//! shared while they write the link or record *and check that the content
//! is still there* (see `Registry::link_blob` and `put_manifest`). So
//! either the writer finished first, and the sweep's fresh listing sees its
//! link or record and keeps the blob; or the sweep deleted first, and the
//! writer finds the content gone and fails (the client was never told the
//! push succeeded, and retries). Links and manifests removed in step 1 are
//! removed under the repository lock a manifest PUT takes for its checks,
//! so a PUT either saw them gone (400 `MANIFEST_BLOB_UNKNOWN`) or finished
//! before. The locks are per process: on shared object storage, run the
//! collector in one place (one node's `--gc-interval`), and other nodes'
//! pushes are protected by the fresh listing of step 2 and the graces (see
//! `docs/operations.md`).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use crate::error::Result;
use crate::layout;
use crate::manifest::{self, MAX_MANIFEST_BYTES};
use crate::reference::{Algorithm, Digest, RepoName, Tag};
use crate::registry::Registry;
use crate::storage;

/// The algorithms content can be stored under.
const ALGORITHMS: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

/// What a collection may remove.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// List what would be removed, remove nothing.
    pub dry_run: bool,
    /// Blobs and blob links younger than this are kept: pushes in flight.
    pub blob_grace: Duration,
    /// Untagged manifests younger than this are kept: pushes in flight and
    /// staged releases waiting to be tagged.
    pub untagged_grace: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            blob_grace: Duration::from_secs(3600),
            untagged_grace: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// What a collection removed (or, in a dry run, would remove).
#[derive(Debug, Default)]
pub struct GcReport {
    /// Whether nothing was actually removed.
    pub dry_run: bool,
    /// Untagged manifests removed, as `repository@digest`.
    pub manifests: Vec<String>,
    /// Blob links removed, as `repository@digest`.
    pub links: Vec<String>,
    /// Content removed from `blobs/`, with its size.
    pub blobs: Vec<(Digest, u64)>,
    /// The bytes of that content.
    pub bytes_freed: u64,
}

/// What one manifest names: the manifests (of an index), the blobs, and
/// its subject (a referrer's).
type Named = (Vec<Digest>, Vec<Digest>, Option<Digest>);

/// What the mark learnt about one repository's manifests.
struct Manifests {
    /// Each manifest's digest, with the manifests and blobs it names, or
    /// `None` when its body could not be read (then it and everything in
    /// its repository is kept).
    named: HashMap<Digest, Option<Named>>,
    /// When each manifest's record was written.
    written: HashMap<Digest, SystemTime>,
}

impl Registry {
    /// Collects garbage once; see the module documentation.
    pub async fn collect_garbage(&self, options: &GcOptions) -> Result<GcReport> {
        let started = SystemTime::now();
        let mut report = GcReport {
            dry_run: options.dry_run,
            ..GcReport::default()
        };
        for name in self.repositories().await? {
            let Ok(repo) = RepoName::parse(&name) else {
                continue;
            };
            let _writing = self.writes.lock(&repo).await;
            self.collect_repository(&repo, options, started, &mut report)
                .await?;
            self.cache.invalidate(&repo);
        }
        self.sweep_blobs(options, started, &mut report).await?;
        Ok(report)
    }

    /// Whether an object whose storage says it was written at `written`
    /// was older than `grace` when the collection started: measured from
    /// the latest time it may really have been written (the storage's
    /// times may be truncated, S3's to whole seconds), so that nothing
    /// written after the start ever counts as old.
    fn older_than(&self, written: SystemTime, started: SystemTime, grace: Duration) -> bool {
        older_than(written + self.storage.modified_resolution(), started, grace)
    }

    /// Step 1 for `repo`; the caller holds its write lock.
    async fn collect_repository(
        &self,
        repo: &RepoName,
        options: &GcOptions,
        started: SystemTime,
        report: &mut GcReport,
    ) -> Result<()> {
        let found = self.read_manifests(repo).await?;
        let readable = found.named.values().all(Option::is_some);
        // Roots: tagged manifests, and every manifest within the grace.
        let mut kept: HashSet<Digest> = HashSet::new();
        let mut todo: Vec<Digest> = Vec::new();
        for tag in self.storage.list(&layout::tags(repo)).await? {
            let Ok(tag) = Tag::parse(&tag) else { continue };
            if let Some(raw) =
                storage::read_small(&*self.storage, &layout::tag(repo, &tag), 1024).await?
                && let Ok(digest) = Digest::parse(String::from_utf8_lossy(&raw).trim())
            {
                todo.push(digest);
            }
        }
        for (digest, written) in &found.written {
            if !self.older_than(*written, started, options.untagged_grace) {
                todo.push(digest.clone());
            }
        }
        // Referrers of a kept manifest are kept: subject -> referrers.
        let mut referrers: HashMap<&Digest, Vec<&Digest>> = HashMap::new();
        for (digest, named) in &found.named {
            if let Some((_, _, Some(subject))) = named {
                referrers.entry(subject).or_default().push(digest);
            }
        }
        while let Some(digest) = todo.pop() {
            if !kept.insert(digest.clone()) {
                continue;
            }
            if let Some(Some((children, _, _))) = found.named.get(&digest) {
                todo.extend(children.iter().cloned());
            }
            if let Some(list) = referrers.get(&digest) {
                todo.extend(list.iter().map(|d| (*d).clone()));
            }
        }
        let mut named_blobs: HashSet<Digest> = HashSet::new();
        for digest in &kept {
            if let Some(Some((_, blobs, _))) = found.named.get(digest) {
                named_blobs.extend(blobs.iter().cloned());
            }
        }
        if readable {
            for (digest, named) in &found.named {
                if kept.contains(digest) {
                    continue;
                }
                report.manifests.push(format!("{repo}@{digest}"));
                if !options.dry_run {
                    self.storage
                        .delete(&layout::manifest_link(repo, digest))
                        .await?;
                    if let Some((_, _, Some(subject))) = named {
                        self.storage
                            .delete(&layout::referrer(repo, subject, digest))
                            .await?;
                    }
                }
            }
        }
        for algorithm in ALGORITHMS {
            for hex in self
                .storage
                .list(&layout::blob_links(repo, algorithm))
                .await?
            {
                let Some(digest) = layout::digest_of(algorithm, &hex) else {
                    continue;
                };
                if !readable || named_blobs.contains(&digest) {
                    continue;
                }
                let link = layout::blob_link(repo, &digest);
                let Some(written) = self.storage.modified(&link).await? else {
                    continue;
                };
                if self.older_than(written, started, options.blob_grace) {
                    report.links.push(format!("{repo}@{digest}"));
                    if !options.dry_run {
                        self.storage.delete(&link).await?;
                    }
                }
            }
        }
        if !readable {
            tracing::warn!(%repo, "a manifest could not be read; nothing of this repository was collected");
        }
        Ok(())
    }

    /// Every manifest record of `repo`, with what each manifest names.
    async fn read_manifests(&self, repo: &RepoName) -> Result<Manifests> {
        let mut found = Manifests {
            named: HashMap::new(),
            written: HashMap::new(),
        };
        for algorithm in ALGORITHMS {
            for hex in self
                .storage
                .list(&layout::manifest_links(repo, algorithm))
                .await?
            {
                let Some(digest) = layout::digest_of(algorithm, &hex) else {
                    continue;
                };
                let record = layout::manifest_link(repo, &digest);
                let Some(written) = self.storage.modified(&record).await? else {
                    continue;
                };
                let media_type = storage::read_small(&*self.storage, &record, 1024).await?;
                let body = storage::read_small(
                    &*self.storage,
                    &layout::blob(&digest),
                    MAX_MANIFEST_BYTES as u64,
                )
                .await?;
                let named = match (media_type, body) {
                    (Some(media_type), Some(body)) => {
                        let media_type = String::from_utf8_lossy(&media_type).into_owned();
                        manifest::parse(Some(&media_type), &body).ok().map(|m| {
                            let children = m.manifests.iter().map(|d| d.digest.clone()).collect();
                            let blobs = m
                                .blobs
                                .iter()
                                .chain(&m.foreign)
                                .map(|d| d.digest.clone())
                                .collect();
                            (children, blobs, m.subject.map(|s| s.digest))
                        })
                    }
                    _ => None,
                };
                found.named.insert(digest.clone(), named);
                found.written.insert(digest, written);
            }
        }
        Ok(found)
    }

    /// Step 2: deletes content nothing links or records.
    async fn sweep_blobs(
        &self,
        options: &GcOptions,
        started: SystemTime,
        report: &mut GcReport,
    ) -> Result<()> {
        let _sweeping = self.sweep.write().await;
        // Listed again under the lock: what pushes wrote since the mark.
        let removed: HashSet<&str> = report
            .links
            .iter()
            .chain(&report.manifests)
            .map(String::as_str)
            .collect();
        let mut live: HashSet<Digest> = HashSet::new();
        for name in self.repositories().await? {
            let Ok(repo) = RepoName::parse(&name) else {
                continue;
            };
            for algorithm in ALGORITHMS {
                for dir in [
                    layout::blob_links(&repo, algorithm),
                    layout::manifest_links(&repo, algorithm),
                ] {
                    for hex in self.storage.list(&dir).await? {
                        let Some(digest) = layout::digest_of(algorithm, &hex) else {
                            continue;
                        };
                        // A dry run removed nothing: what it would have
                        // removed does not count as live.
                        if options.dry_run && removed.contains(format!("{repo}@{digest}").as_str())
                        {
                            continue;
                        }
                        live.insert(digest);
                    }
                }
            }
        }
        for algorithm in ALGORITHMS {
            for prefix in self.storage.list(&layout::blobs_of(algorithm)).await? {
                let Some(dir) = layout::blobs_under(algorithm, &prefix) else {
                    continue;
                };
                for hex in self.storage.list(&dir).await? {
                    let Some(digest) = layout::digest_of(algorithm, &hex) else {
                        continue;
                    };
                    if live.contains(&digest) {
                        continue;
                    }
                    let key = layout::blob(&digest);
                    let (Some(size), Some(written)) = (
                        self.storage.head(&key).await?,
                        self.storage.modified(&key).await?,
                    ) else {
                        continue;
                    };
                    if !self.older_than(written, started, options.blob_grace) {
                        continue;
                    }
                    if !options.dry_run {
                        self.storage.delete(&key).await?;
                    }
                    report.bytes_freed += size;
                    report.blobs.push((digest, size));
                }
            }
        }
        Ok(())
    }
}

/// Whether something written at `written` was older than `grace` when the
/// collection started at `started`. A time in the future (a clock step) is
/// young.
fn older_than(written: SystemTime, started: SystemTime, grace: Duration) -> bool {
    started
        .duration_since(written)
        .is_ok_and(|age| age >= grace)
}

/// Runs [`Registry::collect_garbage`] every `every`, for as long as the
/// registry lives; each run logs what it freed.
pub fn spawn_scheduled(
    registry: &std::sync::Arc<Registry>,
    every: Duration,
    options: GcOptions,
) -> tokio::task::JoinHandle<()> {
    let weak = std::sync::Arc::downgrade(registry);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let Some(registry) = weak.upgrade() else {
                break;
            };
            match registry.collect_garbage(&options).await {
                Ok(r) => tracing::info!(
                    manifests = r.manifests.len(),
                    links = r.links.len(),
                    blobs = r.blobs.len(),
                    bytes_freed = r.bytes_freed,
                    "garbage collected"
                ),
                Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_is_measured_from_the_start_of_the_run() {
        let start = SystemTime::now();
        let hour = Duration::from_secs(3600);
        assert!(older_than(start - 2 * hour, start, hour));
        assert!(!older_than(start - hour / 2, start, hour));
        assert!(!older_than(start + hour, start, Duration::ZERO));
        assert!(older_than(start, start, Duration::ZERO));
    }
}
