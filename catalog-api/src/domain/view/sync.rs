//! Bringing the view up to date with the registry: catching up with the
//! catalog index (at start, periodically, after a push to the catalog
//! repository), rebuilding every row (`rbee-catalog sync`), and rereading
//! one repository after a push or delete in it.

use std::collections::{HashMap, HashSet};

use futures_util::StreamExt;
use rbee_store::catalog_view::ViewRelease;

use super::{
    VIEW_FORMAT, View, ViewError, kept_versions, listed_versions, release_row, worker_rows,
};
use crate::domain::catalog::{LIST_CONCURRENCY, fetch};
use crate::domain::upstream::UpstreamError;

/// Releases written per transaction while rebuilding.
const WRITE_BATCH: usize = 200;

/// What a sync or catch-up did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Whether the catalog index had changed (or a rebuild was asked for).
    pub index_changed: bool,
    /// Workers the catalog index lists.
    pub workers: usize,
    /// Releases read from the registry and written.
    pub releases: usize,
    /// Listed releases that could not be read (an incomplete index,
    /// invalid content): not in the view, so not listed.
    pub left_out: usize,
}

impl SyncReport {
    /// Whether anything in the view may have changed.
    pub fn changed(&self) -> bool {
        self.index_changed || self.releases > 0
    }
}

impl View {
    /// Rereads the catalog index and every release it lists, rewriting
    /// the view (`rbee-catalog sync`, and the first start on an empty
    /// database). Rows are replaced, never emptied first, so other nodes
    /// keep listing while it runs.
    pub async fn sync(&self) -> Result<SyncReport, ViewError> {
        self.catch_up(true).await
    }

    /// Reads the catalog index; unless `everything`, stops there when its
    /// digest is the one the view reflects. Otherwise writes the worker
    /// list, reads the releases it lists that the view lacks (all of them
    /// with `everything`), and records the digest.
    pub(super) async fn catch_up(&self, everything: bool) -> Result<SyncReport, ViewError> {
        let state = self.store.view_state().await?;
        let (index, digest) =
            fetch::index_with_digest(self.source.clone(), self.catalog_repository.clone()).await?;
        let current = state
            .as_ref()
            .is_some_and(|s| s.format == VIEW_FORMAT && s.catalog_digest == digest);
        let mut report = SyncReport {
            workers: index.workers.len(),
            ..SyncReport::default()
        };
        if current && !everything {
            return Ok(report);
        }
        report.index_changed = true;
        let missing = self
            .store
            .replace_view_workers(&worker_rows(&index))
            .await?;
        let kept: Vec<(String, String)> = index
            .workers
            .iter()
            .flat_map(|w| {
                kept_versions(&w.versions)
                    .into_iter()
                    .map(|v| (w.repository.clone(), v))
            })
            .collect();
        let jobs: Vec<(String, String)> = if everything {
            kept
        } else {
            let kept: HashSet<(String, String)> = kept.into_iter().collect();
            missing.into_iter().filter(|m| kept.contains(m)).collect()
        };
        let mut reads = futures_util::stream::iter(jobs)
            .map(|(repo, version)| async move {
                let read = self.read_release(&repo, &version).await;
                (repo, version, read)
            })
            .buffer_unordered(LIST_CONCURRENCY);
        let mut batch = Vec::new();
        while let Some((repo, version, read)) = reads.next().await {
            match read {
                Ok(row) => batch.push(row),
                Err(e) if is_unavailable(&e) => return Err(e.into()),
                Err(e) => {
                    report.left_out += 1;
                    tracing::warn!(%repo, %version, error = %e, "catalog view: release left out");
                }
            }
            if batch.len() >= WRITE_BATCH {
                report.releases += batch.len();
                self.store.put_view_releases(&batch).await?;
                batch.clear();
            }
        }
        report.releases += batch.len();
        self.store.put_view_releases(&batch).await?;
        self.store
            .set_view_state(digest.as_deref(), VIEW_FORMAT)
            .await?;
        self.set_ready();
        Ok(report)
    }

    /// A release read whole from the registry, with its referrer records.
    async fn read_release(&self, repo: &str, version: &str) -> Result<ViewRelease, UpstreamError> {
        let release =
            fetch::release(self.source.clone(), repo.to_owned(), version.to_owned()).await?;
        Ok(release_row(&release))
    }

    /// Rereads the listed releases of `repository` whole (a push or a
    /// delete may have changed any of them: a tag moved with `--force`, a
    /// platform manifest deleted, a yank record added): what reads is
    /// written, what is gone or no longer complete is removed, and a
    /// stored release that now reads as invalid is kept. True when a row
    /// changed.
    pub(super) async fn refresh_repository(&self, repository: &str) -> Result<bool, ViewError> {
        let workers = self.store.view_workers().await?;
        let mut listed: Vec<String> = listed_versions(&workers, repository).into_iter().collect();
        listed.sort();
        let stored: HashMap<String, ViewRelease> = self
            .store
            .view_releases(repository)
            .await?
            .into_iter()
            .map(|r| (r.version.clone(), r))
            .collect();
        let (mut puts, mut changed) = (Vec::new(), false);
        for version in listed {
            let old = stored.get(&version);
            match self.read_release(repository, &version).await {
                Ok(row) => {
                    if old != Some(&row) {
                        puts.push(row);
                    }
                }
                Err(e) if is_unavailable(&e) => return Err(e.into()),
                // Its tag, a platform manifest or the metadata is gone:
                // the release is no longer whole.
                Err(UpstreamError::NotFound) => {
                    if old.is_some() {
                        tracing::warn!(%repository, %version,
                            "catalog view: release gone or incomplete; no longer listed");
                        changed |= self.store.delete_view_release(repository, &version).await?;
                    }
                }
                // Invalid content where a good release was read: the good
                // copy stays, as the walk's cache keeps serving it, so a
                // registry that turns hostile cannot replace it.
                Err(e) => {
                    tracing::warn!(%repository, %version, error = %e, kept = old.is_some(),
                        "catalog view: release does not read; the stored copy (if any) stays");
                }
            }
        }
        changed |= !puts.is_empty();
        self.store.put_view_releases(&puts).await?;
        Ok(changed)
    }
}

/// The registry failed or rate-limits (as opposed to the content being
/// gone or invalid): the update stops and is retried, rather than leaving
/// releases out.
pub(super) fn is_unavailable(e: &UpstreamError) -> bool {
    matches!(
        e,
        UpstreamError::Unavailable(_) | UpstreamError::RateLimited { .. }
    )
}
